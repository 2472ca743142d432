"""ESConv next-strategy prediction, scored with Kang et al. (ACL 2024) proficiency and preference.

Each sample is one supporter turn: the model sees the preceding conversation window (supporter turns
shown with their gold strategy, ending in a seeker turn, as in Kang's evaluation set) and names the
strategy the supporter should use next, one of the 8 ESConv strategies (Liu et al., ACL 2021).

Sources (`--task-arg source=`):
- `esconv` (default): ESConv's dialogues split by the authors' seed-13 shuffle into 70/15/15
  train/dev/test. Without `--data-dir`, the hub dataset `thu-coai/esconv` (its `train.txt`, `valid.txt`,
  `test.txt`, written by the authors' `codes_zcj/_reformat/process.py`: one JSON dialogue a row whose
  turns carry their `strategy`); with `--data-dir`, ESConv.json (split here) or a local copy of those
  three files. All three give the same samples under the same ids (`esconv-<split>-<row>-<turn>`).
- `failed`: FailedESConv.json (same schema, speakers named "speaker"/"listener"): the dialogues the
  authors rejected, so only read when asked for.
- `kang2024`: Kang et al.'s evaluation file (`kang2024_results.json`, or `results.json` as their
  repository names it: `context`, `strg_gold`, ...), whose contexts are used as they are (test split
  only). `auto` reads ESConv, else Kang's file, and says on stderr which file it read.

Strategy names in the real files are noisy ("Questions", "Other", "Approval and Reassurance",
"Restatement", "Direct Guidance"): `normalise_strategy` maps the variants it can, and the loader
counts what it normalised and what it dropped (`task.load_report`, copied into the results details).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from emobench import data, parsing
from emobench import metrics as M
from emobench.errors import ConfigError, DataError
from emobench.task import ChoiceTask
from emobench.types import GenParams, Metric, Sample

# The 8 strategies in the order of ESConv's strat.json and Kang's metrics.py (the order of the
# Bradley-Terry sweep, so it matters in the last decimals).
STRATEGIES = (
    "Question",
    "Restatement or Paraphrasing",
    "Reflection of Feelings",
    "Self-disclosure",
    "Affirmation and Reassurance",
    "Providing Suggestions",
    "Information",
    "Others",
)
_CANONICAL = {s.lower(): s for s in STRATEGIES}
_ALIASES = {
    "questions": "Question",
    "other": "Others",
    "restatement": "Restatement or Paraphrasing",
    "paraphrasing": "Restatement or Paraphrasing",
    "self disclosure": "Self-disclosure",
    "approval and reassurance": "Affirmation and Reassurance",
    "suggestions": "Providing Suggestions",
    "providing suggestion": "Providing Suggestions",
    "reflection of feeling": "Reflection of Feelings",
}
SEEKER, SUPPORTER = "seeker", "supporter"
_SPEAKERS = {
    "seeker": SEEKER,
    "usr": SEEKER,
    "speaker": SEEKER,
    "supporter": SUPPORTER,
    "sys": SUPPORTER,
    "listener": SUPPORTER,
}
SPLIT_SEED = 13
LOCAL_FILES = {
    "esconv": ("ESConv.json",),
    "failed": ("FailedESConv.json",),
    "kang2024": ("kang2024_results.json", "results.json"),
}
AUTO = ("esconv", "kang2024")  # never the failed dialogues unasked
HUB_REPO = "thu-coai/esconv"
# our split -> (the hub's split name, the file the authors' process.py writes for it)
HUB_SPLITS = {
    "train": ("train", "train.txt"),
    "dev": ("validation", "valid.txt"),
    "test": ("test", "test.txt"),
}
HUB_FILES = " + ".join(f for _, f in HUB_SPLITS.values())


@dataclass(frozen=True)
class Source:
    """What `source=` resolved to. `layout` is `dialogues` (a JSON list, split here), `splits` (the
    hub's three files: `path` is their folder, or None for the hub itself) or `kang` (Kang's file)."""

    name: str
    layout: str
    path: Path | None

    def describe(self) -> str:
        return str(self.path) if self.path is not None else f"hf://{HUB_REPO}"


def normalise_strategy(name: Any) -> str | None:
    """The canonical strategy for a (noisy) name, or None when it is not one of the 8."""
    if not isinstance(name, str):
        return None
    key = " ".join(name.strip().strip("[]").replace("_", " ").split()).lower()
    return _CANONICAL.get(key) or _ALIASES.get(key)


# ---- Kang et al. (2024) metrics --------------------------------------------------------------------


def strategy_report(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, Any]:
    """Accuracy, macro-F1 over all 8 strategies and over the labels present (in gold or predictions:
    sklearn's default, hence Kang's proficiency Q; the two differ only on a subset), weighted F1,
    per-strategy F1, Bradley-Terry preferences, preference bias B and the predicted/gold distributions.

    `gold`/`pred` are strategy names (any case; noisy variants allowed). A prediction that is None or
    not a strategy counts as wrong for accuracy and F1 and is left out of the preference model
    (it prefers no strategy); Kang's script refuses such files, so they are reported separately.
    """
    g = [normalise_strategy(x) for x in gold]
    if any(x is None for x in g):
        raise ValueError(
            f"gold labels outside the 8 strategies: {sorted({str(a) for a, b in zip(gold, g, strict=True) if b is None})}"
        )
    p = [normalise_strategy(x) for x in pred]
    n = len(g)
    f1 = M.f1_scores(g, p, STRATEGIES)
    present = [s for s in STRATEGIES if s in g or s in p]
    index = {s: i for i, s in enumerate(STRATEGIES)}
    wins = [[0.0] * len(STRATEGIES) for _ in STRATEGIES]  # wins[pred][gold]: the prediction "beat" the gold
    for gs, ps in zip(g, p, strict=True):
        if ps is not None and ps != gs:
            wins[index[ps]][index[gs]] += 1
    prefs = M.bradley_terry(wins, iterations=20)
    return {
        "n": n,
        "accuracy": sum(a == b for a, b in zip(g, p, strict=True)) / n if n else float("nan"),
        "macro_f1": f1["macro_f1"],
        "macro_f1_present": M.f1_scores(g, p, present)["macro_f1"],
        "labels_present": present,
        "weighted_f1": f1["weighted_f1"],
        "per_strategy_f1": {s: f1["per_class"][s]["f1"] for s in STRATEGIES},
        "preference": dict(zip(STRATEGIES, prefs, strict=True)),
        "preference_bias": M.preference_bias(prefs),
        "predicted_distribution": {s: sum(x == s for x in p) for s in STRATEGIES},
        "gold_distribution": {s: sum(x == s for x in g) for s in STRATEGIES},
        "unparseable": sum(x is None for x in p),
    }


# ---- loading ---------------------------------------------------------------------------------------


def render_turns(turns: Sequence[tuple[str, str | None, str]]) -> str:
    """Kang's context format: `supporter\\n- Strategy: X\\n- Utterance: ...` / `seeker\\n- Utterance: ...`."""
    lines = []
    for speaker, strategy, text in turns:
        lines.append(speaker)
        if speaker == SUPPORTER:
            lines.append(f"- Strategy: {strategy or 'Unknown'}")
        lines.append(f"- Utterance: {' '.join(text.split())}")
    return "\n".join(lines)


def _expected(name: str) -> tuple[str, ...]:
    """What satisfies `source=name` under --data-dir, in the order it is looked for."""
    return (*LOCAL_FILES[name], HUB_FILES) if name == "esconv" else LOCAL_FILES[name]


def _local_source(root: Path, name: str) -> Source | None:
    """The first file under `root` (or one folder down) that satisfies `source=name`: for `esconv`,
    ESConv.json, else a local copy of the hub's three files (all in one folder)."""
    path = data.find_local(root, *LOCAL_FILES[name])
    if path is not None:
        return Source(name, "kang" if name == "kang2024" else "dialogues", path)
    if name == "esconv":
        valid = data.find_local(root, HUB_SPLITS["dev"][1])
        if valid is not None and all((valid.parent / f).is_file() for _, f in HUB_SPLITS.values()):
            return Source(name, "splits", valid.parent)
    return None


def _turn_strategy(turn: dict[str, Any]) -> Any:
    """A supporter turn's strategy: under `annotation` in ESConv.json, on the turn in the hub's files."""
    annotation = turn.get("annotation")
    return (annotation.get("strategy") if isinstance(annotation, dict) else None) or turn.get("strategy")


def _json_rows(where: str, rows: Iterable[tuple[int, dict[str, Any]]]) -> Iterator[tuple[int, Any]]:
    """The hub's rows as dialogues: `datasets` reads each .txt line into a `text` column."""
    for n, row in rows:
        try:
            yield n, json.loads(row["text"])
        except (KeyError, TypeError, json.JSONDecodeError):
            raise DataError(where, "expected a `text` column holding a JSON dialogue", n) from None


class ESConvStrategy(ChoiceTask):
    name = "esconv_strategy"
    family = "strategy"
    description = (
        "ESConv: predict the supporter's next support strategy (8 classes; Kang et al. 2024 Q and B)"
    )
    source = "https://github.com/thu-coai/Emotional-Support-Conversation; Kang et al. 2024 (1eastar/EmotionalSupport)"
    license = "CC BY-NC 4.0, academic research use only (ESConv); Kang et al.'s scorer: MIT"
    template = "esconv_strategy.j2"
    system_template = "esconv_system.j2"
    gen_params = GenParams(temperature=0.0, max_tokens=64)
    primary_metric = "macro_f1"
    json_keys: ClassVar[tuple[str, ...]] = ("strategy", "answer")
    arg_defaults: ClassVar[dict[str, Any]] = {"source": "auto", "window": 15}
    splits = ("test", "dev", "train")
    size = 1611  # Kang et al.'s evaluation set; ESConv's own test split depends on the framing

    def __init__(self, data_dir: str | None = None, **args: Any):
        super().__init__(data_dir, **args)
        if self.args["source"] not in ("auto", *LOCAL_FILES):
            raise ConfigError(
                f"esconv_strategy: source={self.args['source']!r}, expected auto, {', '.join(LOCAL_FILES)}"
            )
        try:
            self.window = int(self.args["window"])
        except (TypeError, ValueError):
            raise ConfigError(f"esconv_strategy: window={self.args['window']!r} is not an integer") from None
        self.load_report: dict[str, Any] = {}
        self._resolved: Source | None = None

    # -- data --
    def data_source(self) -> Source:
        """The source to read, found once and announced on stderr (which file is a fact of the run)."""
        if self._resolved is None:
            self._resolved = found = self._find_source()
            print(f"emobench: {self.name}: reading {found.describe()} (source={found.name})", file=sys.stderr)
        return self._resolved

    def _find_source(self) -> Source:
        root = data.data_dir(self.data_dir)
        wanted = self.args["source"]
        if root is None:
            if wanted not in ("auto", "esconv"):
                raise ConfigError(
                    f"esconv_strategy: source={wanted} needs --data-dir with "
                    f"{' or '.join(LOCAL_FILES[wanted])}"
                )
            return Source("esconv", "splits", None)
        order = [wanted] if wanted != "auto" else list(AUTO)
        for name in order:
            found = _local_source(root, name)
            if found is not None:
                return found
        names = ", ".join(n for name in order for n in _expected(name))
        hint = " (FailedESConv.json is read only with --task-arg source=failed)" if wanted == "auto" else ""
        raise DataError(root, f"none of {names} found under --data-dir{hint}")

    def has_split(self, split: str) -> bool:
        """Kang et al.'s file is an evaluation set: it has no dev or train split to tune on."""
        return split == "test" if self.data_source().layout == "kang" else super().has_split(split)

    def load_samples(self, split: str = "test") -> list[Sample]:
        if split not in self.splits:
            raise ConfigError(f"task {self.name} has no split {split!r} (known: {', '.join(self.splits)})")
        source = self.data_source()
        self.load_report = {
            "source": source.name,
            "file": source.describe(),
            "normalised": Counter(),
            "dropped": Counter(),
        }
        read = {"kang": self._kang, "splits": self._split_rows, "dialogues": self._dialogues}[source.layout]
        where, samples = read(source, split)
        self.load_report["normalised"] = dict(self.load_report["normalised"])
        self.load_report["dropped"] = dict(self.load_report["dropped"])
        self.load_report["samples"] = len(samples)
        if not samples:  # an empty run would report nothing as if it measured something
            raise DataError(
                where,
                f"no samples in the {split} split: no supporter turn with one of the 8 "
                "strategies follows a seeker turn",
            )
        return samples

    def _dialogues(self, source: Source, split: str) -> tuple[str, list[Sample]]:
        """ESConv.json or FailedESConv.json, split as the authors' process.py splits it for the hub."""
        path = source.path
        dialogs = data.read_json(path)
        if not isinstance(dialogs, list):
            raise DataError(path, "expected a JSON list of dialogues")
        order = list(range(len(dialogs)))
        random.Random(SPLIT_SEED).shuffle(order)
        n = int(0.15 * len(order))
        part = {"dev": order[:n], "test": order[n : 2 * n], "train": order[2 * n :]}[split]
        samples = [
            s
            for row, i in enumerate(part, start=1)
            for s in self._dialog_samples(
                f"{source.name}-{split}-{row}",
                dialogs[i],
                lambda msg, i=i: DataError(path, f"dialogue {i}: {msg}"),
            )
        ]
        return str(path), samples

    def _split_rows(self, source: Source, split: str) -> tuple[str, list[Sample]]:
        """The hub's `<split>.txt`, from the hub (a `text` column of JSON) or from a local copy."""
        hub_split, file_name = HUB_SPLITS[split]
        if source.path is None:
            where = f"hf://{HUB_REPO}[{hub_split}]"
            rows: Iterable[tuple[int, Any]] = _json_rows(where, data.hub_rows(HUB_REPO, split=hub_split))
        else:
            where = str(source.path / file_name)
            rows = data.read_jsonl(where)
        samples = [
            s
            for row, (line, dialog) in enumerate(rows, start=1)
            for s in self._dialog_samples(
                f"esconv-{split}-{row}", dialog, lambda msg, line=line: DataError(where, msg, line)
            )
        ]
        return where, samples

    def _strategy(self, raw: Any) -> str | None:
        canon = normalise_strategy(raw)
        if canon is None:
            self.load_report["dropped"][str(raw)] += 1
        elif canon != raw:
            self.load_report["normalised"][f"{raw} -> {canon}"] += 1
        return canon

    def _dialog_samples(self, key: str, dialog: Any, error: Callable[[str], DataError]) -> Iterator[Sample]:
        """One sample (id `<key>-<turn>`) per supporter turn that follows a seeker turn and has one of
        the 8 strategies."""
        if not isinstance(dialog, dict) or not isinstance(dialog.get("dialog"), list):
            raise error("no 'dialog' list")
        turns: list[tuple[str, str | None, str]] = []
        for t, turn in enumerate(dialog["dialog"]):
            if not isinstance(turn, dict):
                raise error(f"turn {t} is not an object")
            speaker = _SPEAKERS.get(str(turn.get("speaker", "")).lower())
            if speaker is None:
                raise error(f"turn {t}: unknown speaker {turn.get('speaker')!r}")
            raw = _turn_strategy(turn) if speaker == SUPPORTER else None
            strategy = self._strategy(raw) if speaker == SUPPORTER else None
            text = str(turn.get("content", turn.get("text", "")))
            if speaker == SUPPORTER and t > 0 and turns and turns[-1][0] == SEEKER and strategy is not None:
                window = turns[-self.window :] if self.window > 0 else turns
                yield Sample(
                    id=f"{key}-{t}",
                    input=render_turns(window),
                    target=STRATEGIES.index(strategy),
                    choices=list(STRATEGIES),
                    metadata={
                        "situation": str(dialog.get("situation", "")),
                        "problem_type": dialog.get("problem_type"),
                        "emotion_type": dialog.get("emotion_type"),
                        "category": strategy,
                    },
                )
            turns.append((speaker, strategy or (str(raw) if raw else None), text))

    def _kang(self, source: Source, split: str) -> tuple[str, list[Sample]]:
        path = source.path
        if split != "test":
            raise ConfigError(f"esconv_strategy: {path} (source=kang2024) has only the test split")
        rows = data.read_json(path)
        if not isinstance(rows, list):
            raise DataError(
                path, "expected a JSON list of samples (Kang et al.'s results.json: context, strg_gold, ...)"
            )
        samples: list[Sample] = []
        seen: list[tuple[str, int]] = []
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise DataError(path, f"sample {i} is not an object")
            data.require(path, None, row, "context", "strg_gold")
            gold = self._strategy(row["strg_gold"])
            if gold is None:
                continue
            sid = f"kang2024-{row.get('sample_id', i)}"
            seen.append((sid, i + 1))
            samples.append(
                Sample(
                    id=sid,
                    input=str(row["context"]).strip(),
                    target=STRATEGIES.index(gold),
                    choices=list(STRATEGIES),
                    metadata={
                        "situation": str(row.get("situation", "")),
                        "category": gold,
                        "problem_type": row.get("problem_type"),
                        "emotion_type": row.get("emotion_type"),
                    },
                )
            )
        data.check_unique_ids(path, seen)
        return str(path), samples

    # -- answers --
    def parse(self, text: str, sample: Sample) -> int | None:
        """The strategy named in the reply (JSON `strategy`, a noisy variant, a letter or the name)."""
        if not isinstance(text, str):
            return None
        value = parsing.json_field(parsing.strip_reasoning(text), *self.json_keys)
        canon = normalise_strategy(value) if not isinstance(value, (dict, list)) else None
        if canon is not None:
            return STRATEGIES.index(canon)
        return parsing.choice_index(text, list(STRATEGIES), self.json_keys)

    def format_answer(self, answer: Any, sample: Sample) -> str:
        return json.dumps({"strategy": STRATEGIES[int(answer)]})

    def continuation(self, answer: Any, sample: Sample) -> str:
        return " " + STRATEGIES[int(answer)]

    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        gold = [STRATEGIES[int(r["target"])] for r in records]
        pred = [STRATEGIES[int(r["parsed"])] if r["parsed"] is not None else None for r in records]
        report = strategy_report(gold, pred) if records else {}
        present = report.get("labels_present", STRATEGIES)
        metrics = {
            "accuracy": M.proportion([float(r["score"] or 0.0) for r in records]),
            "macro_f1": M.macro_f1_metric(gold, pred, STRATEGIES),
            "macro_f1_present": M.macro_f1_metric(gold, pred, present),
            "weighted_f1": M.macro_f1_metric(gold, pred, STRATEGIES, weighted=True),
        }
        if report:
            b = report["preference_bias"]
            metrics["preference_bias"] = Metric(b, float("nan"), float("nan"), len(records))
        details = {k: v for k, v in report.items() if k not in metrics}
        if self.load_report:
            details["loader"] = self.load_report
        return metrics, details
