"""EmoBench (Sabour et al., ACL 2024; MIT): Emotional Understanding (EU) and Emotional Application (EA).

Three tasks share one loader and one protocol switch:

- `emobench_eu`: two questions per scenario (which emotion, and why); an item is correct only when
  both answers are right, as in the paper. Emotion-only and cause-only accuracies are reported too.
- `emobench_eu_emotion`: the same prompt and replies (so a run of both costs no extra call: the
  response cache answers the second), scored on the emotion question alone.
- `emobench_ea`: the most effective action or response, one question of four options.

Protocols (`--task-arg protocol=`):
- `default`: one greedy reply per item in the dataset's choice order (`shuffle=true` shuffles the
  options with a fixed seed per item, to measure position bias).
- `paper`: the 2024 paper protocol: 5 sampled replies per item combined by majority vote (an
  unparseable reply wins only when every reply is unparseable; EU votes on each question separately)
  on the original order plus 3 shuffled orders; accuracy is the mean over the 4 orders. Each
  (item, order) is its own sample, id `<lang>-<qid>/o<k>`.

The authors' recorded outputs (CSV files with `Pred 1..5` columns) are read by
`read_reference_outputs`, which `emobench import` uses to reproduce the paper's figures.
"""

from __future__ import annotations

import ast
import dataclasses
import random
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from emobench import data, parsing
from emobench import metrics as M
from emobench.errors import ConfigError, DataError
from emobench.task import ChoiceTask, strict_score
from emobench.types import GenParams, Metric, Sample, stable_hash

HUB_ID = "SahandSab/EmoBench"
LANGS = ("en", "zh")
PAPER_ORDERS = 4  # the original order plus 3 shuffles
PAPER_DRAWS = 5
PAPER_TEMPERATURE = 0.6  # [inferred] the authors' current code samples at 0.6; the paper does not say


def _lettered(options: Sequence[str]) -> str:
    return "\n".join(f"{chr(65 + i)}) {c}" for i, c in enumerate(options))


def _index_of(path: Any, line: int, options: list[str], label: Any, field: str) -> int:
    """Labels are stored as option strings; the harness works with indices."""
    if label not in options:
        raise DataError(path, f"{field} {label!r} is not one of the options {options!r}", line)
    return options.index(label)


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes", "on")


class _EmoBenchTask(ChoiceTask):
    """What EU and EA share: data files, languages, the two protocols, and order-averaged accuracy."""

    family = "classification"
    source = "https://github.com/Sahandfer/EmoBench (HF: SahandSab/EmoBench)"
    license = "MIT"
    system_template = "emobench_system.j2"
    arg_defaults: ClassVar[dict[str, Any]] = {
        "lang": "en",
        "protocol": "default",
        "shuffle": False,
        "seed": 0,
    }
    gen_params = GenParams(temperature=0.0, max_tokens=64)
    file_name: ClassVar[str] = ""  # EU.jsonl / EA.jsonl
    output_spec: ClassVar[str] = ""

    def __init__(self, data_dir: str | None = None, **args: Any):
        super().__init__(data_dir, **args)
        lang = str(self.args["lang"])
        if lang not in (*LANGS, "all"):
            raise ConfigError(f"task {self.name}: lang must be en, zh or all, not {lang!r}")
        protocol = str(self.args["protocol"])
        if protocol not in ("default", "paper"):
            raise ConfigError(f"task {self.name}: protocol must be default or paper, not {protocol!r}")
        self.langs = LANGS if lang == "all" else (lang,)
        self.paper = protocol == "paper"
        self.shuffle = _bool(self.args["shuffle"])
        if self.paper:  # instance attributes shadow the class defaults; both reach the manifest
            self.draws = PAPER_DRAWS
            self.gen_params = GenParams(temperature=PAPER_TEMPERATURE, max_tokens=64)

    # ---- data -------------------------------------------------------------------------------
    def raw_rows(self) -> Iterator[tuple[Any, int, dict[str, Any]]]:
        """(source, line, row) from `--data-dir`/`EMOBENCH_DATA_DIR` when given, else from the hub."""
        local = data.find_local(data.data_dir(self.data_dir), self.file_name)
        if local is not None:
            for line, row in data.read_jsonl(local):
                yield local, line, row
            return
        if data.data_dir(self.data_dir) is not None:
            raise DataError(data.data_dir(self.data_dir), f"{self.file_name} not found in the data folder")
        for line, row in data.hub_rows(HUB_ID, data_files=self.file_name):
            yield f"hf://{HUB_ID}/{self.file_name}", line, row

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        if split != "test":
            raise ConfigError(f"task {self.name} has only a test split")
        seen: list[tuple[str, int]] = []
        source: Any = self.file_name
        for source, line, row in self.raw_rows():
            data.require(source, line, row, "qid", "language", "scenario", "subject")
            if row["language"] not in self.langs:
                continue
            base = self.build_sample(source, line, row)
            seen.append((base.id, line))
            yield from self.orders(base)
        data.check_unique_ids(source, seen)

    def build_sample(self, path: Any, line: int, row: dict[str, Any]) -> Sample:
        raise NotImplementedError

    def orders(self, base: Sample) -> list[Sample]:
        """The sample(s) to ask for one item: 1 (default) or 4 choice orders (paper protocol)."""
        if self.paper:
            return [self.reorder(base, k) for k in range(PAPER_ORDERS)]
        return [self.reorder(base, 1)] if self.shuffle else [base]

    def permutation(self, base: Sample, n: int, k: int, what: str) -> list[int]:
        """Order k of n options: 0 is the dataset's order; others are seeded by (seed, item, k)."""
        perm = list(range(n))
        if k:
            random.Random(stable_hash([self.args["seed"], base.id, k, what])).shuffle(perm)
        return perm

    def reorder(self, base: Sample, k: int) -> Sample:
        raise NotImplementedError

    # ---- prompt -----------------------------------------------------------------------------
    def prompt_variables(self, sample: Sample) -> dict[str, Any]:
        variables = super().prompt_variables(sample)
        variables["output_spec"] = self.output_spec
        return variables

    # ---- metrics ----------------------------------------------------------------------------
    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        """Accuracy = mean over choice orders of the per-order accuracy (one order: a plain
        proportion with a Wilson interval; several: items are resampled, orders kept together)."""
        metrics, details = super().aggregate(records)
        metrics["accuracy"] = order_mean(records, lambda r: float(r["score"] or 0.0))
        if "strict_accuracy" in metrics:  # averaged the same way as the headline, items resampled
            metrics["strict_accuracy"] = order_mean(records, strict_score)
        by_order: dict[int, list[float]] = {}
        for r in records:
            by_order.setdefault(int((r.get("metadata") or {}).get("order", 0)), []).append(
                float(r["score"] or 0.0)
            )
        if len(by_order) > 1:
            details["accuracy_by_order"] = {
                str(k): M.proportion(v).as_dict() for k, v in sorted(by_order.items())
            }
        by_lang: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            by_lang.setdefault(str((r.get("metadata") or {}).get("lang")), []).append(r)
        if len(by_lang) > 1:
            details["accuracy_by_lang"] = {
                k: order_mean(v, lambda r: float(r["score"] or 0.0)).as_dict()
                for k, v in sorted(by_lang.items())
            }
        details["protocol"] = "paper" if self.paper else ("shuffled" if self.shuffle else "default")
        return metrics, details

    # ---- the authors' recorded outputs ------------------------------------------------------
    def read_reference_outputs(self, paths: Sequence[str | Path]) -> list[tuple[Sample, list[str]]]:
        """Samples and replies from the authors' result CSVs (one file per choice order, the
        original order first). The files hold the options in the order they were asked and the
        predicted option indices (`-1` = unparseable); each index becomes the reply `format_answer`
        writes, so the task's own parser, vote and scorer decide, exactly as for a live run.

        The files record neither the item id nor its scenario, and their rows are not in the
        dataset's order (the dataset was reordered after the GPT-4 EA files were written: their row
        33 is item 187), so each row is matched to its item by its options (`ItemsByOptions`) when
        the dataset is at hand; without it, ids are the row numbers (`en-row12`), which never pass
        for an item's id."""
        if len(self.langs) != 1:
            raise ConfigError(f"task {self.name}: importing reference outputs needs lang=en or lang=zh")
        if len(paths) > 1 and not self.paper:
            raise ConfigError(
                f"{len(paths)} files are choice orders of the paper protocol: add --task-arg protocol=paper"
            )
        lang = self.langs[0]
        items = self._items(lang)
        out: list[tuple[Sample, list[str]]] = []
        for k, path in enumerate(paths):
            matched: dict[int, int] = {}  # item index -> the line of this file that matched it
            for i, (line, row) in enumerate(data.read_csv(path), start=1):
                context = (
                    items.find(path, line, self.reference_options(path, line, row), matched) if items else {}
                )
                qid = str(context.get("qid", f"row{i}"))
                out.append(self.reference_row(path, line, row, lang, qid, k, context))
        return out

    def _items(self, lang: str) -> ItemsByOptions | None:
        """The dataset's items in `lang`, when the data is at hand (scoring does not need them)."""
        try:
            rows = [row for _, _, row in self.raw_rows() if row.get("language") == lang]
        except DataError:
            return None
        return ItemsByOptions(self.file_name, rows, [self.item_options(row) for row in rows])

    def item_options(self, row: dict[str, Any]) -> list[str]:
        """Every option of a dataset row (what a reference row is matched on)."""
        raise NotImplementedError

    def reference_options(self, path: Any, line: int, row: dict[str, str]) -> list[str]:
        """Every option of a reference CSV row, in the same arrangement as `item_options`."""
        raise NotImplementedError

    def reference_row(
        self,
        path: Any,
        line: int,
        row: dict[str, str],
        lang: str,
        qid: str,
        order: int,
        context: dict[str, Any],
    ) -> tuple[Sample, list[str]]:
        raise NotImplementedError


def option_key(option: str) -> str:
    """An option as `ItemsByOptions` compares it: case, punctuation and quote style ignored (the
    authors' files have curly apostrophes where the dataset now has straight ones)."""
    return " ".join(re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", option).lower()).split())


class ItemsByOptions:
    """Finds a dataset item from a reference row's options, in any order. Options are compared by
    `option_key`; a few were reworded after the authors' runs, so the item sharing the most options
    wins if it shares more than half of them and no other item shares as many."""

    def __init__(self, file_name: str, rows: list[dict[str, Any]], options: list[list[str]]):
        self.file_name, self.rows = file_name, rows
        self.keys = [frozenset(map(option_key, opts)) for opts in options]

    def find(self, path: Any, line: int, options: list[str], matched: dict[int, int]) -> dict[str, Any]:
        """The item's dataset row; `matched` (item index -> line, one per file) refuses a second row
        for the same item."""
        key = frozenset(map(option_key, options))
        shared = [len(key & k) for k in self.keys]
        best = max(shared, default=0)
        if 2 * best <= len(key):
            raise DataError(
                path,
                f"the row's options match no item of {self.file_name} (none shares more "
                f"than half of {options!r})",
                line,
            )
        if shared.count(best) > 1:
            raise DataError(path, f"the row's options match several items of {self.file_name} equally", line)
        item = shared.index(best)
        if item in matched:
            raise DataError(path, f"the row's options match the same item as line {matched[item]}", line)
        matched[item] = line
        return self.rows[item]


def order_mean(records: list[dict[str, Any]], value) -> Metric:
    """Mean over choice orders; its CI resamples items (all orders of an item together)."""
    per_item: dict[str, list[float]] = {}
    for r in records:
        per_item.setdefault(str(r["sample_id"]).split("/o")[0], []).append(value(r))
    if all(len(v) == 1 for v in per_item.values()):
        return M.proportion([v[0] for v in per_item.values()])
    by_order: dict[int, list[float]] = {}
    for r in records:
        by_order.setdefault(int((r.get("metadata") or {}).get("order", 0)), []).append(value(r))
    item_means = [sum(v) / len(v) for v in per_item.values()]
    ci = M.mean(item_means)
    order_accs = [sum(v) / len(v) for v in by_order.values()]
    return Metric(sum(order_accs) / len(order_accs), ci.ci_low, ci.ci_high, len(per_item))


def _csv_list(path: Any, line: int, text: str, column: str) -> list[str]:
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataError(path, f"column {column!r} is not a list of option strings", line)
    return value


def _csv_int(path: Any, line: int, row: dict[str, str], column: str) -> int:
    if column not in row:
        raise DataError(path, f"missing column {column!r}", line)
    try:
        return int(float(row[column]))
    except ValueError:
        raise DataError(path, f"column {column!r} is not an option index: {row[column]!r}", line) from None


def _pred_columns(row: dict[str, str], prefix: str) -> list[str]:
    cols = [c for c in row if re.fullmatch(rf"{prefix}Pred \d+", c)]
    return sorted(cols, key=lambda c: int(c.rsplit(" ", 1)[1]))


class EmoBenchEA(_EmoBenchTask):
    name = "emobench_ea"
    description = "EmoBench Emotional Application: the most effective action or response in a scenario"
    template = "emobench_ea.j2"
    size = 200
    file_name = "EA.jsonl"
    output_spec = '{"answer": "<letter>"}'

    def build_sample(self, path: Any, line: int, row: dict[str, Any]) -> Sample:
        data.require(path, line, row, "choices", "label", "category", "question type")
        choices = row["choices"]
        if not isinstance(choices, list) or len(choices) < 2:
            raise DataError(path, "field 'choices' must be a list of at least 2 options", line)
        target = _index_of(path, line, choices, row["label"], "label")
        meta = {
            "qid": str(row["qid"]),
            "lang": row["language"],
            "category": row["category"],
            "question_type": row["question type"],
            "scenario": row["scenario"],
            "subject": row["subject"],
            "order": 0,
        }
        return Sample(
            id=f"{row['language']}-{row['qid']}",
            input=row["scenario"],
            target=target,
            choices=list(choices),
            metadata=meta,
        )

    def reorder(self, base: Sample, k: int) -> Sample:
        choices = base.choices or []
        perm = self.permutation(base, len(choices), k, "choices")
        new_id = f"{base.id}/o{k}" if self.paper else base.id
        return Sample(
            id=new_id,
            input=base.input,
            target=perm.index(base.target),
            choices=[choices[i] for i in perm],
            metadata={**base.metadata, "order": k},
        )

    def item_options(self, row: dict[str, Any]) -> list[str]:
        return [str(c) for c in row.get("choices") or []]

    def reference_options(self, path: Any, line: int, row: dict[str, str]) -> list[str]:
        return _csv_list(path, line, row.get("Choices", ""), "Choices")

    def reference_row(self, path, line, row, lang, qid, order, context):
        choices = self.reference_options(path, line, row)
        target = _csv_int(path, line, row, "Label")
        preds = [_csv_int(path, line, row, c) for c in _pred_columns(row, "")]
        if not preds:
            raise DataError(path, "no 'Pred N' columns", line)
        meta = {
            "qid": qid,
            "lang": lang,
            "category": context.get("category"),
            "question_type": context.get("question type", "Action"),
            "scenario": context.get("scenario", "(not recorded in the prediction file)"),
            "subject": context.get("subject", "the person"),
            "order": order,
        }
        sid = f"{lang}-{qid}" + (f"/o{order}" if self.paper else "")
        sample = Sample(id=sid, input=meta["scenario"], target=target, choices=choices, metadata=meta)
        return sample, [self.format_answer(p, sample) if 0 <= p < len(choices) else "" for p in preds]


class EmoBenchEU(_EmoBenchTask):
    """Answers are `{"emotion": i, "cause": j}` (either may be None when that half is unreadable);
    `choices` holds the emotion options and `metadata["causes"]` the cause options."""

    name = "emobench_eu"
    description = (
        "EmoBench Emotional Understanding: the emotion a person feels and its cause (both must be right)"
    )
    template = "emobench_eu.j2"
    size = 200
    file_name = "EU.jsonl"
    output_spec = '{"answer_q1": "<letter>", "answer_q2": "<letter>"}'

    def build_sample(self, path: Any, line: int, row: dict[str, Any]) -> Sample:
        data.require(
            path,
            line,
            row,
            "emotion_choices",
            "emotion_label",
            "cause_choices",
            "cause_label",
            "coarse_category",
        )
        emotions, causes = row["emotion_choices"], row["cause_choices"]
        for field in ("emotion_choices", "cause_choices"):
            if not isinstance(row[field], list) or len(row[field]) < 2:
                raise DataError(path, f"field {field!r} must be a list of at least 2 options", line)
        target = {
            "emotion": _index_of(path, line, emotions, row["emotion_label"], "emotion_label"),
            "cause": _index_of(path, line, causes, row["cause_label"], "cause_label"),
        }
        meta = {
            "qid": str(row["qid"]),
            "lang": row["language"],
            "category": row["coarse_category"],
            "finegrained_category": row.get("finegrained_category"),
            "scenario": row["scenario"],
            "subject": row["subject"],
            "causes": list(causes),
            "order": 0,
        }
        return Sample(
            id=f"{row['language']}-{row['qid']}",
            input=row["scenario"],
            target=target,
            choices=list(emotions),
            metadata=meta,
        )

    def reorder(self, base: Sample, k: int) -> Sample:
        emotions, causes = base.choices or [], base.metadata["causes"]
        pe = self.permutation(base, len(emotions), k, "emotions")
        pc = self.permutation(base, len(causes), k, "causes")
        target = {"emotion": pe.index(base.target["emotion"]), "cause": pc.index(base.target["cause"])}
        new_id = f"{base.id}/o{k}" if self.paper else base.id
        return Sample(
            id=new_id,
            input=base.input,
            target=target,
            choices=[emotions[i] for i in pe],
            metadata={**base.metadata, "causes": [causes[i] for i in pc], "order": k},
        )

    def prompt_variables(self, sample: Sample) -> dict[str, Any]:
        variables = super().prompt_variables(sample)
        variables["lettered_causes"] = _lettered(sample.metadata["causes"])
        return variables

    # ---- answers ----------------------------------------------------------------------------
    def parse(self, text: str, sample: Sample) -> dict[str, int | None] | None:
        if not isinstance(text, str):
            return None
        text = parsing.strip_reasoning(text)
        answer = {
            "emotion": _question(text, "q1", sample.choices or []),
            "cause": _question(text, "q2", sample.metadata.get("causes") or []),
        }
        return None if answer["emotion"] is None and answer["cause"] is None else answer

    def parse_strict(self, text: str, sample: Sample) -> dict[str, int | None] | None:
        """EU's parser only reads answers the reply states (its JSON fields or labelled `Q1:`/`Q2:`
        lines), so its strict reading is the same."""
        return self.parse(text, sample)

    def combine(self, answers: Sequence[Any]) -> Any:
        """The paper votes on each question separately over the draws."""
        readable = [a for a in answers if a is not None]
        if not readable:
            return None
        voted = {key: _vote([a.get(key) for a in readable]) for key in ("emotion", "cause")}
        return None if voted["emotion"] is None and voted["cause"] is None else voted

    def score(self, parsed: Any, sample: Sample) -> float:
        return float(
            parsed.get("emotion") == sample.target["emotion"]
            and parsed.get("cause") == sample.target["cause"]
        )

    # ---- option order: both questions' options are shifted, each answer maps back on its own list ----
    def option_lists(self, sample: Sample) -> dict[str, int]:
        return {"emotion": len(sample.choices or []), "cause": len(sample.metadata.get("causes") or [])}

    def reorder_options(self, sample: Sample, shifts: dict[str, int]) -> Sample:
        emotions, causes = sample.choices or [], sample.metadata["causes"]
        se, sc = shifts["emotion"] % len(emotions), shifts["cause"] % len(causes)
        shifted_causes = [causes[(p + sc) % len(causes)] for p in range(len(causes))]
        return dataclasses.replace(
            sample,
            choices=[emotions[(p + se) % len(emotions)] for p in range(len(emotions))],
            target={
                "emotion": (sample.target["emotion"] - se) % len(emotions),
                "cause": (sample.target["cause"] - sc) % len(causes),
            },
            metadata={**sample.metadata, "causes": shifted_causes},
        )

    def restore_answer(self, answer: Any, sample: Sample, shifts: dict[str, int]) -> Any:
        if not isinstance(answer, dict):
            return answer
        sizes = self.option_lists(sample)
        return {
            key: None if answer.get(key) is None else (answer[key] + shifts[key]) % sizes[key]
            for key in ("emotion", "cause")
        }

    def option_positions(self, answer: Any, sample: Sample) -> dict[str, int | None]:
        answer = answer if isinstance(answer, dict) else {}
        return {"emotion": answer.get("emotion"), "cause": answer.get("cause")}

    def answer_space(self, sample: Sample) -> list[Any]:
        return [
            {"emotion": e, "cause": c}
            for e in range(len(sample.choices or []))
            for c in range(len(sample.metadata.get("causes") or []))
        ]

    def format_answer(self, answer: Any, sample: Sample) -> str:
        def letter(i: Any) -> str:
            return chr(65 + int(i)) if i is not None else ""

        return '{"answer_q1": "%s", "answer_q2": "%s"}' % (
            letter(answer.get("emotion")),
            letter(answer.get("cause")),
        )

    def continuation(self, answer: Any, sample: Sample) -> str:
        return " " + self.format_answer(answer, sample)

    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics, details = super().aggregate(records)
        for key in ("emotion", "cause"):
            metrics[f"{key}_accuracy"] = order_mean(records, lambda r, k=key: _part_correct(r, k))
        return metrics, details

    def item_options(self, row: dict[str, Any]) -> list[str]:
        return [str(c) for c in [*(row.get("emotion_choices") or []), *(row.get("cause_choices") or [])]]

    def reference_options(self, path: Any, line: int, row: dict[str, str]) -> list[str]:
        return [
            *_csv_list(path, line, row.get("Emo Choices", ""), "Emo Choices"),
            *_csv_list(path, line, row.get("Cause Choices", ""), "Cause Choices"),
        ]

    def reference_row(self, path, line, row, lang, qid, order, context):
        emotions = _csv_list(path, line, row.get("Emo Choices", ""), "Emo Choices")
        causes = _csv_list(path, line, row.get("Cause Choices", ""), "Cause Choices")
        target = {
            "emotion": _csv_int(path, line, row, "Emo Label"),
            "cause": _csv_int(path, line, row, "Cause Label"),
        }
        emo_cols, cause_cols = _pred_columns(row, "Emo "), _pred_columns(row, "Cause ")
        if not emo_cols or len(emo_cols) != len(cause_cols):
            raise DataError(path, "expected matching 'Emo Pred N' and 'Cause Pred N' columns", line)
        meta = {
            "qid": qid,
            "lang": lang,
            "category": context.get("coarse_category"),
            "scenario": context.get("scenario", "(not recorded in the prediction file)"),
            "subject": context.get("subject", "the person"),
            "causes": causes,
            "order": order,
        }
        sid = f"{lang}-{qid}" + (f"/o{order}" if self.paper else "")
        sample = Sample(id=sid, input=meta["scenario"], target=target, choices=emotions, metadata=meta)
        replies = []
        for ec, cc in zip(emo_cols, cause_cols, strict=True):
            e, c = _csv_int(path, line, row, ec), _csv_int(path, line, row, cc)
            answer = {
                "emotion": e if 0 <= e < len(emotions) else None,
                "cause": c if 0 <= c < len(causes) else None,
            }
            replies.append(
                "" if answer == {"emotion": None, "cause": None} else self.format_answer(answer, sample)
            )
        return sample, replies


class EmoBenchEUEmotion(EmoBenchEU):
    """Same prompt and replies as `emobench_eu`; only the emotion question is scored."""

    name = "emobench_eu_emotion"
    description = "EmoBench Emotional Understanding, emotion question only (same prompt as emobench_eu)"

    def score(self, parsed: Any, sample: Sample) -> float:
        return float(parsed.get("emotion") == sample.target["emotion"])


def _vote(values: list[Any]) -> Any:
    readable = [v for v in values if v is not None]
    return Counter(readable).most_common(1)[0][0] if readable else None


def _part_correct(record: dict[str, Any], key: str) -> float:
    parsed, target = record.get("parsed") or {}, record.get("target") or {}
    return float(parsed.get(key) is not None and parsed.get(key) == target.get(key))


def _question(text: str, q: str, options: list[str]) -> int | None:
    """Answer to question `q` ('q1'/'q2'): the JSON field `answer_<q>`, else a line like
    'answer_q1: B' / 'Q1: B'. A letter or the option's text are both accepted."""
    value = parsing.json_field(text, f"answer_{q}")
    if value is None or isinstance(value, (dict, list)):
        found = re.findall(rf"(?:answer[_ ])?{q}\W{{0,3}}[:=：]\s*[\(\[]?([^\n,;\"}}]+)", text, re.IGNORECASE)
        value = found[-1] if found else None
    if value is None or not options:
        return None
    value = str(value).strip()
    if len(value) <= 3:
        return parsing.letter_index(value, len(options))
    return parsing.choice_index(value, options, ())
