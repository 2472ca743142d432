"""The Variant contract: how a model is asked. The task still decides what counts as right.

A variant turns one Sample into one or more model calls through a ModelClient and returns the final
reply text(s). `prepare` runs once per task before any sample (building a retrieval index, tuning an
instruction on the dev split) and may only see the samples it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..client import ModelClient
from ..errors import ConfigError
from ..task import Task
from ..types import Message, Sample, Usage


@dataclass
class VariantOutput:
    responses: list[str]  # one reply per draw; the task parses each and combines them
    prompt: list[Message]  # the final prompt (what the sample browser shows)
    trace: dict[str, Any] = field(default_factory=dict)  # variant-specific log (retrieved chunks, ...)


class Variant:
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    arg_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **args: Any):
        unknown = set(args) - set(self.arg_defaults)
        if unknown:
            raise ConfigError(f"variant {self.name}: unknown --variant-arg {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(self.arg_defaults)) or 'none'})")
        self.args: dict[str, Any] = {**self.arg_defaults, **args}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self.args}

    async def prepare(self, task: Task, client: ModelClient, dev_samples: list[Sample]) -> None:
        return None

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        raise NotImplementedError


async def ask(task: Task, sample: Sample, messages: list[Message], client: ModelClient, usage: Usage,
              trace: dict[str, Any] | None = None) -> VariantOutput:
    """Send `messages` the way the task wants them answered: rank options by log-likelihood for a
    multiple_choice task on a backend that can, else generate `draws` replies (the fallback is noted in
    the trace and reported in the results)."""
    trace = dict(trace or {})
    fit = getattr(task, "fit_context", None)  # long tasks: cut sample.context to the window (emobench/context.py)
    if fit is not None:
        messages, trace["context"] = fit(sample, messages, client)
    if task.output_mode == "multiple_choice":
        if client.supports_loglikelihood:
            space = task.answer_space(sample)
            scores = await client.loglikelihood(messages, [task.continuation(a, sample) for a in space], usage)
            best = max(range(len(space)), key=lambda i: scores[i])
            trace.update(mode="loglikelihood", loglikelihoods=scores)
            return VariantOutput([task.format_answer(space[best], sample)], messages, trace)
        trace["mode"] = "generate_fallback"
    draws = int(getattr(task, "draws", 1) or 1)
    replies = []
    for draw in range(draws):
        replies.append((await client.chat(messages, task.gen_params, usage, draw=draw)).text)
    return VariantOutput(replies, messages, trace)
