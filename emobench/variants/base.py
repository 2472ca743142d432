"""The Variant contract: how a model is asked. The task still decides what counts as right.

A variant turns one Sample into one or more model calls through a ModelClient and returns the final
reply text(s). `prepare` runs once per task before any sample (building a retrieval index, tuning an
instruction on the dev split) and may only see the samples it is given.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .. import confidence, prompts
from ..client import ModelClient
from ..errors import ConfigError
from ..schema import ScoredRecord
from ..scoring import score_replies
from ..task import Task
from ..types import Completion, Message, Sample, Usage

REPLY_CHARS_KEPT = 2000  # of each unreadable attempt, in the trace


@dataclass
class VariantOutput:
    responses: list[str]  # one reply per draw; the task parses each and combines them
    prompt: list[Message]  # the final prompt (what the sample browser shows)
    trace: dict[str, Any] = field(default_factory=dict)  # variant-specific log (retrieved chunks, ...)


class Variant:
    name: str = ""  # each subclass names itself; a StandIn takes the name of the variant it replaces
    description: ClassVar[str] = ""
    arg_defaults: ClassVar[dict[str, Any]] = {}
    uses_dev: ClassVar[bool] = False  # `prepare` reads the task's dev split (few-shot pool, prompt tuning)

    def __init__(self, **args: Any):
        unknown = set(args) - set(self.arg_defaults)
        if unknown:
            raise ConfigError(
                f"variant {self.name}: unknown --variant-arg {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(self.arg_defaults)) or 'none'})"
            )
        self.args: dict[str, Any] = {**self.arg_defaults, **args}

    def config(self) -> dict[str, Any]:
        return {"name": self.name, **self.args}

    async def prepare(self, task: Task, client: ModelClient, dev_samples: list[Sample]) -> None:
        return None

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        raise NotImplementedError

    def check_task(self, task: Task, samples: list[Sample]) -> None:
        """Raise a ConfigError when this variant cannot ask `samples` of `task` (`permute` on a task
        without options), before the manifest is built and before any model call. A variant whose
        config depends on the task (the templates `paraphrase` will use) records it here, under
        `tasks: {name: ...}` in its config, so that the manifest shows it (`compare` reads a task's own
        entry). This default accepts every task."""
        return None

    def summarize(self, task: Task, records: list[ScoredRecord]) -> dict[str, Any]:
        """Variant-level metrics over the task's scored records (results.json `variant_metrics`: the
        per-order and per-template scores of `permute` and `paraphrase`), computed from what the records
        and their traces hold, so that `emobench rescore` can rebuild them. This default has none."""
        return {}


class StandIn(Variant):
    """Takes a variant's place under its name and config, so that record keys, the manifest and the
    results stay those of that variant, while the replies come from elsewhere (a reference baseline,
    recorded replies). `summarizer`, when given, is the variant whose `summarize` reads the records."""

    def __init__(self, name: str, config: dict[str, Any], summarizer: Variant | None = None):
        super().__init__()
        self.name = name
        self._config = config
        self._summarizer = summarizer

    def config(self) -> dict[str, Any]:
        return self._config

    def summarize(self, task: Task, records: list[ScoredRecord]) -> dict[str, Any]:
        return self._summarizer.summarize(task, records) if self._summarizer is not None else {}


async def ask(
    task: Task,
    sample: Sample,
    messages: list[Message],
    client: ModelClient,
    usage: Usage,
    trace: dict[str, Any] | None = None,
) -> VariantOutput:
    """Send `messages` the way the task wants them answered: rank options by log-likelihood for a
    multiple_choice task on a backend that can, else generate `draws` replies (the fallback is noted in
    the trace and reported in the results), each re-asked while unparseable when the task says so
    (`reask_unparseable`, below). A choice item's confidence goes into the trace (emobench/confidence.py):
    the options' softmax when they were ranked, else the answer letter's top log-probabilities when the
    backend returns them (asked for only then)."""
    trace = dict(trace or {})
    messages, fitted = task.fit_context(sample, messages, client)  # long tasks: emobench/context.py
    if fitted is not None:
        trace["context"] = fitted
    if task.output_mode == "multiple_choice":
        if client.supports_loglikelihood:
            space = task.answer_space(sample)
            scores = await client.loglikelihood(
                messages, [task.continuation(a, sample) for a in space], usage
            )
            best = max(range(len(space)), key=lambda i: scores[i])
            trace.update(mode="loglikelihood", loglikelihoods=scores)
            if sample.choices:
                gold = confidence.gold_index(space, sample.target)
                confidence.record(trace, "loglikelihood", confidence.from_loglikelihoods(scores, gold))
            return VariantOutput([task.format_answer(space[best], sample)], messages, trace)
        trace["mode"] = "generate_fallback"
    followups = task.followups(sample)
    if followups:  # a multi-turn task (LongEmotion EE): one chat, one reply per turn
        reply = await _conversation(task, sample, messages, followups, client, usage, trace)
        return VariantOutput([reply], messages, trace)
    letters = task.answer_letters(sample) if client.supports_logprobs else None
    draws = max(1, int(task.draws))
    replies, found = [], []
    for draw in range(draws):
        completion = await _reply(
            task, sample, messages, client, usage, draw, trace, confidence.top_logprobs_wanted(letters)
        )
        replies.append(completion.text)
        if letters:
            found.append(confidence.letter_distribution(completion, letters))
    entry = confidence.from_draws(found, confidence.gold_index(task.answer_space(sample), sample.target))
    if entry is not None:
        confidence.record(trace, "top_logprobs", entry)
    return VariantOutput(replies, messages, trace)


async def _reply(
    task: Task,
    sample: Sample,
    messages: list[Message],
    client: ModelClient,
    usage: Usage,
    draw: int,
    trace: dict[str, Any],
    logprobs: int = 0,
) -> Completion:
    """One draw's reply (with the top `logprobs` alternatives per token, where asked and given). A task
    whose `reask_unparseable` is N > 0 (EQ-Bench's `--task-arg reask=N`) is asked again, up to N times,
    while its parser cannot read the reply, each time at a temperature `reask_temperature_step`
    (default 0.15) higher, as EQ-Bench's own runner does. Every attempt is an
    ordinary client call (cached, so a resumed run repeats none; metered in the sample's usage); when
    there was more than one, they go into `trace["reask"]`. The last reply is the one scored."""
    tries = int(task.reask_unparseable)
    if tries <= 0:
        return await client.chat(messages, task.gen_params, usage, draw=draw, logprobs=logprobs)
    if "temperature" in client.gen_overrides:
        raise ConfigError(
            f"task {task.name}: re-asking an unparseable reply raises the temperature, which "
            "--temperature fixes; drop one of the two"
        )
    step = float(task.reask_temperature_step)
    attempts: list[dict[str, Any]] = []
    for attempt in range(tries + 1):
        params = task.gen_params.merged(temperature=round(task.gen_params.temperature + attempt * step, 6))
        completion = await client.chat(messages, params, usage, draw=draw, logprobs=logprobs)
        text = completion.text
        readable = score_replies(task, sample, [text]).outcome != "unparseable"  # as the record will read it
        attempts.append(
            {
                "temperature": params.temperature,
                "parsed": readable,
                **({} if readable else {"reply": text[-REPLY_CHARS_KEPT:]}),
            }
        )
        if readable:
            break
    if len(attempts) > 1:
        trace.setdefault("reask", []).append({"draw": draw, "attempts": attempts})
    return completion


async def _conversation(
    task: Task,
    sample: Sample,
    messages: list[Message],
    followups: list[str],
    client: ModelClient,
    usage: Usage,
    trace: dict[str, Any],
) -> str:
    """The model's replies to `messages` and then to each follow-up in turn, every earlier reply kept in
    the chat, as the JSON list the task's `parse` reads. Each turn is an ordinary cached client call, so
    a resumed run repeats none; each chat is fitted to the model's window before it is sent."""
    chat, replies = list(messages), list[str]()
    for followup in [None, *followups]:
        if followup is not None:
            chat += [{"role": "assistant", "content": replies[-1]}, {"role": "user", "content": followup}]
        fitted, info = task.fit_context(sample, chat, client)
        if info is not None and info.get("truncated"):
            trace["context"] = info
        replies.append((await client.chat(fitted, task.gen_params, usage)).text)
    trace["turns"] = len(replies)
    return json.dumps(replies, ensure_ascii=False)


def generating_view(task: Task, max_tokens: int) -> Task:
    """A shallow copy of `task` that generates (never ranks options) with at least `max_tokens`: for
    variants whose reply must be written (reasoning, a stated confidence)."""
    view = copy.copy(task)
    view.output_mode = "generate"  # type: ignore[misc]
    view.gen_params = task.gen_params.merged(max_tokens=max(task.gen_params.max_tokens, max_tokens))  # type: ignore[misc]
    return view


# ---- prompt editing shared by the variants ------------------------------------------------------
def append_to_prompt(messages: list[Message], text: str) -> list[Message]:
    """A copy of `messages` with `text` added at the end of the last user message."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = f"{m['content']}\n\n{text}"
            break
    else:
        out.append({"role": "user", "content": text})
    return out


def fits(client: ModelClient, messages: list[Message], reserve: int) -> bool:
    """Whether `messages` and `reserve` completion tokens fit the model's window (an unknown one: yes)."""
    window = client.context_window
    if not window:
        return True
    return client.count_tokens("\n".join(m["content"] for m in messages)) + reserve <= window


def with_passages(
    task: Task,
    sample: Sample,
    client: ModelClient,
    passages: list[Any],
    template: str,
    name: str,
    replace: bool,
) -> tuple[list[Message], str]:
    """The task's prompt plus the retrieved passages. Keeps the full context when it fits (the mode
    'full+chunks'); otherwise, or with `replace`, the context is replaced by the passages alone."""
    block = prompts.render(template, **{name: passages})
    if not replace:
        messages = append_to_prompt(task.render(sample), block)
        if fits(client, messages, task.gen_params.max_tokens):
            return messages, "full+chunks"
    texts = [p if isinstance(p, str) else f"{p['chunk']}\n({p['note']})" for p in passages]
    only = prompts.render("variants/rag_only.j2", passages=texts)
    replaced = dataclasses.replace(sample, context=only)
    messages = task.render(replaced)
    if only not in "".join(m["content"] for m in messages):  # the template does not show the context
        messages = append_to_prompt(messages, only)
    return messages, "chunks_only"
