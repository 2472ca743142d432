"""Reference baselines: `random` (uniform over the task's answer space, seeded by sample id) and
`majority` (always the most frequent gold answer of the evaluated samples; an upper bound for any
constant guesser, stated as such in the results).

A baseline picks a parsed answer itself instead of generating a reply: `emobench.variants.baseline`
stands in for the run's variants, writes that answer in the task's own `format_answer`, and the reply
goes through the same parser and scorer as a model's. A baseline sees a task only as an `AnswerSpace`,
so the models layer never imports the task layer.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any, Protocol

from ..types import Sample, stable_hash
from .base import Backend


class AnswerSpace(Protocol):
    """What a baseline reads from a task (a `Task` is one)."""

    @property
    def name(self) -> str: ...

    def answer_space(self, sample: Sample) -> list[Any]: ...


class Baseline(Backend):
    """A backend that answers by itself, without a model: `prepare` once per task on its evaluated
    samples, then `predict` a parsed answer per sample."""

    def prepare(self, task: AnswerSpace, samples: list[Sample]) -> None:
        return None

    def predict(self, task: AnswerSpace, sample: Sample) -> Any:
        raise NotImplementedError


class RandomBaseline(Baseline):
    kind = "random"

    def __init__(self, model: str = "random", seed: int = 1234, **model_args: Any):
        super().__init__(model, **model_args)
        self.seed = int(seed)

    def predict(self, task: AnswerSpace, sample: Sample) -> Any:
        space = task.answer_space(sample)
        if not space:
            return None
        rng = random.Random(stable_hash([self.seed, task.name, sample.id]))
        return rng.choice(space)


class MajorityBaseline(Baseline):
    kind = "majority"

    def __init__(self, model: str = "majority", **model_args: Any):
        super().__init__(model, **model_args)
        self._answer: dict[str, Any] = {}

    def prepare(self, task: AnswerSpace, samples: list[Sample]) -> None:
        counts = Counter(repr(s.target) for s in samples)
        if counts:
            best = counts.most_common(1)[0][0]
            self._answer[task.name] = next(s.target for s in samples if repr(s.target) == best)

    def predict(self, task: AnswerSpace, sample: Sample) -> Any:
        answer = self._answer.get(task.name)
        space = task.answer_space(sample)
        if space and answer not in space:
            return space[0]
        return answer
