"""EmoBench (Sabour et al., ACL 2024): see README.md here; the tasks are in task.py."""

from .task import EmoBenchEA, EmoBenchEU, EmoBenchEUEmotion

__all__ = ["EmoBenchEA", "EmoBenchEU", "EmoBenchEUEmotion"]
