"""Where the built-in tasks, prompts and leaderboards live.

In a source checkout they are the top-level `tasks/`, `prompts/` and `leaderboards/` folders; in an
installed wheel the same folders are shipped inside the package as `emobench/_builtin/`.
"""

from __future__ import annotations

import os
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def _builtin(name: str) -> Path:
    checkout = _PKG.parent / name
    if checkout.is_dir() and (_PKG.parent / "pyproject.toml").exists():
        return checkout
    return _PKG / "_builtin" / name


def tasks_dir() -> Path:
    return _builtin("tasks")


def prompts_dir() -> Path:
    return _builtin("prompts")


def leaderboards_dir() -> Path:
    return _builtin("leaderboards")


def cache_dir() -> Path:
    """The response cache folder: $EMOBENCH_CACHE_DIR, else ~/.cache/emobench."""
    value = os.environ.get("EMOBENCH_CACHE_DIR")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "emobench"
