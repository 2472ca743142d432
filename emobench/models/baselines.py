"""Reference baselines: `random` (uniform over the task's answer space, seeded by sample id) and
`majority` (always the most frequent gold answer of the evaluated samples; an upper bound for any
constant guesser, stated as such in the results).

They answer through the task's own `format_answer`, so their replies go through the same parser and
scorer as a model's.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from ..task import Task
from ..types import Sample, stable_hash
from .base import Backend


class RandomBaseline(Backend):
    kind = "random"
    is_baseline = True

    def __init__(self, model: str = "random", seed: int = 1234, **model_args: Any):
        super().__init__(model, **model_args)
        self.seed = int(seed)

    def prepare(self, task: Task, samples: list[Sample]) -> None:
        return None

    def predict(self, task: Task, sample: Sample) -> Any:
        space = task.answer_space(sample)
        if not space:
            return None
        rng = random.Random(stable_hash([self.seed, task.name, sample.id]))
        return rng.choice(space)


class MajorityBaseline(Backend):
    kind = "majority"
    is_baseline = True

    def __init__(self, model: str = "majority", **model_args: Any):
        super().__init__(model, **model_args)
        self._answer: dict[str, Any] = {}

    def prepare(self, task: Task, samples: list[Sample]) -> None:
        counts = Counter(repr(s.target) for s in samples)
        if counts:
            best = counts.most_common(1)[0][0]
            self._answer[task.name] = next(s.target for s in samples if repr(s.target) == best)

    def predict(self, task: Task, sample: Sample) -> Any:
        answer = self._answer.get(task.name)
        space = task.answer_space(sample)
        if space and answer not in space:
            return space[0]
        return answer
