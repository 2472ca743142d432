"""ESConv next-strategy prediction (Liu et al. 2021; Kang et al. 2024): see README.md here; the task is in task.py."""

from .task import ESConvStrategy

__all__ = ["ESConvStrategy"]
