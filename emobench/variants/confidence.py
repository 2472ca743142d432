"""`confidence`: the task's own prompt, and the model states how sure it is of its answer.

The reply's JSON gains `"confidence": 0-100` (prompts/variants/confidence.j2); the stated value, read
as 0-1, goes into the trace as the `verbalised` confidence (emobench/confidence.py), which
emobench/calibration.py scores like any other source (ECE, Brier, AURC). A reply whose confidence cannot
be read is still scored on its answer, and counted (`n_unreadable`). The reply must be written, so a
multiple_choice task is generated here rather than ranked by log-likelihood; where the backend returns
log-probabilities the first-token confidence is recorded beside the stated one, so the two can be
compared on the same replies (as EmoCaliber, 2025, compares verbalised and token confidence).
"""

from __future__ import annotations

from typing import ClassVar

from .. import confidence, prompts
from ..client import ModelClient
from ..task import Task
from ..types import Sample, Usage
from .base import Variant, VariantOutput, append_to_prompt, ask, generating_view

EXTRA_TOKENS = 16  # room for `, "confidence": 70` beyond the task's own limit


class StatedConfidence(Variant):
    name = "confidence"
    description = "the task's prompt, and the model states its confidence (0-100) in the reply's JSON"
    arg_defaults: ClassVar[dict[str, int]] = {}

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        messages = append_to_prompt(task.render(sample), prompts.render("variants/confidence.j2"))
        view = generating_view(task, task.gen_params.max_tokens + EXTRA_TOKENS)
        out = await ask(view, sample, messages, client, usage)
        stated = [confidence.verbalised(reply) for reply in out.responses]
        readable = [x for x in stated if x is not None]
        value = sum(readable) / len(readable) if readable else None  # several draws: their mean
        confidence.record(out.trace, "verbalised", {"value": value, "stated": stated})
        return out
