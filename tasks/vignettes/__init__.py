"""The keyword-free vignette battery shipped with emobench: see README.md here; the tasks are in task.py."""

from .task import Vignettes, VignettesAffect

__all__ = ["Vignettes", "VignettesAffect"]
