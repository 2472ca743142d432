"""EQ-Bench v2 (Paech 2023, EQ-bench/EQ-Bench, MIT): rate the intensity (0-10) of four emotions a
character feels at the end of a dialogue; compared with the authors' reference intensities.

Faithful to the v2 release of the original scorer (`lib/scoring.py` at 2f6eab4): revision off (the
critique / revised-scores part of the prompt is cut and "Your answer:" appended, as the original
`remove_revision_instructions` does), temperature 0.01, 60 completion tokens; a reply is read as
`dict(findall((\\w+):\\s+(\\d+)))`, so a name given twice keeps its last score, and is valid only when
exactly the four reference names remain and their scores are not all zero; item score
10 - 0.7477 * sum s(|answer - reference|) on the full scale; benchmark score
100 * sum(items) / (10 * parseable items), unparseable items excluded, and the run marked failed when
fewer than 83.33% of items parse.

`--task-arg reask=N` re-asks an unparseable item up to N times, the temperature raised by 0.15 each
time, as the original does (its `eq-bench.py` makes 3 attempts: `reask=2`); off by default. Not
implemented: averaging over several iterations (run the task again with another seed instead).

The question file is not on the Hugging Face hub: put `eq_bench_v2_questions_171.json` (from the
EQ-Bench GitHub repository, `data/`) in `--data-dir` or `$EMOBENCH_DATA_DIR`.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable
from typing import Any, ClassVar

from emobench import data, parsing
from emobench import metrics as M
from emobench.errors import ConfigError, DataError
from emobench.task import Task
from emobench.types import GenParams, Metric, Sample

FILE_NAME = "eq_bench_v2_questions_171.json"
PAIR = re.compile(r"(\w+):\s+(\d+)")
SCALE_CONSTANT = 0.7477  # calibrated by the authors so that random answers score about 0
PARSEABLE_THRESHOLD = 0.8333  # below this fraction of parseable items the run counts as failed
CORRECT_AT = 5.0  # an item scoring at least 5 of 10 counts as `correct` in the outcome counts


def distance_penalty(d: float) -> float:
    """s(d) of the v2 scorer: 0 for an exact match, a sigmoid up to 5 points off, linear beyond."""
    if d == 0:
        return 0.0
    if d <= 5:
        return 6.5 / (1 + math.exp(-1.2 * (d - 4)))
    return float(d)


def item_score(answer: dict[str, int], reference: dict[str, int]) -> float:
    """10 - 0.7477 * sum over the four emotions of s(|answer - reference|) (can go below 0)."""
    return 10.0 - SCALE_CONSTANT * sum(distance_penalty(abs(answer[e] - reference[e])) for e in reference)


def strip_revision(prompt: str) -> str:
    """The prompt with the critique / revised-scores instructions removed, as EQ-Bench does when
    revision is off."""
    prompt = prompt.replace(
        " Then critique your answer by thinking it through step by step. Finally, give your revised scores.",
        "",
    )
    prompt = prompt.replace("First pass scores:\n", "")
    start, end = prompt.find("Critique: <your critique here>"), prompt.find("[End of answer]")
    if start >= 0 and end >= 0:
        prompt = prompt[:start] + "\n" + prompt[end:]
    return prompt + "\nYour answer:\n"


class EQBench(Task):
    name = "eqbench"
    family = "classification"
    description = "EQ-Bench v2: rate four emotions' intensity (0-10) at the end of a dialogue vs a reference"
    source = "https://github.com/EQ-bench/EQ-Bench (data/eq_bench_v2_questions_171.json)"
    license = "MIT"
    template = "eqbench.j2"
    gen_params = GenParams(temperature=0.01, max_tokens=60)
    primary_metric = "eqbench_score"
    arg_defaults: ClassVar[dict[str, Any]] = {"revision": False, "reask": 0}
    size = 171

    def __init__(self, data_dir: str | None = None, **args: Any):
        super().__init__(data_dir, **args)
        if self.args["revision"] not in (False, "false", "False", 0):
            raise ConfigError("task eqbench: revision=true is not implemented (v2 default is revision off)")
        self.reask_unparseable = _count(self.args["reask"])  # read by variants.base.ask

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        if split != "test":
            raise ConfigError("task eqbench has only a test split")
        root = data.data_dir(self.data_dir)
        path = data.find_local(root, FILE_NAME)
        if path is None:
            raise DataError(
                root or FILE_NAME,
                f"{FILE_NAME} not found: EQ-Bench's questions are not on the "
                "Hugging Face hub; download data/eq_bench_v2_questions_171.json from "
                "https://github.com/EQ-bench/EQ-Bench and pass its folder with --data-dir",
            )
        questions = data.read_json(path)
        if not isinstance(questions, dict):
            raise DataError(path, "expected a JSON object mapping question ids to questions")
        id_lines = _id_lines(path)
        data.check_unique_ids(path, id_lines)
        lines = dict(id_lines)
        for qid, item in questions.items():
            yield self._sample(path, lines.get(str(qid)), str(qid), item)

    def _sample(self, path: Any, line: int | None, qid: str, item: Any) -> Sample:
        if not isinstance(item, dict):
            raise DataError(path, f"question {qid!r} is not an object", line)
        data.require(path, line, item, "prompt", "reference_answer_fullscale")
        ref = item["reference_answer_fullscale"]
        if not isinstance(ref, dict):
            raise DataError(path, f"question {qid!r}: reference_answer_fullscale is not an object", line)
        data.require(
            path,
            line,
            ref,
            *(f"emotion{i}" for i in range(1, 5)),
            *(f"emotion{i}_score" for i in range(1, 5)),
        )
        target: dict[str, int] = {}
        for i in range(1, 5):
            try:
                target[str(ref[f"emotion{i}"])] = int(ref[f"emotion{i}_score"])
            except (TypeError, ValueError):
                raise DataError(
                    path,
                    f"question {qid!r}: emotion{i}_score {ref[f'emotion{i}_score']!r} is not an integer",
                    line,
                ) from None
        if len(target) != 4:
            raise DataError(path, f"question {qid!r}: the four reference emotions are not distinct", line)
        return Sample(
            id=qid,
            input=strip_revision(str(item["prompt"])),
            target=target,
            metadata={"emotions": list(target)},
        )

    # ---- answers ----------------------------------------------------------------------------
    def parse(self, text: str, sample: Sample) -> dict[str, int] | None:
        """Every `Name: score` pair, a repeated name keeping its last score (the original's
        `dict(re.findall(...))`, so a reply that restates or revises its block still counts); None
        unless exactly the four reference names remain (exact case) with scores not all zero (the
        original decides parseability with its v1 scorer, which refuses a zero total)."""
        if not isinstance(text, str):
            return None
        answer = {name: int(score) for name, score in PAIR.findall(parsing.strip_reasoning(text))}
        if set(answer) != set(sample.target) or sum(answer.values()) == 0:
            return None
        return answer

    def score(self, parsed: Any, sample: Sample) -> float:
        return item_score(parsed, sample.target)

    def is_correct(self, score: float) -> bool:
        return score >= CORRECT_AT

    def answer_space(self, sample: Sample) -> list[Any]:
        """Every valid rating of the four emotions (11^4 - 1: all zeros is not an answer): what the
        random baseline draws from."""
        names = list(sample.target)
        return [
            dict(zip(names, combo, strict=True))
            for combo in itertools.product(range(11), repeat=4)
            if any(combo)
        ]

    def format_answer(self, answer: Any, sample: Sample) -> str:
        return "\n".join(f"{name}: {value}" for name, value in answer.items())

    # ---- metrics ----------------------------------------------------------------------------
    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        parsed = [
            float(r["score"]) for r in records if r["outcome"] != "unparseable" and r["score"] is not None
        ]
        fraction = len(parsed) / len(records) if records else 0.0
        if parsed:
            m = M.mean([10.0 * s for s in parsed])  # 100 * sum / (n * 10) = mean of 10 * item score
            score = Metric(m.value, m.ci_low, m.ci_high, m.n)
        else:
            score = Metric(float("nan"), float("nan"), float("nan"), 0)
        failed = fraction < PARSEABLE_THRESHOLD
        details: dict[str, Any] = {
            "parseable_fraction": fraction,
            "n_parseable": len(parsed),
            "failed": failed,
            "scale": "0 = random answering, 100 = the reference exactly",
            "correct_means": f"item score >= {CORRECT_AT} of 10",
        }
        if failed:
            details["note"] = (
                f"FAILED: only {fraction:.1%} of items parsed (EQ-Bench requires "
                f"{PARSEABLE_THRESHOLD:.2%}); the score is not valid"
            )
        flags = [float(r["outcome"] == "correct") for r in records]
        return {
            "eqbench_score": score,
            "parseable_fraction": M.proportion([float(r["outcome"] != "unparseable") for r in records]),
            "item_accuracy": M.proportion(flags),
        }, details


def _count(value: Any) -> int:
    """`reask=N` as a non-negative integer."""
    text = str(value).strip()
    if not text.isdigit():
        raise ConfigError(f"task eqbench: reask={value!r}, expected a whole number of re-asks (0 = off)")
    return int(text)


def _id_lines(path: Any) -> list[tuple[str, int]]:
    """Each question id with its line, in file order and repeats included (`json` keeps only the last
    of two equal keys, which would drop an item without a word). Line 1 for a file on one line."""
    objects: list[list[str]] = []  # the hook sees nested objects first and the top-level one last

    def keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        objects.append([k for k, _ in pairs])
        return dict(pairs)

    found: dict[str, list[int]] = {}
    with open(path, encoding="utf-8") as fh:
        for n, text in enumerate(fh, start=1):
            m = re.match(r'^\s{0,4}"([^"]+)"\s*:\s*\{', text)
            if m:
                found.setdefault(m.group(1), []).append(n)
        fh.seek(0)
        json.load(fh, object_pairs_hook=keys)
    lines = {qid: iter(ns) for qid, ns in found.items()}
    return [(qid, next(lines.get(qid, iter(())), 1)) for qid in (objects[-1] if objects else [])]
