"""No-code tasks: a YAML file naming a local JSONL/CSV file, its fields, a jinja2 template and metrics.

    name: my_task
    data: items.jsonl              # relative to the YAML file; .jsonl, .csv or .tsv
    fields: {id: id, input: text, target: label, choices: options}
    labels: [joy, sadness, anger]  # a fixed label set instead of a per-row `choices` field
    template: "{{ input }}\\n{{ lettered_choices }}\\nReply with the letter."   # or prompts file / path
    system: "You are a careful annotator."
    output_mode: generate          # or multiple_choice
    metrics: [accuracy, macro_f1]
    parser: helpers.py:parse_feeling   # optional: a Python function instead of the default parser
    scorer: helpers.py:score_feeling   # optional: a Python function instead of exact match

`parser` and `scorer` name a function as `FILE.py:function` (a path relative to the YAML file) or
`package.module:function` (an importable module):
- `parser(text: str, sample: Sample) -> answer | None`: the answer in the model's reply, or None when
  it cannot be read (scored as unparseable). An answer that is one of `sample.choices` (its text, any
  case) is turned into that option's index, the form `sample.target` has; anything else is kept as is.
- `scorer(parsed, sample: Sample) -> float`: the sample's score in [0, 1] (accuracy is its mean; 1
  and 0 by default: `parsed == sample.target`). It is not called for an unparseable reply.
The source of the file or module that holds them is part of the task's template hash, so editing the
function makes a new run identity (no resume into, or comparison with, runs scored the old way).

Rows are validated as they are read: a missing field, an unknown label or a duplicate id is a
DataError naming the file and line.

A `judge:` rubric instead of a gold label makes a generative task that judge models score (`emobench run
--judge SPEC`; emobench/judged.py has the keys):

    judge:
      criteria: [{key: empathy, title: Empathy, description: "..."}, clarity]
      scale: [1, 5]
      template: my_judge.j2        # optional; default prompts/judges/generic.j2

A file with neither `choices` nor `labels` (and `output_mode: generate`) asks for an emotion in the
model's own words, scored on emobench's three-tier emotion hierarchy (`FreeTextFileTask`).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from . import metrics as M
from . import parsing
from .compound import expected_agreement, is_compound
from .data import DataError, read_yaml_mapping, task_file_rows
from .errors import ConfigError
from .hierarchy import TIERS
from .hierarchy import load as load_hierarchy
from .judged import judged_task_class
from .schema import ScoredRecord
from .task import ChoiceTask, Task
from .types import GenParams, Metric, Sample, stable_hash
from .wheel import is_plutchik, wheel_report

KNOWN_METRICS = ("accuracy", "macro_f1", "weighted_f1")
_KEYS = {
    "name",
    "description",
    "data",
    "fields",
    "labels",
    "template",
    "system",
    "output_mode",
    "metrics",
    "family",
    "generation",
    "instruction",
    "source",
    "license",
    "choices_separator",
    "parser",
    "scorer",
    "judge",
}


def load_python_file(path: Path):
    """A Python file imported by path, once per process and content, under a module name unique to its
    path and text (two `helpers.py` of two task files do not collide; an edited file is imported anew)."""
    path = Path(path).resolve()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from None
    name = f"emobench_task_file_{path.stem}_{stable_hash([str(path), text])[:12]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be imported as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def code_reference(path: Path, key: str, ref: Any) -> tuple[Callable[..., Any], str]:
    """The function named by `key: FILE.py:function` or `key: package.module:function` in the task
    file `path`, and the source it comes from (the whole file or module, for the task's identity)."""
    where = f"{path}: {key}: {ref!r}"
    target, _, func_name = str(ref).rpartition(":")
    if not isinstance(ref, str) or not target or not func_name:
        raise ConfigError(f"{where}: expected FILE.py:function or package.module:function")
    try:
        if target.endswith(".py"):
            file = path.parent / target
            if not file.is_file():
                raise ConfigError(f"{where}: no file {file}")
            module = load_python_file(file)
            source = file.read_text(encoding="utf-8")
        else:
            module = importlib.import_module(target)
            try:
                source = inspect.getsource(module)
            except (OSError, TypeError):  # no source (a compiled module): its name stands for it
                source = target
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"{where}: cannot import {target} ({type(exc).__name__}: {exc})") from None
    func = getattr(module, func_name, None)
    if func is None:
        raise ConfigError(f"{where}: {target} has no function {func_name!r}")
    if not callable(func):
        raise ConfigError(f"{where}: {target}.{func_name} is not callable")
    return func, source


def task_class_from_file(path: Path) -> type[Task]:
    path = Path(path)
    spec = read_yaml_mapping(path, _KEYS, "task file")
    if "judge" in spec:  # a rubric instead of a gold label: a generative task judge models score
        return judged_task_class(path, spec)
    for key in ("name", "data", "fields", "template"):
        if key not in spec:
            raise ConfigError(f"{path}: missing required key {key!r}")
    fields = dict(spec["fields"])
    for key in ("input", "target"):
        if key not in fields:
            raise ConfigError(f"{path}: fields must name {key!r}")
    free_text = "choices" not in fields and not spec.get("labels")
    if free_text and spec.get("output_mode", "generate") != "generate":
        raise ConfigError(
            f"{path}: give fields.choices or a fixed `labels` list, or use output_mode: generate for "
            "free-text emotion answers"
        )
    metric_names = list(spec.get("metrics") or ["accuracy"])
    if free_text and metric_names != ["accuracy"]:
        raise ConfigError(f"{path}: a free-text task reports accuracy per tier; metrics must be [accuracy]")
    bad = [m for m in metric_names if m not in KNOWN_METRICS]
    if bad:
        raise ConfigError(f"{path}: unknown metric(s) {bad}; known: {list(KNOWN_METRICS)}")
    if spec.get("output_mode", "generate") not in ("generate", "multiple_choice"):
        raise ConfigError(f"{path}: output_mode must be generate or multiple_choice")
    template = str(spec["template"])
    if "\n" not in template and (path.parent / template).is_file():
        template = (path.parent / template).read_text(encoding="utf-8")
    data_path = (path.parent / spec["data"]).resolve()
    code: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for key in ("parser", "scorer"):
        if spec.get(key) is not None:
            func, sources[key] = code_reference(path, key, spec[key])
            code[key] = staticmethod(func)

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
        "code_hash": stable_hash(sources)[:16] if sources else None,
    }
    if "parser" in code:  # only then: the default parser keeps its strict reading (strict_accuracy)
        attrs.update(parser_fn=code["parser"], parse=FileTask.parse_with_function)
    if "scorer" in code:
        attrs.update(scorer_fn=code["scorer"], score=FileTask.score_with_function)
    return type(f"FileTask_{attrs['name']}", (FreeTextFileTask if free_text else FileTask,), attrs)


class FileTask(ChoiceTask):
    data_path: ClassVar[Path]
    fields: ClassVar[dict[str, str]]
    labels: ClassVar[list[str]]
    metric_names: ClassVar[list[str]]
    choices_separator: ClassVar[str]
    code_hash: ClassVar[str | None] = None  # of the `parser`/`scorer` sources, when the file names any
    parser_fn: ClassVar[staticmethod[[str, Sample], Any]]  # staticmethods: called without `self`
    scorer_fn: ClassVar[staticmethod[[Any, Sample], float]]

    def template_hash(self) -> str:
        """The prompt's hash, and with a `parser`/`scorer` reference also the code's: a changed
        function gives a new run identity."""
        base = super().template_hash()
        return base if self.code_hash is None else stable_hash([base, self.code_hash])[:16]

    def parse_with_function(self, text: str, sample: Sample) -> Any:
        """`parse` when the task file names a `parser`: its answer, an option's text read as its index."""
        answer = self.parser_fn(text, sample)
        if isinstance(answer, str) and sample.choices:
            lowered = [c.lower() for c in sample.choices]
            if answer.strip().lower() in lowered:
                return lowered.index(answer.strip().lower())
        return answer

    def score_with_function(self, parsed: Any, sample: Sample) -> float:
        """`score` when the task file names a `scorer`."""
        return float(self.scorer_fn(parsed, sample))

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        f = self.fields
        for line, sid, row in task_file_rows(self.data_path, f, ("input", "target", "choices")):
            choices = self._choices(row, line)
            target = self._target(row[f["target"]], choices, line)
            extra = {
                k: row[v] for k, v in f.items() if k not in ("input", "target", "choices", "id") and v in row
            }
            yield Sample(id=sid, input=str(row[f["input"]]), target=target, choices=choices, metadata=extra)

    def _choices(self, row: dict[str, Any], line: int) -> list[str] | None:
        if "choices" not in self.fields:
            return list(self.labels)
        value = row[self.fields["choices"]]
        if isinstance(value, str):
            value = [c.strip() for c in value.split(self.choices_separator)]
        if not isinstance(value, list) or len(value) < 2:
            raise DataError(self.data_path, "choices must be a list of at least 2 options", line)
        return [str(c) for c in value]

    def _target(self, value: Any, choices: list[str] | None, line: int) -> Any:
        choices = choices or []
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

    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
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
        if self.labels and "choices" not in self.fields:
            gold = [str(self.labels[r["target"]]) for r in records]
            answers = [self._label(r["parsed"]) for r in records]
            if is_plutchik(self.labels):  # near misses on the wheel: emobench/wheel.py
                metrics["wheel_credit"], details["wheel"] = wheel_report(gold, answers)
            if any(is_compound(label) for label in self.labels):  # emobench/compound.py
                metrics["expected_agreement"] = expected_agreement(answers, gold)
        return metrics, details

    def _label(self, index: Any) -> str | None:
        """The declared label an answer index stands for (None: unparseable or out of range)."""
        ok = isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(self.labels)
        return str(self.labels[index]) if ok else None


class FreeTextFileTask(FileTask):
    """A task file without options: the reply names an emotion in its own words (JSON `answer` or
    `emotion`, else the reply itself), looked up in emobench's three-tier hierarchy
    (emobench/hierarchy.py). `accuracy` is agreement at tier 1 (the primary emotion: "irritated" for a
    gold "furious" is right); `accuracy_tier1`..`accuracy_tier3` report every tier, and `n_unmapped` the
    replies that name no listed term (wrong at every tier). A gold answer that is not a listed term is
    a DataError naming the line."""

    def _choices(self, row: dict[str, Any], line: int) -> list[str] | None:
        return None

    def _target(self, value: Any, choices: list[str] | None, line: int) -> str:
        term = load_hierarchy().find(str(value))
        if term is None:
            source = load_hierarchy().source.name
            raise DataError(self.data_path, f"gold emotion {value!r} is not a term of {source}", line)
        return term.term

    def parse(self, text: str, sample: Sample) -> Any:
        """The listed term the reply names; a reply naming none is kept as said (unmapped)."""
        if not isinstance(text, str):
            return None
        text = parsing.strip_reasoning(text)
        value = parsing.json_field(text, "answer", "emotion")
        reply = str(value) if value is not None and not isinstance(value, (dict, list)) else text
        term = load_hierarchy().find(reply)
        return term.term if term is not None else (reply.strip()[:80] or None)

    def score(self, parsed: Any, sample: Sample) -> float:
        hierarchy = load_hierarchy()
        return float(hierarchy.agree(hierarchy.lookup(str(parsed)), hierarchy.lookup(sample.target), 1))

    def answer_space(self, sample: Sample) -> list[Any]:
        """The primaries' own names (what the reference baselines answer)."""
        return sorted({t.primary for t in load_hierarchy().terms.values()})

    def format_answer(self, answer: Any, sample: Sample) -> str:
        return json.dumps({"answer": str(answer)})

    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
        hierarchy = load_hierarchy()
        answers = [hierarchy.lookup(r["parsed"]) if isinstance(r["parsed"], str) else None for r in records]
        golds = [hierarchy.lookup(r["target"]) for r in records]
        metrics = {"accuracy": M.proportion([float(r["score"] or 0.0) for r in records])}
        for tier in TIERS:
            agreed = [float(hierarchy.agree(a, g, tier)) for a, g in zip(answers, golds, strict=True)]
            metrics[f"accuracy_tier{tier}"] = M.proportion(agreed)
        unmapped = sum(a is None and r["parsed"] is not None for a, r in zip(answers, records, strict=True))
        return metrics, {"n_unmapped": unmapped, "hierarchy": f"emobench/lexicon/{hierarchy.source.name}"}
