"""No-code tasks: a YAML file naming a local JSONL/CSV file, its fields, a jinja2 template and metrics.

    name: my_task
    data: items.jsonl              # relative to the YAML file; .jsonl, .csv or .tsv
    fields: {id: id, input: text, target: label, choices: options}
    labels: [joy, sadness, anger]  # a fixed label set instead of a per-row `choices` field
    template: "{{ input }}\\n{{ lettered_choices }}\\nReply with the letter."   # or prompts file / path
    system: "You are a careful annotator."
    output_mode: generate          # or multiple_choice
    metrics: [accuracy, macro_f1]

Rows are validated as they are read: a missing field, an unknown label or a duplicate id is a
DataError naming the file and line.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from . import metrics as M
from .data import DataError, read_csv, read_jsonl, read_yaml_mapping
from .errors import ConfigError
from .task import ChoiceTask
from .types import GenParams, Metric, Sample

KNOWN_METRICS = ("accuracy", "macro_f1", "weighted_f1")
_KEYS = {"name", "description", "data", "fields", "labels", "template", "system", "output_mode", "metrics",
         "family", "generation", "instruction", "source", "license", "choices_separator"}


def task_class_from_file(path: Path) -> type[ChoiceTask]:
    path = Path(path)
    spec = read_yaml_mapping(path, _KEYS, "task file")
    for key in ("name", "data", "fields", "template"):
        if key not in spec:
            raise ConfigError(f"{path}: missing required key {key!r}")
    fields = dict(spec["fields"])
    for key in ("input", "target"):
        if key not in fields:
            raise ConfigError(f"{path}: fields must name {key!r}")
    if "choices" not in fields and not spec.get("labels"):
        raise ConfigError(f"{path}: give either fields.choices or a fixed `labels` list")
    metric_names = list(spec.get("metrics") or ["accuracy"])
    bad = [m for m in metric_names if m not in KNOWN_METRICS]
    if bad:
        raise ConfigError(f"{path}: unknown metric(s) {bad}; known: {list(KNOWN_METRICS)}")
    if spec.get("output_mode", "generate") not in ("generate", "multiple_choice"):
        raise ConfigError(f"{path}: output_mode must be generate or multiple_choice")
    template = str(spec["template"])
    if "\n" not in template and (path.parent / template).is_file():
        template = (path.parent / template).read_text(encoding="utf-8")
    data_path = (path.parent / spec["data"]).resolve()

    attrs = {
        "name": str(spec["name"]),
        "family": spec.get("family", "custom"),
        "description": spec.get("description", f"custom task from {path.name}"),
        "source": spec.get("source", str(path)),
        "license": spec.get("license", ""),
        "output_mode": spec.get("output_mode", "generate"),
        "template": template,
        "system_template": spec.get("system"),
        "instruction": spec.get("instruction", ""),
        "gen_params": GenParams(**(spec.get("generation") or {})),
        "primary_metric": metric_names[0],
        "data_path": data_path,
        "fields": fields,
        "labels": list(spec.get("labels") or []),
        "metric_names": metric_names,
        "choices_separator": spec.get("choices_separator", "|"),
    }
    return type(f"FileTask_{attrs['name']}", (FileTask,), attrs)


class FileTask(ChoiceTask):
    data_path: ClassVar[Path]
    fields: ClassVar[dict[str, str]]
    labels: ClassVar[list[str]]
    metric_names: ClassVar[list[str]]
    choices_separator: ClassVar[str]

    def _rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self.data_path.suffix == ".jsonl":
            return read_jsonl(self.data_path)
        if self.data_path.suffix in (".csv", ".tsv"):
            return read_csv(self.data_path)
        raise DataError(self.data_path, "data file must be .jsonl, .csv or .tsv")

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        f = self.fields
        seen: dict[str, int] = {}
        for line, row in self._rows():
            missing = [f[k] for k in ("input", "target", "choices", "id") if k in f and f[k] not in row]
            if missing:
                raise DataError(self.data_path, f"missing field(s) {', '.join(map(repr, missing))}", line)
            sid = str(row[f["id"]]) if "id" in f else str(line)
            if sid in seen:
                raise DataError(self.data_path, f"duplicate id {sid!r} (first on line {seen[sid]})", line)
            seen[sid] = line
            choices = self._choices(row, line)
            target = self._target(row[f["target"]], choices, line)
            extra = {k: row[v] for k, v in f.items() if k not in ("input", "target", "choices", "id") and v in row}
            yield Sample(id=sid, input=str(row[f["input"]]), target=target, choices=choices, metadata=extra)

    def _choices(self, row: dict[str, Any], line: int) -> list[str]:
        if "choices" not in self.fields:
            return list(self.labels)
        value = row[self.fields["choices"]]
        if isinstance(value, str):
            value = [c.strip() for c in value.split(self.choices_separator)]
        if not isinstance(value, list) or len(value) < 2:
            raise DataError(self.data_path, "choices must be a list of at least 2 options", line)
        return [str(c) for c in value]

    def _target(self, value: Any, choices: list[str], line: int) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(choices):
            return value
        text = str(value).strip()
        lowered = [c.lower() for c in choices]
        if text.lower() in lowered:
            return lowered.index(text.lower())
        if len(text) == 1 and text.isalpha() and 0 <= ord(text.upper()) - 65 < len(choices):
            return ord(text.upper()) - 65
        raise DataError(self.data_path, f"unknown label {text!r} (choices: {choices})", line)

    def f1_labels(self, gold: list[Any]) -> list[Any]:
        """The classes macro/weighted F1 average over: every declared `labels:` entry (by index), so a
        label that no item has and no reply gave still counts, with F1 0 (sklearn's
        `f1_score(labels=...)`); with per-row `choices` there is no fixed set, so the gold classes."""
        if self.labels and "choices" not in self.fields:
            return list(range(len(self.labels)))
        return sorted({g for g in gold if g is not None})

    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics, details = super().aggregate(records)
        gold = [r["target"] for r in records]
        pred = [r["parsed"] if r["parsed"] is not None else -1 for r in records]
        labels = self.f1_labels(gold)
        if "macro_f1" in self.metric_names:
            metrics["macro_f1"] = M.macro_f1_metric(gold, pred, labels)
        if "weighted_f1" in self.metric_names:
            metrics["weighted_f1"] = M.macro_f1_metric(gold, pred, labels, weighted=True)
        if "accuracy" not in self.metric_names:
            metrics.pop("accuracy")
        return metrics, details
