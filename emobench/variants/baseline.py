"""A reference baseline (`--model random` or `majority`) in the place of each of the run's variants.

A baseline never reads a prompt, so the variant asked for cannot change its answers; its records still
carry that variant's name (and the manifest its config), so a baseline run has the same record keys
and results layout as a model's. The runner makes this swap, and it is the only place where a baseline
differs from a model.
"""

from __future__ import annotations

from ..client import ModelClient
from ..models.baselines import Baseline
from ..task import Task
from ..types import Sample, Usage
from .base import StandIn, Variant, VariantOutput


class BaselineAnswers(StandIn):
    """`variant`'s stand-in whose reply is `baseline`'s answer, written in the task's reply format."""

    def __init__(self, variant: Variant, baseline: Baseline, samples: dict[str, list[Sample]]):
        super().__init__(variant.name, variant.config())
        self.baseline = baseline
        self.samples = samples  # per task, the evaluated samples (the majority baseline counts their targets)

    async def prepare(self, task: Task, client: ModelClient, dev_samples: list[Sample]) -> None:
        self.baseline.prepare(task, self.samples[task.name])

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        answer = self.baseline.predict(task, sample)
        return VariantOutput(
            [task.format_answer(answer, sample)], task.render(sample), {"baseline": self.baseline.kind}
        )
