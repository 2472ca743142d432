"""The keyword-free vignette battery (METHODS.md §8) and the public AIPsy-Affect battery (§4).

Four tasks, two questions:
- *which* emotion (`vignettes`, `aipsy_affect`): 8-way Plutchik labelling of affect items, top-1
  accuracy against chance 1/8, per-emotion confusion, and with `set=both` the keyword gap (accuracy on
  keyword-rich versions minus accuracy on the keyword-free originals, paired over the same items);
- *whether* there is an emotion (`vignettes_affect`, `aipsy_affect_detect`): each affect item and its
  matched neutral control are asked "is the character in an emotional state?". The model's own score
  is P(Yes) from the log-likelihoods of the Yes/No replies where the backend gives them, else its
  verbalised probability 0-100. Metrics: AUROC, accuracy at 50, and a sign test over matched pairs
  (does the affect item score above its own control?).

The shipped items (`tasks/data/vignettes.jsonl`) are original; `emobench audit-keywords` checks them
(and user items) for leakage. AIPsy-Affect is read from the hub (`keidolabs/aipsy-affect`) or from
`--data-dir`; its column names are not documented, so they are detected (see `map_columns`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from emobench import metrics as M
from emobench import parsing
from emobench.audit import EMOTIONS, Item, read_items
from emobench.data import data_dir, hub_rows, read_csv, read_jsonl
from emobench.errors import ConfigError, DataError
from emobench.paths import tasks_dir
from emobench.task import ChoiceTask, Task
from emobench.types import GenParams, Metric, Sample

CHOICES = [e.capitalize() for e in EMOTIONS]
CHANCE = 1 / len(EMOTIONS)
SETS = ("keyword_free", "keyword_rich", "both")
BATTERY = "vignettes.jsonl"


@lru_cache(maxsize=4)
def _battery(path: str) -> tuple[Item, ...]:
    return tuple(read_items(path))


def battery_path() -> Path:
    return tasks_dir() / "data" / BATTERY


def _kinds(set_name: Any) -> tuple[str, ...]:
    """Which affect-side item kinds a `set=` argument selects."""
    if set_name not in SETS:
        raise ConfigError(f"--task-arg set={set_name!r}: choose one of {', '.join(SETS)}")
    return {"keyword_free": ("affect",), "keyword_rich": ("keyword_rich",),
            "both": ("affect", "keyword_rich")}[set_name]


def _meta(r: dict[str, Any], key: str) -> Any:
    return (r.get("metadata") or {}).get(key)


def keyword_gap(records: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> Metric | None:
    """Mean over pairs of value(keyword-rich item) - value(its keyword-free affect item), bootstrap CI.

    Paired over the same stories, so the gap measures the keywords, not a difference between items."""
    by_pair: dict[str, dict[str, float]] = {}
    for r in records:
        by_pair.setdefault(str(_meta(r, "pair_id")), {})[str(_meta(r, "kind"))] = value(r)
    diffs = [s["keyword_rich"] - s["affect"] for s in by_pair.values() if "keyword_rich" in s and "affect" in s]
    return M.mean(diffs) if diffs else None


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact binomial sign test p-value; ties are dropped before calling."""
    n = wins + losses
    if n == 0:
        return float("nan")
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


# ---- which emotion ----------------------------------------------------------------------------------
class Vignettes(ChoiceTask):
    name = "vignettes"
    family = "vignette"
    description = "8-way Plutchik labelling of original keyword-free vignettes (set=keyword_free|keyword_rich|both)"
    source = "original items written for emobench (tasks/data/vignettes.jsonl)"
    license = "Apache-2.0"
    output_mode = "multiple_choice"
    template = "vignettes.j2"
    instruction = ("Which one of Plutchik's eight basic emotions is the main character of the short story "
                   "below most likely experiencing?")
    gen_params = GenParams(temperature=0.0, max_tokens=128)
    arg_defaults = {"set": "keyword_free"}
    size = 64

    def items(self) -> Iterable[Item]:
        """The battery; subclasses read other batteries into the same `Item` shape."""
        return _battery(str(battery_path()))

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        kinds = _kinds(self.args.get("set", "keyword_free"))
        for it in self.items():
            if it.kind in kinds:
                yield Sample(id=it.id, input=it.text, target=EMOTIONS.index(str(it.emotion)), choices=CHOICES,
                             metadata={"category": it.emotion, "kind": it.kind, "pair_id": it.pair_id})

    def continuation(self, answer: Any, sample: Sample) -> str:
        """The start of the JSON reply the prompt asks for: options share `{"answer": "`, which the
        local backends score once."""
        return '{"answer": "%s"' % chr(65 + int(answer))

    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        """`accuracy` is over keyword-free items whenever there are any (keyword-rich ones get their
        own metric), so the headline number always means the same thing."""
        free = [r for r in records if _meta(r, "kind") != "keyword_rich"]
        rich = [r for r in records if _meta(r, "kind") == "keyword_rich"]
        metrics: dict[str, Metric] = {}
        details: dict[str, Any] = {"chance": CHANCE}
        # with set=keyword_rich alone, the keyword-rich items are the headline number
        for label, group in ((("", free), ("_keyword_rich", rich)) if free else (("", rich),)):
            if not group:
                continue
            m, d = super().aggregate(group)
            metrics["accuracy" + label] = m["accuracy"]
            details["accuracy_by_emotion" + label] = d.get("accuracy_by_category", {})
            gold = [EMOTIONS[int(r["target"])] for r in group]
            pred = [EMOTIONS[r["parsed"]] if isinstance(r["parsed"], int) and 0 <= r["parsed"] < len(EMOTIONS)
                    else None for r in group]
            details["confusion" + label] = M.confusion(gold, pred, EMOTIONS)
        if free and rich:
            gap = keyword_gap(records, lambda r: float(r["score"] or 0.0))
            if gap is not None:
                metrics["keyword_gap"] = gap
        return metrics, details


# ---- whether an emotion ----------------------------------------------------------------------------
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


class VignettesAffect(Task):
    name = "vignettes_affect"
    family = "vignette"
    description = "affect vs matched neutral control: AUROC of the model's own P(emotion), paired sign test"
    source = "original items written for emobench (tasks/data/vignettes.jsonl)"
    license = "Apache-2.0"
    output_mode = "multiple_choice"
    template = "vignettes_affect.j2"
    instruction = "Read the question, then the short story."
    gen_params = GenParams(temperature=0.0, max_tokens=128)
    primary_metric = "auroc"
    arg_defaults = {"set": "keyword_free"}
    size = 128
    YES, NO = 100.0, 0.0

    def items(self) -> Iterable[Item]:
        return _battery(str(battery_path()))

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        """Per pair: the selected affect-side item(s), then the neutral control; pairs without a
        control are left out (they cannot be compared)."""
        kinds = _kinds(self.args.get("set", "keyword_free"))
        by_pair: dict[str, dict[str, Item]] = {}
        for it in self.items():
            by_pair.setdefault(it.pair_id, {})[it.kind] = it
        for pid, slot in by_pair.items():
            chosen = [slot[k] for k in kinds if k in slot]
            if not chosen or "neutral" not in slot:
                continue
            for it in [*chosen, slot["neutral"]]:
                yield Sample(id=it.id, input=it.text, target=int(it.kind != "neutral"),
                             metadata={"kind": it.kind, "pair_id": pid, "emotion": it.emotion})

    def answer_space(self, sample: Sample) -> list[float]:
        return [self.YES, self.NO]

    def format_answer(self, answer: Any, sample: Sample) -> str:
        word = "Yes" if float(answer) >= 50 else "No"
        return '{"answer": "%s", "probability": %g}' % (word, float(answer))

    def continuation(self, answer: Any, sample: Sample) -> str:
        return '{"answer": "%s"' % ("Yes" if float(answer) >= 50 else "No")

    def parse(self, text: str, sample: Sample) -> float | None:
        """The probability (0-100) that the character is in an emotional state: the `probability`
        field, else Yes -> 100 / No -> 0 from the `answer` field or the first word of the reply."""
        if not isinstance(text, str):
            return None
        text = parsing.strip_reasoning(text)
        value = parsing.json_field(text, "probability", "confidence", "p_yes")
        if value is not None and not isinstance(value, (dict, list, bool)):
            x = parsing.number(str(value), 0, 100)
            if x is not None:
                return x
        answer = parsing.json_field(text, "answer")
        for cand in (answer, text.strip()[:12]):
            m = _YES_NO.match(str(cand).strip().strip("*\"'")) if isinstance(cand, str) else None
            if m:
                return self.YES if m.group(1).lower() == "yes" else self.NO
        return None

    def score(self, parsed: Any, sample: Sample) -> float:
        """Accuracy at 50: a probability of 50 or more says 'emotional state'."""
        return float((float(parsed) >= 50) == bool(sample.target))

    @classmethod
    def model_score(cls, r: dict[str, Any]) -> float:
        """P(Yes)*100 from the Yes/No log-likelihoods when the backend ranked them, else the parsed
        probability; an unparseable reply is an uninformative 50."""
        lls = (r.get("trace") or {}).get("loglikelihoods")
        if r.get("mode") == "loglikelihood" and isinstance(lls, list) and len(lls) == 2:
            diff = float(lls[0]) - float(lls[1])
            return 100.0 / (1.0 + math.exp(-max(-700.0, min(700.0, diff))))
        return float(r["parsed"]) if isinstance(r.get("parsed"), (int, float)) else 50.0

    def aggregate(self, records: list[dict[str, Any]]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics: dict[str, Metric] = {}
        details: dict[str, Any] = {"score_source": {}}
        for r in records:
            src = "loglikelihood" if r.get("mode") == "loglikelihood" else "verbalised"
            details["score_source"][src] = details["score_source"].get(src, 0) + 1
        neutral = [r for r in records if _meta(r, "kind") == "neutral"]
        has_affect = any(_meta(r, "kind") == "affect" for r in records)
        for label, kind in ((("", "affect"), ("_keyword_rich", "keyword_rich")) if has_affect
                            else (("", "keyword_rich"),)):
            group = [r for r in records if _meta(r, "kind") == kind]
            if not group:
                continue
            # the headline items against every control; keyword-rich ones (a subset) against their own
            pids = {_meta(r, "pair_id") for r in group}
            both = group + [r for r in neutral if label == "" or _meta(r, "pair_id") in pids]
            metrics["auroc" + label] = M.auroc_metric([self.model_score(r) for r in both],
                                                      [int(r["target"]) for r in both])
            metrics["accuracy" + label] = M.proportion([float(r["score"] or 0.0) for r in both])
            wins, losses, ties = self._pair_outcomes(group, neutral)
            if wins + losses:
                metrics["pair_win_rate" + label] = M.proportion([1.0] * wins + [0.0] * losses)
            details["sign_test" + label] = {"wins": wins, "losses": losses, "ties": ties,
                                            "p_value": sign_test(wins, losses)}
            details["mean_score" + label] = M.mean([self.model_score(r) for r in group]).as_dict()
        if neutral:
            details["mean_score_neutral"] = M.mean([self.model_score(r) for r in neutral]).as_dict()
        if "auroc" in metrics and "auroc_keyword_rich" in metrics:
            gap = keyword_gap(records, lambda r: float(r["score"] or 0.0))
            if gap is not None:
                metrics["keyword_gap"] = gap
        return metrics, details

    def _pair_outcomes(self, group: list[dict[str, Any]], neutral: list[dict[str, Any]]) -> tuple[int, int, int]:
        control = {_meta(r, "pair_id"): self.model_score(r) for r in neutral}
        wins = losses = ties = 0
        for r in group:
            other = control.get(_meta(r, "pair_id"))
            if other is None:
                continue
            diff = self.model_score(r) - other
            wins, losses, ties = wins + (diff > 0), losses + (diff < 0), ties + (diff == 0)
        return wins, losses, ties


# ---- AIPsy-Affect (keidolabs/aipsy-affect, MIT) ----------------------------------------------------------
AIPSY_REPO = "keidolabs/aipsy-affect"
AIPSY_SPLITS = ("clinical", "neutral", "moderate", "complex_neutral")
TEXT_COLUMNS = ("text", "vignette", "scenario", "passage", "content", "story", "item_text", "item", "stimulus",
                "prompt")
EMOTION_COLUMNS = ("emotion", "target_emotion", "primary_emotion", "plutchik_emotion", "emotion_category",
                   "category", "label", "plutchik", "emotion_label")
PAIR_COLUMNS = ("pair_id", "pair", "matched_id", "match_id", "pair_index", "matched_to", "control_for",
                "source_id", "clinical_id")
ID_COLUMNS = ("id", "item_id", "vignette_id", "uid", "idx", "index")


def _pick(columns: list[str], preferred: tuple[str, ...], accept: Callable[[str], bool] | None = None) -> str | None:
    """The first `preferred` column name present (and accepted); with `accept`, else any accepted column."""
    lowered = {c.lower(): c for c in columns}
    for name in preferred:
        if name in lowered and (accept is None or accept(lowered[name])):
            return lowered[name]
    return next((c for c in columns if accept(c)), None) if accept is not None else None


def map_columns(rows: list[dict[str, Any]], where: str, need_emotion: bool) -> dict[str, str | None]:
    """Find the text, emotion, pair and id columns of an AIPsy split whose schema is not documented.

    Text: a preferred name holding strings, else the string column with the longest values. Emotion: a
    column whose values are (nearly all) Plutchik emotion names. Pair/id: by name. A split that cannot
    be mapped raises a DataError that lists the columns found.
    """
    columns = list(rows[0].keys()) if rows else []

    def strings(c: str) -> bool:
        return all(isinstance(r.get(c), str) for r in rows)

    def mean_len(c: str) -> float:
        return sum(len(r[c]) for r in rows) / len(rows)

    def emotions(c: str) -> bool:
        values = [str(r.get(c) or "").strip().lower() for r in rows]
        return sum(v in EMOTIONS for v in values) >= 0.9 * len(values)

    text = _pick(columns, TEXT_COLUMNS, lambda c: strings(c) and mean_len(c) >= 20)
    if text is None:
        long_strings = sorted((c for c in columns if strings(c)), key=mean_len, reverse=True)
        text = long_strings[0] if long_strings and mean_len(long_strings[0]) >= 40 else None
    emotion = _pick(columns, EMOTION_COLUMNS, emotions)
    mapping = {"text": text, "emotion": emotion,
               "pair": _pick(columns, PAIR_COLUMNS), "id": _pick(columns, ID_COLUMNS)}
    missing = [k for k in ("text", "emotion") if mapping[k] is None and (k == "text" or need_emotion)]
    if missing:
        raise DataError(where, f"cannot find the {' and '.join(missing)} column(s) among the columns found: "
                        f"{', '.join(columns) or '(none)'}")
    return mapping


def _local_split_file(root: Path, split: str) -> Path | None:
    """`clinical.parquet`, `clinical-00000-of-00001.parquet` (hub layout), .jsonl or .csv, searched below
    `root` (an `*aipsy*` folder first)."""
    suffixes = (".parquet", ".jsonl", ".csv")
    folders = sorted(p for p in root.rglob("*") if p.is_dir() and "aipsy" in p.name.lower()) + [root]
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            stem = path.name[: -len(path.suffix)] if path.suffix else path.name
            if path.suffix in suffixes and (stem == split or stem.startswith(split + "-")):
                return path
    return None


def _read_local(path: Path) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix == ".parquet":
        import pandas as pd  # noqa: PLC0415

        try:
            frame = pd.read_parquet(path)
        except Exception as exc:
            raise DataError(path, f"cannot read parquet ({type(exc).__name__}: {exc})") from None
        return [(i, row) for i, row in enumerate(frame.to_dict(orient="records"), start=1)]
    return list(read_csv(path) if path.suffix == ".csv" else read_jsonl(path))


def aipsy_rows(split: str, local_root: Path | None) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """(where, numbered rows) of one split: the local copy when `--data-dir` has one, else the hub."""
    if local_root is not None and local_root.is_dir():
        path = _local_split_file(local_root, split)
        if path is not None:
            return str(path), _read_local(path)
    return f"hf://{AIPSY_REPO}[{split}]", list(hub_rows(AIPSY_REPO, split=split))


def _pair_key(row: dict[str, Any], mapping: dict[str, str | None], number: int) -> tuple[str, str]:
    """(pair key, how): the pair column, else the number in the id ("C017" and "N017" pair), else the
    row number (the card says controls are matched one to one; row order is then the only link)."""
    if mapping["pair"] is not None and row.get(mapping["pair"]) not in (None, ""):
        return str(row[mapping["pair"]]), "pair column"
    if mapping["id"] is not None:
        digits = re.findall(r"\d+", str(row.get(mapping["id"])))
        if digits:
            return str(int(digits[-1])), "id number"
    return str(number), "row order"


def load_aipsy(affect_split: str, control_split: str | None, local_root: Path | None) -> list[Item]:
    """AIPsy rows as battery `Item`s: the affect split as `affect`, the control split as `neutral`."""
    items: list[Item] = []
    for split, kind in ((affect_split, "affect"), (control_split, "neutral")):
        if split is None:
            continue
        where, rows = aipsy_rows(split, local_root)
        if not rows:
            raise DataError(where, "split is empty")
        mapping = map_columns([r for _, r in rows], where, need_emotion=kind == "affect")
        for n, (line, row) in enumerate(rows, start=1):
            text = str(row.get(mapping["text"]) or "").strip()
            if not text:
                raise DataError(where, f"empty {mapping['text']!r}", line)
            emotion = str(row.get(mapping["emotion"]) or "").strip().lower() if mapping["emotion"] else ""
            if kind == "affect" and emotion not in EMOTIONS:
                raise DataError(where, f"{mapping['emotion']!r} is {row.get(mapping['emotion'])!r}, not one of "
                                f"{', '.join(EMOTIONS)}", line)
            pair, _ = _pair_key(row, mapping, n)
            if split not in ("clinical", "neutral"):  # moderate / complex_neutral have no matched partner
                pair = f"{split}-{pair}"
            ident = str(row.get(mapping["id"])) if mapping["id"] else str(n)
            items.append(Item(f"aipsy-{split}-{ident}", pair, kind, emotion if kind == "affect" else None,
                              text, where, line))
    ids = [it.id for it in items]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(items[0].path, f"duplicate item id {dup!r}")
    return items


def _check_split(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"--task-arg {key}={value!r}: choose one of {', '.join(allowed)}")
    return str(value)


class AipsyAffect(Vignettes):
    name = "aipsy_affect"
    description = "AIPsy-Affect: 8-way Plutchik labelling of keyword-free clinical vignettes (subset=clinical|moderate)"
    source = f"hf://{AIPSY_REPO} (M. Keeman, arXiv 2604.23719)"
    license = "MIT"
    arg_defaults = {"subset": "clinical"}
    size = 192

    def items(self) -> Iterable[Item]:
        subset = _check_split(self.args["subset"], ("clinical", "moderate"), "subset")
        return load_aipsy(subset, None, data_dir(self.data_dir))


class AipsyAffectDetect(VignettesAffect):
    name = "aipsy_affect_detect"
    description = "AIPsy-Affect: clinical vs matched neutral controls, AUROC of P(emotion) and paired sign test"
    source = f"hf://{AIPSY_REPO} (M. Keeman, arXiv 2604.23719)"
    license = "MIT"
    arg_defaults = {"affect": "clinical", "control": "neutral"}
    size = 384

    def items(self) -> Iterable[Item]:
        affect = _check_split(self.args["affect"], ("clinical", "moderate"), "affect")
        control = _check_split(self.args["control"], ("neutral", "complex_neutral"), "control")
        return load_aipsy(affect, control, data_dir(self.data_dir))

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        """Every affect and control item (the moderate and complex_neutral splits have no one-to-one
        partner, so unlike the shipped battery an unpaired item is kept; the sign test uses pairs)."""
        for it in self.items():
            yield Sample(id=it.id, input=it.text, target=int(it.kind != "neutral"),
                         metadata={"kind": it.kind, "pair_id": it.pair_id, "emotion": it.emotion})
