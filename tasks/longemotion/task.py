"""LongEmotion (arXiv 2509.07403): emotional intelligence over long, noisy contexts.

Three of its tasks have automatic metrics and are implemented here, as its repository
(github.com/LongEmotion/LongEmotion) scores them:

- `longemotion_ec`  Emotion Classification: the emotion of a subject in a long scenario padded with
  BookCorpus noise (EC-Emobench) or financial news (EC-Finentity); exact-match accuracy.
- `longemotion_qa`  Emotion QA: questions on psychology papers; LongBench token F1.
- `longemotion_ed`  Emotion Detection: find the one segment (of ~30) whose emotion differs; accuracy.

The three generative tasks (MC, ES, EE), scored by judge models, are in generative.py.

Data: the original JSONL files, from `--data-dir` (flat or in the hub's sub-folders) or downloaded
file by file from the hub dataset `LongEmotion/LongEmotion`. They are read as plain JSONL because the
hub copy mixes `length` and `token_length` fields, which breaks `datasets`' schema inference.
The documents go into `Sample.context`; `LongContextTask` fits them to the model's window.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from emobench import data, parsing
from emobench import metrics as M
from emobench.compound import expected_agreement, is_compound
from emobench.context import LongContextTask, check_policy
from emobench.errors import ConfigError, DataError
from emobench.task import Task
from emobench.types import GenParams, Metric, Sample

HUB_REPO = "LongEmotion/LongEmotion"
SOURCE = "https://github.com/LongEmotion/LongEmotion (hub dataset LongEmotion/LongEmotion)"
LICENSE = (
    "MIT (the hub card `LongEmotion/LongEmotion` declares it; some sources, e.g. BookCorpus text and "
    "the QA papers, may carry their own terms)"
)

# file name -> its path in the hub dataset
HUB_PATHS = {
    "Emotion_Classification_Emobench.jsonl": "Emotion Classification/Emotion_Classification_Emobench.jsonl",
    "Emotion_Classification_Finentity.jsonl": "Emotion Classification/Emotion_Classification_Finentity.jsonl",
    "Emotion_Detection.jsonl": "Emotion Detection/Emotion_Detection.jsonl",
    "Emotion_QA.jsonl": "Emotion QA/Emotion_QA.jsonl",
    "Emotion_Conversations.jsonl": "Emotion Conversation/Emotion_Conversations.jsonl",
    "Emotion_Summary.jsonl": "Emotion Summary/Emotion_Summary.jsonl",
    "Emotion_Expression_Situations.json": "Emotion Expression/Emotion_Expression_Situations.json",
    "Emotion_Expression_Questionnaires.json": "Emotion Expression/Emotion_Expression_Questionnaires.json",
}


def data_file(file_name: str, data_dir: str | None) -> Path:
    """A LongEmotion file: local when `--data-dir` is given (flat or in the hub's folders), else
    downloaded from the hub."""
    root = data.data_dir(data_dir)
    if root is None:
        return _hub_file(HUB_PATHS[file_name])
    path = data.find_local(root, file_name, HUB_PATHS[file_name])
    if path is None:
        raise DataError(root / file_name, f"{file_name} not found under --data-dir {root}")
    return path


def rows(file_name: str, data_dir: str | None) -> Iterator[tuple[Path, int, dict[str, Any]]]:
    """(path, line, row) of a LongEmotion JSONL file (see `data_file`)."""
    path = data_file(file_name, data_dir)
    for line, row in data.read_jsonl(path):
        yield path, line, row


def _hub_file(repo_path: str) -> Path:
    """Download one file of the hub dataset (cached by huggingface_hub)."""
    try:
        from huggingface_hub import hf_hub_download  # only needed without --data-dir

        # with HF_HUB_OFFLINE set, only the local hub cache is read (no network retries)
        return Path(
            hf_hub_download(HUB_REPO, repo_path, repo_type="dataset", local_files_only=data.hub_offline())
        )
    except Exception as exc:  # offline, missing file, no network
        raise DataError(
            f"hf://datasets/{HUB_REPO}/{repo_path}",
            f"could not download ({type(exc).__name__}); pass --data-dir with the original LongEmotion files",
        ) from None


def field(path: Path, line: int, row: dict[str, Any], *names: str) -> Any:
    """The first of `names` present in `row` (current and old LongEmotion field names)."""
    for name in names:
        if name in row:
            return row[name]
    raise DataError(path, f"missing field {' or '.join(map(repr, names))}", line)


class _LongEmotionTask(LongContextTask, Task):
    source = SOURCE
    license = LICENSE
    arg_defaults: ClassVar[dict[str, Any]] = {**LongContextTask.LONG_CONTEXT_ARGS}

    def __init__(self, data_dir: str | None = None, **args: Any):
        super().__init__(data_dir, **args)
        check_policy(str(self.args["truncate"]))

    def _check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ConfigError(f"task {self.name} has only the split(s) {', '.join(self.splits)}")


# ---- EC -------------------------------------------------------------------------------------------

EC_FILES = {
    "emobench": "Emotion_Classification_Emobench.jsonl",
    "finentity": "Emotion_Classification_Finentity.jsonl",
}
_EMOTION_VALUE = re.compile(r'"Emotion"\s*:\s*"([^"]*)"', re.IGNORECASE)


class LongEmotionEC(_LongEmotionTask):
    name = "longemotion_ec"
    family = "classification"
    description = "LongEmotion EC: a subject's emotion in a long noisy scenario (EC-Emobench + EC-Finentity)"
    template = "longemotion_ec.j2"
    system_template = "longemotion_ec_system.j2"
    gen_params = GenParams(temperature=0.0, max_tokens=256)
    arg_defaults: ClassVar[dict[str, Any]] = {**LongContextTask.LONG_CONTEXT_ARGS, "subset": "all"}
    size = 400  # 200 EC-Emobench + 200 EC-Finentity

    def __init__(self, data_dir: str | None = None, **args: Any):
        super().__init__(data_dir, **args)
        if self.args["subset"] not in (*EC_FILES, "all"):
            raise ConfigError(
                f"longemotion_ec: subset={self.args['subset']!r}, expected emobench, finentity or all"
            )

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        self._check_split(split)
        subsets = list(EC_FILES) if self.args["subset"] == "all" else [self.args["subset"]]
        for subset in subsets:
            seen: list[tuple[str, int]] = []
            for path, line, row in rows(EC_FILES[subset], self.data_dir):
                sid = f"{subset}-{field(path, line, row, 'id')}"
                seen.append((sid, line))
                yield Sample(
                    id=sid,
                    input="",
                    target=str(field(path, line, row, "label")),
                    choices=_choices(path, line, field(path, line, row, "choices")),
                    context=str(field(path, line, row, "content", "context")).strip(),
                    metadata={
                        "subset": subset,
                        "subject": str(field(path, line, row, "subject", "Subject")),
                        "category": subset,
                    },
                )
            data.check_unique_ids(path, seen)

    def parse(self, text: str, sample: Sample) -> str | None:
        """LongEmotion's rule: the "Emotion" value of the reply as JSON, else of its last fenced JSON
        block; then (as lm-eval's filter) a regex on `"Emotion": "..."`. None when absent."""
        if not isinstance(text, str):
            return None
        text = parsing.strip_reasoning(text)
        value = parsing.json_field(text, "Emotion")
        if value is None:
            found = _EMOTION_VALUE.findall(text)
            value = found[-1] if found else None
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if value is None or isinstance(value, (dict, list)):
            return None
        value = str(value).strip()
        return value or None

    def score(self, parsed: Any, sample: Sample) -> float:
        return float(parsed == sample.target)  # exact, case-sensitive, as the native evaluator

    def answer_space(self, sample: Sample) -> list[Any]:
        return list(sample.choices or [])

    def format_answer(self, answer: Any, sample: Sample) -> str:
        return json.dumps({"Emotion": answer}, ensure_ascii=False)

    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics, details = super().aggregate(records)
        by_subset: dict[str, list[float]] = {}
        lenient = []
        for r in records:
            by_subset.setdefault((r.get("metadata") or {}).get("subset", "?"), []).append(
                float(r["score"] or 0)
            )
            lenient.append(float(r["parsed"] is not None and _loose(r["parsed"]) == _loose(r["target"])))
        details["accuracy_by_subset"] = {k: M.proportion(v).as_dict() for k, v in sorted(by_subset.items())}
        metrics["accuracy_ignore_case_punct"] = M.proportion(lenient)  # lm-eval's exact_match flags
        # partial credit for naming part of a compound gold ("Guilt" for "Guilt & Fear"): emobench/compound.py
        metrics["expected_agreement"] = expected_agreement(
            [r["parsed"] for r in records], [r["target"] for r in records]
        )
        details["n_compound_gold"] = sum(is_compound(r["target"]) for r in records)
        return metrics, details


def _choices(path: Path, line: int, value: Any) -> list[str]:
    """The options of an EC row: a list of labels, or (in some copies of the files) that list
    written as a JSON string, '["Positive", "Neutral", "Negative"]'."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, list) or not value or not all(isinstance(c, str) for c in value):
        raise DataError(
            path, "'choices' must be a non-empty list of labels (or that list as a JSON string)", line
        )
    return value


def _loose(value: Any) -> str:
    return re.sub(r"[^\w\s]", "", str(value)).lower().strip()


# ---- QA -------------------------------------------------------------------------------------------


class LongEmotionQA(_LongEmotionTask):
    name = "longemotion_qa"
    family = "long_context_qa"
    description = "LongEmotion QA: questions on psychology papers, answered from the full text (token F1)"
    template = "longemotion_qa.j2"
    system_template = "longemotion_qa_system.j2"
    gen_params = GenParams(temperature=0.0, max_tokens=128)
    primary_metric = "f1"
    size = 120

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        self._check_split(split)
        seen: list[tuple[str, int]] = []
        path = None
        for path, line, row in rows("Emotion_QA.jsonl", self.data_dir):
            sid = str(field(path, line, row, "number", "id"))
            seen.append((sid, line))
            yield Sample(
                id=sid,
                input=str(field(path, line, row, "problem", "question")),
                target=str(field(path, line, row, "answer")),
                context=str(field(path, line, row, "context")).strip(),
                metadata={"source": str(row.get("source", ""))},
            )
        if path is not None:
            data.check_unique_ids(path, seen)

    def parse(self, text: str, sample: Sample) -> str | None:
        if not isinstance(text, str):
            return None
        answer = parsing.strip_reasoning(text).strip()
        return answer or None

    def score(self, parsed: Any, sample: Sample) -> float:
        return M.token_f1(str(parsed), str(sample.target))

    def answer_space(self, sample: Sample) -> list[Any]:
        return []  # free text: no answer space (a baseline must not be handed the gold answer)

    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        scores = [float(r["score"] or 0.0) for r in records]
        return {"f1": M.mean(scores), "exact_f1_rate": M.proportion([float(s == 1.0) for s in scores])}, {}


# ---- ED -------------------------------------------------------------------------------------------


class LongEmotionED(_LongEmotionTask):
    name = "longemotion_ed"
    family = "long_context_qa"
    description = "LongEmotion ED: the index of the one segment (of ~30) whose emotion differs"
    template = "longemotion_ed.j2"
    system_template = "longemotion_ed_system.j2"
    gen_params = GenParams(temperature=0.0, max_tokens=64)
    size = 136

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        self._check_split(split)
        seen: list[tuple[str, int]] = []
        path = None
        for path, line, row in rows("Emotion_Detection.jsonl", self.data_dir):
            segments = field(path, line, row, "text")
            if not isinstance(segments, list) or not segments:
                raise DataError(path, "'text' must be a non-empty list of {index, context}", line)
            try:
                lines = [json.dumps(s["context"], ensure_ascii=False) for s in segments]
                indices = [int(s["index"]) for s in segments]
            except (KeyError, TypeError, ValueError):
                raise DataError(path, "each 'text' segment needs 'index' and 'context'", line) from None
            truth = field(path, line, row, "ground_truth")
            if not isinstance(truth, int) or truth not in indices:
                raise DataError(path, f"ground_truth {truth!r} is not one of the segment indices", line)
            context = "\n".join(f'["index": {i}, "text": {t}]' for i, t in zip(indices, lines, strict=True))
            sid = str(row.get("id", line))  # the current file has no ids: its line numbers stand in
            seen.append((sid, line))
            yield Sample(
                id=sid,
                input="",
                target=truth,
                context=context,
                metadata={"n_segments": len(segments), "length": row.get("length")},
            )
        if path is not None:
            data.check_unique_ids(path, seen)

    def retrieval_units(self, sample: Sample) -> list[str]:
        """One unit per segment (each is one line of the context: its text is JSON-escaped), so `rag`
        and `coem` can do LongEmotion's query-free outlier selection over segments."""
        return (sample.context or "").split("\n")

    def parse(self, text: str, sample: Sample) -> int | None:
        n = int(sample.metadata.get("n_segments") or 0)
        return parsing.integer(text, ("index",), lo=0, hi=max(0, n - 1))

    def answer_space(self, sample: Sample) -> list[Any]:
        return list(range(int(sample.metadata.get("n_segments") or 0)))

    def format_answer(self, answer: Any, sample: Sample) -> str:
        return json.dumps({"index": answer})
