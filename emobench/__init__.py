"""emobench: measure the emotional intelligence of large language models.

Kept import-light on purpose: `import emobench` loads no model library. `load_results` (pandas) is
imported on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_results(paths: Any):
    """Results of one or more run directories / results files as a pandas DataFrame (one row per
    task x variant x metric)."""
    from .frames import load_results as _load

    return _load(paths)


__all__ = ["__version__", "load_results"]
