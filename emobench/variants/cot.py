"""`cot`: ask the model to reason first, then to give the answer in the task's own format.

The reply's reasoning is kept in the trace (`cot.replies`); only the text after the last
"Final answer:" marker reaches the task's parser (the whole reply when the model wrote no marker: the
parsers already read the *last* JSON block or 'Answer:' line). A multiple_choice task is generated
rather than ranked by log-likelihood here, since there is no reasoning without generation, and the
completion limit is raised to `max_tokens` (default 1024) to leave room for the reasoning.
"""

from __future__ import annotations

import re

from .. import prompts
from ..client import ModelClient
from ..parsing import strip_reasoning
from ..task import Task
from ..types import Sample, Usage
from .base import Variant, VariantOutput, append_to_prompt, ask, generating_view

_FINAL = re.compile(r"final\s+answer\s*[:：]", re.IGNORECASE)


def final_answer(text: str) -> str:
    """The text after the last 'Final answer:' marker (the whole reply when there is none)."""
    text = strip_reasoning(text or "")
    found = list(_FINAL.finditer(text))
    return text[found[-1].end() :].strip() if found else text


class ChainOfThought(Variant):
    name = "cot"
    description = "reason step by step, then answer in the task's format"
    arg_defaults = {"max_tokens": 1024}

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        messages = append_to_prompt(task.render(sample), prompts.render("variants/cot.j2"))
        out = await ask(generating_view(task, int(self.args["max_tokens"])), sample, messages, client, usage)
        replies = out.responses
        out.trace["cot"] = {"replies": [r[-4000:] for r in replies]}
        out.responses = [final_answer(r) for r in replies]
        return out
