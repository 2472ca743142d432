"""AIPsy-Affect (Keeman, arXiv 2604.23719): see README.md here; the tasks are in task.py."""

from .task import AipsyAffect, AipsyAffectDetect

__all__ = ["AipsyAffect", "AipsyAffectDetect"]
