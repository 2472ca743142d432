"""`permute`: every sample of a choice task asked in k option orders, to measure what the option order
does to the score.

Orders are cyclic shifts: under shift s, position p (0 = A) shows the original option (p + s) mod n.
Order j of a sample with n options uses s_j = (c + floor(j * n / k)) mod n, the k shifts spread evenly
around the list, with an offset c = hash(sample id) mod n. With k = n every sample puts its gold option
at every letter exactly once; with k < n the offset spreads the gold letters evenly over the samples
(in expectation: it is a fixed hash, so a sample is asked the same way in every run and every request
is served by the response cache on resume). The offset never depends on the answer. A task with several
option lists (EmoBench EU: emotions and causes) shifts each list this way.

Each order is asked as the task asks it (`ask`: log-likelihood ranking or generation, draws, re-asks),
parsed and scored against the reordered sample, and its answer is mapped back to the original option
indices (`Task.restore_answer`). The sample's record holds one mapped answer per order, in the task's
own reply format, so the task's own vote (`Task.combine`) gives the headline answer (permutation
self-consistency) and its own scoring and metrics apply; the raw replies, shifts, letters picked and
each order's verdict are in the trace (`permute.conditions`). `summarize` reports, per task: the
primary metric per order, their mean and spread, consistency and position bias (emobench/robustness.py).
The mapped answers always read as stated, so the headline `strict_accuracy` of a permute run counts
every readable order as stated; `strict_accuracy_per_order` reads each order's raw replies.
"""

from __future__ import annotations

from typing import Any

from ..client import ModelClient
from ..errors import ConfigError
from ..robustness import position_bias, summarize_conditions
from ..schema import ScoredRecord
from ..scoring import score_replies
from ..task import Task
from ..types import Sample, Usage, stable_hash
from .base import REPLY_CHARS_KEPT, Variant, VariantOutput, ask

KEY = "permute"


def shifts_for(task: Task, sample: Sample, order: int, k: int) -> dict[str, int]:
    """The cyclic shift of each option list of `sample` in its order `order` of `k`."""
    offset = int(stable_hash([KEY, sample.id]), 16)
    return {name: (offset + (order * n) // k) % n for name, n in task.option_lists(sample).items() if n}


class Permute(Variant):
    name = "permute"
    description = (
        "each sample in k cyclic option orders: per-order scores, spread, consistency, position bias"
    )
    arg_defaults = {"k": 4}

    def __init__(self, **args: Any):
        super().__init__(**args)
        try:
            self.k = int(self.args["k"])
        except (TypeError, ValueError):
            raise ConfigError(f"variant permute: k={self.args['k']!r} is not a whole number") from None
        if self.k < 2:
            raise ConfigError(f"variant permute: k={self.k}: at least 2 orders are needed to compare orders")

    def check_task(self, task: Task, samples: list[Sample]) -> None:
        for sample in samples:
            lists = task.option_lists(sample)
            if not lists or not all(lists.values()):
                raise ConfigError(
                    f"variant permute: task {task.name} shows no options to reorder (sample {sample.id!r} "
                    "has none); permute asks choice tasks only (samples with `choices`)"
                )
            short = {name: n for name, n in lists.items() if n < self.k}
            if short:
                name, n = min(short.items(), key=lambda kv: kv[1])
                raise ConfigError(
                    f"variant permute: k={self.k} orders, but sample {sample.id!r} of task {task.name} shows "
                    f"{n} options ({name}), so only {n} distinct cyclic orders: use --variant-arg permute.k={n}"
                )

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        conditions: list[dict[str, Any]] = []
        mapped: list[str] = []
        outs: list[VariantOutput] = []
        for order in range(self.k):
            shifts = shifts_for(task, sample, order, self.k)
            shown = task.reorder_options(sample, shifts)
            out = await ask(task, shown, task.render(shown), client, usage)
            outs.append(out)
            verdict = score_replies(task, shown, out.responses)
            answer = (
                task.restore_answer(verdict.parsed, sample, shifts) if verdict.parsed is not None else None
            )
            # the order's answer in the original frame, as the task's own reply; "" stays unreadable
            mapped.append(task.format_answer(answer, sample) if answer is not None else "")
            conditions.append(
                {
                    "name": str(order),
                    "shifts": shifts,
                    "parsed": answer,
                    "score": verdict.score,
                    "outcome": verdict.outcome,
                    "strict": verdict.strict,
                    "pick": task.option_positions(verdict.parsed, shown),
                    "gold": task.option_positions(shown.target, shown),
                    "replies": [r[-REPLY_CHARS_KEPT:] for r in out.responses],
                    "trace": out.trace,
                }
            )
        trace = {"mode": outs[0].trace.get("mode"), KEY: {"k": self.k, "conditions": conditions}}
        return VariantOutput(mapped, outs[0].prompt, trace)  # the prompt shown: order 0's

    def summarize(self, task: Task, records: list[ScoredRecord]) -> dict[str, Any]:
        out = summarize_conditions(task, records, KEY, "per_order")
        if not out:
            return {}
        conds = [((r.get("trace") or {}).get(KEY) or {}).get("conditions") or [] for r in records]
        conds = [c for c in conds if [str(x["name"]) for x in c] == out["conditions"]]
        picks = [[c.get("pick") or {} for c in item] for item in conds]
        golds = [[c.get("gold") or {} for c in item] for item in conds]
        return {"variant": self.name, "k": self.k, **out, "position_bias": position_bias(picks, golds)}
