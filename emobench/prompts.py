"""Prompt templates: jinja2 files in `prompts/`, rendered in jinja2's sandbox.

Every template, built-in or user-supplied, goes through the sandboxed environment, so a task file
cannot reach Python internals (`{{ ''.__class__.__mro__ }}` raises SecurityError). The hash of a
template's source goes into the manifest: two runs with different prompts are not comparable.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from .errors import ConfigError
from .paths import prompts_dir
from .types import stable_hash


@lru_cache(maxsize=1)
def _env() -> SandboxedEnvironment:
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=False, autoescape=False)
    env.filters["letter"] = lambda i: chr(ord("A") + int(i))
    return env


def template_source(ref: str) -> str:
    """`ref` is a file name in prompts/ (e.g. `emobench_ea.j2`), a path, or inline template text."""
    if "\n" not in ref and ref.endswith((".j2", ".jinja", ".jinja2", ".txt")):
        for candidate in (prompts_dir() / ref, Path(ref).expanduser()):
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
        raise ConfigError(f"template {ref!r} not found in {prompts_dir()} or as a path")
    return ref


def render(ref: str, **variables: Any) -> str:
    source = template_source(ref)
    try:
        return _compile(source).render(**variables).strip()
    except SecurityError as exc:
        raise ConfigError(f"template refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise ConfigError(f"template error in {ref[:60]!r}: {exc}") from None


@lru_cache(maxsize=256)
def _compile(source: str):
    try:
        return _env().from_string(source)
    except TemplateError as exc:
        raise ConfigError(f"template syntax error: {exc}") from None


def template_hash(*refs: str | None) -> str:
    return stable_hash([template_source(r) if r else "" for r in refs])[:16]
