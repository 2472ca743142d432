"""JudgedTask: a generative task whose replies a judge model scores on a rubric (emobench/judge.py).

The model writes free text; there is no gold label to compare it with. A subclass gives the rubric of a
sample (`rubric`) and what the judge's template sees (`judge_variables`); this class reads the reply
(any non-empty text, a reasoning preamble dropped), and aggregates the judged scores:

- the task's metric (its `primary_metric`) is the mean judged score on the rubric's scale with a bootstrap 95%
  CI, over the samples that were judged plus the model's unreadable (empty) replies, which get the
  lowest score of the scale; samples no judge's verdict could be read for are left out and counted
  apart (results.json `judge.n_judge_unparseable`), never scored 0;
- `details.criteria`: the mean of each criterion (per aspect where the rubric has aspects) over the
  judges and samples, with CIs, so a user sees what a score is made of.

A no-code task file (emobench/taskfile.py) with a `judge:` rubric becomes a `JudgedFileTask`: rows with
an `input` (and optionally a `target`, shown to the judge as a reference answer), a prompt template, and
the rubric's criteria (names, or {key, title, description}), `scale: [low, high]` and optional
`template` / `system` (a file beside the YAML, a file in prompts/, or inline jinja2; default
prompts/judges/generic.j2, which shows the judge `input`, `reference` and `reply`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from . import metrics as M
from . import parsing
from .data import DataError, task_file_rows
from .errors import ConfigError
from .judge import SYSTEM_TEMPLATE, Criterion, Rubric, judge_unparseable
from .schema import ScoredRecord
from .task import Task
from .types import GenParams, Metric, Sample


class JudgedTask(Task):
    family: ClassVar[str] = "generation"
    primary_metric: ClassVar[str] = "judge_score"  # the mean judged score, named by each task

    def parse(self, text: str, sample: Sample) -> Any:
        """The reply itself; None (unparseable) only when it is empty."""
        if not isinstance(text, str):
            return None
        reply = parsing.strip_reasoning(text).strip()
        return reply or None

    def answer_space(self, sample: Sample) -> list[Any]:
        return []  # free text: nothing a baseline could pick from

    def leak_texts(self, sample: Sample) -> list[str]:
        return []  # no gold label to copy from a retrieved chunk

    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
        judged = [r for r in records if not judge_unparseable(r)]
        metrics = {self.primary_metric: M.mean([float(r["score"] or 0.0) for r in judged])}
        return metrics, {"criteria": criteria_means(judged)}


def criteria_means(records: list[ScoredRecord]) -> dict[str, Any]:
    """{criterion slot: mean over samples of the judges' mean score} with CIs."""
    per_slot: dict[str, list[float]] = {}
    for r in records:
        verdicts = [v["scores"] for v in (r["trace"].get("judge") or {}).get("judges", []) if v.get("scores")]
        for slot in dict.fromkeys(k for v in verdicts for k in v):
            per_slot.setdefault(slot, []).append(float(np.mean([v[slot] for v in verdicts if slot in v])))
    return {slot: M.mean(values).as_dict() for slot, values in per_slot.items()}


_FILE_KEYS = {"criteria", "scale", "template", "system", "max_tokens"}


class JudgedFileTask(JudgedTask):
    """A task file's generative task: its rows, its prompt, its rubric."""

    data_path: ClassVar[Path]
    fields: ClassVar[dict[str, str]]
    file_rubric: ClassVar[Rubric]

    def rubric(self, sample: Sample) -> Rubric:
        return self.file_rubric

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        f = self.fields
        for _line, sid, row in task_file_rows(self.data_path, f, ("input", "target")):
            extra = {k: row[v] for k, v in f.items() if k not in ("input", "target", "id") and v in row}
            target = row[f["target"]] if "target" in f else None
            yield Sample(id=sid, input=str(row[f["input"]]), target=target, metadata=extra)


def judged_task_class(path: Path, spec: dict[str, Any]) -> type[JudgedFileTask]:
    """The task class of a task file with a `judge:` rubric (validated here: one clear line per mistake)."""
    for key in ("name", "data", "fields", "template"):
        if key not in spec:
            raise ConfigError(f"{path}: missing required key {key!r}")
    fields = dict(spec["fields"])
    if "input" not in fields:
        raise ConfigError(f"{path}: fields must name 'input'")
    data_path = (path.parent / spec["data"]).resolve()
    if data_path.suffix not in (".jsonl", ".csv", ".tsv"):
        raise DataError(data_path, "data file must be .jsonl, .csv or .tsv")
    name = str(spec["name"])
    attrs = {
        "name": name,
        "description": spec.get("description", f"judged task from {path.name}"),
        "source": spec.get("source", str(path)),
        "license": spec.get("license", ""),
        "family": spec.get("family", "generation"),
        "template": _template(path, spec["template"]),
        "system_template": _template(path, spec["system"]) if spec.get("system") else None,
        "instruction": spec.get("instruction", ""),
        "gen_params": GenParams(**(spec.get("generation") or {})),
        "data_path": data_path,
        "fields": fields,
        "file_rubric": _rubric(path, name, spec["judge"]),
    }
    return type(f"JudgedFileTask_{name}", (JudgedFileTask,), attrs)


def _rubric(path: Path, name: str, judge: Any) -> Rubric:
    where = f"{path}: judge"
    if not isinstance(judge, dict) or set(judge) - _FILE_KEYS:
        raise ConfigError(f"{where}: expected a mapping with keys among {', '.join(sorted(_FILE_KEYS))}")
    criteria = []
    for item in judge.get("criteria") or []:
        item = {"key": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or not str(item.get("key", "")).isidentifier():
            raise ConfigError(f"{where}: each criterion is a name or {{key, title, description}}: {item!r}")
        criteria.append(
            Criterion(
                str(item["key"]), str(item.get("title") or item["key"]), str(item.get("description", ""))
            )
        )
    scale = judge.get("scale", [1, 5])
    try:
        low, high = (float(x) for x in scale)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: scale must be [low, high], got {scale!r}") from None
    if not criteria or high <= low:
        raise ConfigError(f"{where}: needs at least one criterion and a scale with high > low")
    return Rubric(
        name,
        tuple(criteria),
        low,
        high,
        _template(path, judge.get("template") or "judges/generic.j2"),
        _template(path, judge["system"]) if judge.get("system") else SYSTEM_TEMPLATE,
        max_tokens=int(judge.get("max_tokens", 512)),
    )


def _template(path: Path, ref: Any) -> str:
    """A template named in a task file: a file beside it, else a prompts/ name or inline jinja2."""
    ref = str(ref)
    if "\n" not in ref and (path.parent / ref).is_file():
        return (path.parent / ref).read_text(encoding="utf-8")
    return ref
