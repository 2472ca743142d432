"""LongEmotion (arXiv 2509.07403): see README.md here; the tasks are in task.py."""

from .task import LongEmotionEC, LongEmotionED, LongEmotionQA

__all__ = ["LongEmotionEC", "LongEmotionED", "LongEmotionQA"]
