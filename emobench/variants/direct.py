"""`direct`: the task's own prompt, answered once (or `draws` times for a voting protocol)."""

from __future__ import annotations

from ..client import ModelClient
from ..task import Task
from ..types import Sample, Usage
from .base import Variant, VariantOutput, ask


class Direct(Variant):
    name = "direct"
    description = "the task's prompt as is (default)"

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        return await ask(task, sample, task.render(sample), client, usage)
