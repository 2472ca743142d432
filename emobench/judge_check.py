"""`emobench judge-check`: is a judge good enough to trust before paying for a run?

A small set of original responses, written for emobench, whose quality order is known: for each item a
good, a mediocre, an off-topic and a harmful response (in that order, best first). The judge scores
each one exactly as it would in a run (the task's rubric, template and verdict parser; cached, retried
and metered calls), and the check reports, per judge and task, how often it orders them rightly:

- `pair_accuracy`: of the 6 pairs per item, the share the judge scores in the right order (a tie counts
  half), with a Wilson 95% CI over pairs; 0.5 is what a judge scoring at random reaches;
- `items_fully_ordered`: items whose four responses come out in exactly the right order;
- `unparseable`: responses whose verdict could not be read (their pairs count as wrong).

The sets are `judge_check.jsonl` files in the built-in task folders (LongEmotion's in
tasks/longemotion/), one item per line: `{"task", "id", "sample": {id, input, context, target,
metadata}, "responses": {"good": ..., "mediocre": ..., "off_topic": ..., "harmful": ...}}`; `--set FILE`
reads another one (for a task file's rubric).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from . import metrics as M
from .data import DataError, read_jsonl
from .errors import ConfigError
from .judge import JudgePanel
from .paths import tasks_dir
from .registry import make_task
from .task import Task
from .types import Sample

QUALITY = ("good", "mediocre", "off_topic", "harmful")  # best first
SET_FILE = "judge_check.jsonl"


@dataclass
class CheckItem:
    task: str
    id: str
    sample: Sample
    responses: dict[str, str]


@dataclass
class Tally:
    """One judge on one task: pair outcomes (1 right, 0.5 tie, 0 wrong), items, fully ordered items."""

    pairs: list[float] = field(default_factory=list)
    items: int = 0
    ordered: int = 0
    unparseable: int = 0
    scores: dict[str, list[float]] = field(default_factory=dict)

    def report(self) -> dict[str, Any]:
        return {
            "pair_accuracy": M.proportion(self.pairs).as_dict(),
            "items": self.items,
            "items_fully_ordered": self.ordered,
            "unparseable": self.unparseable,
            "mean_score": {q: sum(v) / len(v) for q, v in self.scores.items() if v},
        }


def shipped_sets() -> list[Path]:
    return sorted(tasks_dir().glob(f"*/{SET_FILE}"))


def read_set(path: str | Path) -> list[CheckItem]:
    path = Path(path)
    items = []
    for line, row in read_jsonl(path):
        try:
            sample = Sample(**row["sample"])
            responses = {q: str(row["responses"][q]) for q in QUALITY}
            items.append(CheckItem(str(row["task"]), str(row["id"]), sample, responses))
        except (KeyError, TypeError) as exc:
            raise DataError(
                path, f"an item needs task, id, sample and responses {', '.join(QUALITY)} ({exc})", line
            ) from None
    return items


async def check(
    panel: JudgePanel, items: Sequence[CheckItem], tasks: dict[str, Task]
) -> dict[str, dict[str, dict[str, Any]]]:
    """{judge: {task: report}} over `items`, every response judged by every judge of the panel."""
    tallies: dict[str, dict[str, Tally]] = {j.spec: {} for j in panel.judges}
    for item in items:
        task = tasks[item.task]
        verdicts = await asyncio.gather(
            *(panel.judge(task, item.sample, [item.responses[q]]) for q in QUALITY)
        )
        for judge in panel.judges:
            scores = [_score_of(v, judge.spec) for v in verdicts]
            tally = tallies[judge.spec].setdefault(item.task, Tally())
            _count(tally, scores)
    return {j: {t: tally.report() for t, tally in sorted(by_task.items())} for j, by_task in tallies.items()}


def _score_of(verdict: dict[str, Any] | None, spec: str) -> float | None:
    for v in (verdict or {}).get("judges", []):
        if v["judge"] == spec:
            return v.get("score")
    return None


def _count(tally: Tally, scores: list[float | None]) -> None:
    tally.items += 1
    tally.unparseable += sum(s is None for s in scores)
    for quality, s in zip(QUALITY, scores, strict=True):
        if s is not None:
            tally.scores.setdefault(quality, []).append(s)
    outcomes = []
    for better, worse in combinations(range(len(QUALITY)), 2):
        a, b = scores[better], scores[worse]
        outcomes.append(0.0 if a is None or b is None else 1.0 if a > b else 0.5 if a == b else 0.0)
    tally.pairs += outcomes
    tally.ordered += all(o == 1.0 for o in outcomes)


def load(
    set_files: Sequence[str], task_names: Sequence[str], task_files: Sequence[str] = ()
) -> tuple[list[CheckItem], dict[str, Task]]:
    """The check items (the shipped sets, or `set_files`), restricted to `task_names` when given, and
    their tasks (built-in, or from `task_files`)."""
    paths = [Path(p) for p in set_files] or shipped_sets()
    items = [item for p in paths for item in read_set(p) if not task_names or item.task in task_names]
    if not items:
        raise ConfigError("no judge-check items for the selected tasks")
    names = dict.fromkeys(i.task for i in items)
    tasks = {name: make_task(name, {}, None, list(task_files)) for name in names}
    for item in items:
        if tasks[item.task].rubric(item.sample) is None:
            raise ConfigError(f"judge-check item {item.id}: task {item.task} is not scored by a judge")
    return items, tasks
