"""LongEmotion (arXiv 2509.07403): see README.md here; EC, ED and QA are in task.py, the judged MC, ES
and EE in generative.py."""

from .generative import LongEmotionEE, LongEmotionES, LongEmotionMC
from .task import LongEmotionEC, LongEmotionED, LongEmotionQA

__all__ = [
    "LongEmotionEC",
    "LongEmotionED",
    "LongEmotionEE",
    "LongEmotionES",
    "LongEmotionMC",
    "LongEmotionQA",
]
