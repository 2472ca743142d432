"""EQ-Bench v2 (Paech 2023): see README.md here; the task is in task.py."""

from .task import EQBench

__all__ = ["EQBench"]
