"""ESConv next-strategy prediction, scored with Kang et al. (ACL 2024) proficiency and preference.

Each sample is one supporter turn: the model sees the preceding conversation window (supporter turns
shown with their gold strategy, ending in a seeker turn, as in Kang's evaluation set) and names the
strategy the supporter should use next, one of the 8 ESConv strategies (METHODS.md §2).

Sources (`--task-arg source=`):
- `esconv` (default): ESConv.json from `--data-dir`, split by shuffling the dialogues with seed 13
  into 70/15/15 train/dev/test; without `--data-dir`, the hub dataset `thu-coai/esconv` and its splits.
- `failed`: FailedESConv.json (same schema, speakers named "speaker"/"listener").
- `kang2024`: Kang et al.'s evaluation file (`kang2024_results.json`: `context`, `strg_gold`, ...),
  whose contexts are used as they are (test split only). Chosen automatically when it is the only
  file in `--data-dir`.

Strategy names in the real files are noisy ("Questions", "Other", "Approval and Reassurance",
"Restatement", "Direct Guidance"): `normalise_strategy` maps the variants it can, and the loader
counts what it normalised and what it dropped (`task.load_report`, copied into the results details).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from emobench import data, parsing
from emobench import metrics as M
from emobench.errors import ConfigError, DataError
from emobench.task import ChoiceTask
from emobench.types import GenParams, Metric, Sample

# The 8 strategies in the order of ESConv's strat.json and Kang's metrics.py (the order of the
# Bradley-Terry sweep, so it matters in the last decimals).
STRATEGIES = ("Question", "Restatement or Paraphrasing", "Reflection of Feelings", "Self-disclosure",
              "Affirmation and Reassurance", "Providing Suggestions", "Information", "Others")
_CANONICAL = {s.lower(): s for s in STRATEGIES}
_ALIASES = {"questions": "Question", "other": "Others", "restatement": "Restatement or Paraphrasing",
            "paraphrasing": "Restatement or Paraphrasing", "self disclosure": "Self-disclosure",
            "approval and reassurance": "Affirmation and Reassurance", "suggestions": "Providing Suggestions",
            "providing suggestion": "Providing Suggestions", "reflection of feeling": "Reflection of Feelings"}
SEEKER, SUPPORTER = "seeker", "supporter"
_SPEAKERS = {"seeker": SEEKER, "usr": SEEKER, "speaker": SEEKER, "supporter": SUPPORTER, "sys": SUPPORTER,
             "listener": SUPPORTER}
SPLIT_SEED = 13
LOCAL_FILES = {"esconv": "ESConv.json", "failed": "FailedESConv.json", "kang2024": "kang2024_results.json"}


def normalise_strategy(name: Any) -> str | None:
    """The canonical strategy for a (noisy) name, or None when it is not one of the 8."""
    if not isinstance(name, str):
        return None
    key = " ".join(name.strip().strip("[]").replace("_", " ").split()).lower()
    return _CANONICAL.get(key) or _ALIASES.get(key)


# ---- Kang et al. (2024) metrics --------------------------------------------------------------------

def strategy_report(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, Any]:
    """Accuracy, macro-F1 (Kang's proficiency Q), weighted F1, per-strategy F1, Bradley-Terry
    preferences, preference bias B and the predicted/gold distributions, all as plain floats.

    `gold`/`pred` are strategy names (any case; noisy variants allowed). A prediction that is None or
    not a strategy counts as wrong for accuracy and F1 and is left out of the preference model
    (it prefers no strategy); Kang's script refuses such files, so they are reported separately.
    """
    g = [normalise_strategy(x) for x in gold]
    if any(x is None for x in g):
        raise ValueError(f"gold labels outside the 8 strategies: {sorted({str(a) for a, b in zip(gold, g, strict=True) if b is None})}")
    p = [normalise_strategy(x) for x in pred]
    n = len(g)
    f1 = M.f1_scores(g, p, STRATEGIES)
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


class ESConvStrategy(ChoiceTask):
    name = "esconv_strategy"
    family = "strategy"
    description = "ESConv: predict the supporter's next support strategy (8 classes; Kang et al. 2024 Q and B)"
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
            raise ConfigError(f"esconv_strategy: source={self.args['source']!r}, expected auto, "
                              f"{', '.join(LOCAL_FILES)}")
        try:
            self.window = int(self.args["window"])
        except (TypeError, ValueError):
            raise ConfigError(f"esconv_strategy: window={self.args['window']!r} is not an integer") from None
        self.load_report: dict[str, Any] = {}

    # -- data --
    def _source(self) -> tuple[str, Path | None]:
        root = data.data_dir(self.data_dir)
        wanted = self.args["source"]
        if root is None:
            if wanted not in ("auto", "esconv"):
                raise ConfigError(f"esconv_strategy: source={wanted} needs --data-dir with {LOCAL_FILES[wanted]}")
            return "esconv", None
        order = [wanted] if wanted != "auto" else list(LOCAL_FILES)
        for source in order:
            path = data.find_local(root, LOCAL_FILES[source])
            if path is not None:
                return source, path
        raise DataError(root, f"none of {', '.join(LOCAL_FILES[s] for s in order)} found under --data-dir")

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        if split not in self.splits:
            raise ConfigError(f"task {self.name} has no split {split!r} (known: {', '.join(self.splits)})")
        source, path = self._source()
        self.load_report = {"source": source, "normalised": Counter(), "dropped": Counter()}
        if source == "kang2024":
            samples = list(self._kang(path, split))  # type: ignore[arg-type]
        elif path is None:
            samples = list(self._hub(split))
        else:
            dialogs = data.read_json(path)
            if not isinstance(dialogs, list):
                raise DataError(path, "expected a JSON list of dialogues")
            numbered = list(enumerate(dialogs))
            random.Random(SPLIT_SEED).shuffle(numbered)
            n_dev = n_test = int(0.15 * len(numbered))
            part = {"dev": numbered[:n_dev], "test": numbered[n_dev:n_dev + n_test],
                    "train": numbered[n_dev + n_test:]}[split]
            samples = [s for i, d in part for s in self._dialog_samples(path, source, i, d)]
        self.load_report["normalised"] = dict(self.load_report["normalised"])
        self.load_report["dropped"] = dict(self.load_report["dropped"])
        self.load_report["samples"] = len(samples)
        yield from samples

    def _hub(self, split: str) -> Iterator[Sample]:
        hub_split = {"dev": "validation"}.get(split, split)
        for i, row in data.hub_rows("thu-coai/esconv", split=hub_split):
            dialog = json.loads(row["text"]) if isinstance(row.get("text"), str) else row
            yield from self._dialog_samples(Path("hf://thu-coai/esconv"), "esconv", i, dialog)

    def _strategy(self, raw: Any) -> str | None:
        canon = normalise_strategy(raw)
        if canon is None:
            self.load_report["dropped"][str(raw)] += 1
        elif canon != raw:
            self.load_report["normalised"][f"{raw} -> {canon}"] += 1
        return canon

    def _dialog_samples(self, path: Path, source: str, number: int, dialog: Any) -> Iterator[Sample]:
        if not isinstance(dialog, dict) or not isinstance(dialog.get("dialog"), list):
            raise DataError(path, f"dialogue {number} has no 'dialog' list")
        turns: list[tuple[str, str | None, str]] = []
        for t, turn in enumerate(dialog["dialog"]):
            speaker = _SPEAKERS.get(str(turn.get("speaker", "")).lower())
            if speaker is None:
                raise DataError(path, f"dialogue {number}, turn {t}: unknown speaker {turn.get('speaker')!r}")
            raw = (turn.get("annotation") or {}).get("strategy") if speaker == SUPPORTER else None
            strategy = self._strategy(raw) if speaker == SUPPORTER else None
            text = str(turn.get("content", turn.get("text", "")))
            if speaker == SUPPORTER and t > 0 and turns and turns[-1][0] == SEEKER:
                if strategy is not None:
                    window = turns[-self.window:] if self.window > 0 else turns
                    yield Sample(
                        id=f"{source}-{number}-{t}", input=render_turns(window),
                        target=STRATEGIES.index(strategy), choices=list(STRATEGIES),
                        metadata={"situation": str(dialog.get("situation", "")),
                                  "problem_type": dialog.get("problem_type"),
                                  "emotion_type": dialog.get("emotion_type"), "category": strategy})
            turns.append((speaker, strategy or (str(raw) if raw else None), text))

    def _kang(self, path: Path, split: str) -> Iterator[Sample]:
        rows = data.read_json(path)
        if not isinstance(rows, list):
            raise DataError(path, "expected a JSON list of samples")
        if split != "test":
            return
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
            yield Sample(id=sid, input=str(row["context"]).strip(), target=STRATEGIES.index(gold),
                         choices=list(STRATEGIES),
                         metadata={"situation": str(row.get("situation", "")), "category": gold,
                                   "problem_type": row.get("problem_type"), "emotion_type": row.get("emotion_type")})
        data.check_unique_ids(path, seen)

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
        metrics = {"accuracy": M.proportion([float(r["score"] or 0.0) for r in records]),
                   "macro_f1": M.macro_f1_metric(gold, pred, STRATEGIES),
                   "weighted_f1": M.macro_f1_metric(gold, pred, STRATEGIES, weighted=True)}
        if report:
            b = report["preference_bias"]
            metrics["preference_bias"] = Metric(b, float("nan"), float("nan"), len(records))
        details = {k: v for k, v in report.items() if k not in ("accuracy", "macro_f1", "weighted_f1")}
        if self.load_report:
            details["loader"] = self.load_report
        return metrics, details
