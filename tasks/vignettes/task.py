"""The keyword-free vignette battery shipped with emobench, asked two questions.

Two tasks (the AIPsy-Affect tasks in `tasks/aipsy_affect/` ask the same questions of that dataset,
reusing the classes and helpers below):
- *which* emotion (`vignettes`): 8-way Plutchik labelling of affect items, top-1 accuracy against
  chance 1/8, per-emotion confusion, and with `set=both` the keyword gap (accuracy on keyword-rich
  versions minus accuracy on the keyword-free originals, paired over the same items);
- *whether* there is an emotion (`vignettes_affect`): each affect item and its matched neutral control
  are asked "is the character in an emotional state?". The model's own score is P(Yes) from the
  log-likelihoods of the Yes/No replies where the backend gives them, else its verbalised probability
  0-100. Metrics: AUROC, accuracy at 50, and a sign test over matched pairs (does the affect item score
  above its own control?).

The items come from `emobench.battery`, which reads the battery named by `--task-arg battery=` (the
shipped original items in `tasks/vignettes/vignettes.jsonl` by default, or a user file in the same
layout). `emobench audit-keywords` checks a battery for leakage.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from emobench import metrics as M
from emobench import parsing
from emobench.audit import EMOTIONS, Item
from emobench.battery import SHIPPED, load_battery
from emobench.errors import ConfigError, DataError
from emobench.task import ChoiceTask, Task
from emobench.types import GenParams, Metric, Sample
from emobench.wheel import wheel_report

CHOICES = [e.capitalize() for e in EMOTIONS]
CHANCE = 1 / len(EMOTIONS)
SETS = ("keyword_free", "keyword_rich", "both")


def battery_items(task: Task) -> tuple[Item, ...]:
    """The items of the battery named by the task's `battery` argument."""
    return load_battery(str(task.args["battery"]), task.data_dir).items


def require_samples(samples: list[Sample], items: Sequence[Item], what: str) -> list[Sample]:
    """A selection that leaves nothing to ask is the battery's fault, said as such, not an empty run."""
    if not samples:
        where = next((it.path for it in items), "battery")
        raise DataError(where, f"no {what}")
    return samples


def _own_label(it: Item) -> dict[str, str]:
    """The dataset's own emotion name for a sample's metadata, where it has one (so the samples of the
    shipped battery, which has none, keep their fingerprint)."""
    return {"label": it.label} if it.label else {}


def _kinds(set_name: Any) -> tuple[str, ...]:
    """Which affect-side item kinds a `set=` argument selects."""
    if set_name not in SETS:
        raise ConfigError(f"--task-arg set={set_name!r}: choose one of {', '.join(SETS)}")
    return {
        "keyword_free": ("affect",),
        "keyword_rich": ("keyword_rich",),
        "both": ("affect", "keyword_rich"),
    }[set_name]


def _meta(r: dict[str, Any], key: str) -> Any:
    return (r.get("metadata") or {}).get(key)


def keyword_gap(records: list[dict[str, Any]], value: Callable[[dict[str, Any]], float]) -> Metric | None:
    """Mean over pairs of value(keyword-rich item) - value(its keyword-free affect item), bootstrap CI.

    Paired over the same stories, so the gap measures the keywords, not a difference between items."""
    by_pair: dict[str, dict[str, float]] = {}
    for r in records:
        by_pair.setdefault(str(_meta(r, "pair_id")), {})[str(_meta(r, "kind"))] = value(r)
    diffs = [
        s["keyword_rich"] - s["affect"] for s in by_pair.values() if "keyword_rich" in s and "affect" in s
    ]
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
    description = (
        "8-way Plutchik labelling of original keyword-free vignettes "
        "(set=keyword_free|keyword_rich|both, battery=FILE)"
    )
    source = "original items written for emobench (tasks/vignettes/vignettes.jsonl)"
    license = "Apache-2.0"
    output_mode = "multiple_choice"
    template = "vignettes.j2"
    instruction = (
        "Which one of Plutchik's eight basic emotions is the main character of the short story "
        "below most likely experiencing?"
    )
    gen_params = GenParams(temperature=0.0, max_tokens=128)
    arg_defaults = {"set": "keyword_free", "battery": SHIPPED}
    size = 64

    def items(self) -> Sequence[Item]:
        """The battery; the AIPsy-Affect subclass reads its splits into the same `Item` shape."""
        return battery_items(self)

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        kinds = _kinds(self.args.get("set", "keyword_free"))
        items = self.items()
        samples = [
            Sample(
                id=it.id,
                input=it.text,
                target=EMOTIONS.index(str(it.emotion)),
                choices=CHOICES,
                metadata={"category": it.emotion, "kind": it.kind, "pair_id": it.pair_id, **_own_label(it)},
            )
            for it in items
            if it.kind in kinds
        ]
        return require_samples(samples, items, f"{' or '.join(kinds)} items")

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
        for label, group in (("", free), ("_keyword_rich", rich)) if free else (("", rich),):
            if not group:
                continue
            m, d = super().aggregate(group)
            metrics["accuracy" + label] = m["accuracy"]
            if "strict_accuracy" in m:
                metrics["strict_accuracy" + label] = m["strict_accuracy"]
            details["accuracy_by_emotion" + label] = d.get("accuracy_by_category", {})
            gold = [EMOTIONS[int(r["target"])] for r in group]
            pred = [
                EMOTIONS[r["parsed"]]
                if isinstance(r["parsed"], int) and 0 <= r["parsed"] < len(EMOTIONS)
                else None
                for r in group
            ]
            details["confusion" + label] = M.confusion(gold, pred, EMOTIONS)
            # near misses on Plutchik's wheel (emobench/wheel.py)
            metrics["wheel_credit" + label], wheel = wheel_report(gold, pred)
            if not label:
                details["wheel"] = wheel
        names = {_meta(r, "category"): _meta(r, "label") for r in records if _meta(r, "label")}
        if names:  # the dataset's own emotion names (AIPsy-Affect's rage, terror, ...) beside the primaries
            details["dataset_labels"] = dict(sorted(names.items()))
        if free and rich:
            gap = keyword_gap(records, lambda r: float(r["score"] or 0.0))
            if gap is not None:
                metrics["keyword_gap"] = gap
        return metrics, details


# ---- whether an emotion ----------------------------------------------------------------------------
_YES_NO = re.compile(r"\b(yes|no)\b", re.IGNORECASE)


def detect_sample(it: Item) -> Sample:
    """An item of the detection tasks: target 1 for an affect-side item, 0 for a neutral one."""
    return Sample(
        id=it.id,
        input=it.text,
        target=int(it.kind != "neutral"),
        metadata={"kind": it.kind, "pair_id": it.pair_id, "emotion": it.emotion, **_own_label(it)},
    )


class VignettesAffect(Task):
    name = "vignettes_affect"
    family = "vignette"
    description = (
        "affect vs matched neutral control: AUROC of the model's own P(emotion), paired sign test "
        "(battery=FILE)"
    )
    source = "original items written for emobench (tasks/vignettes/vignettes.jsonl)"
    license = "Apache-2.0"
    output_mode = "multiple_choice"
    template = "vignettes_affect.j2"
    instruction = "Read the question, then the short story."
    gen_params = GenParams(temperature=0.0, max_tokens=128)
    primary_metric = "auroc"
    arg_defaults = {"set": "keyword_free", "battery": SHIPPED}
    size = 128
    YES, NO = 100.0, 0.0

    def items(self) -> Sequence[Item]:
        return battery_items(self)

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        """Per pair: the selected affect-side item(s), then the neutral control; pairs without a
        control are left out (they cannot be compared)."""
        kinds = _kinds(self.args.get("set", "keyword_free"))
        items = self.items()
        by_pair: dict[str, dict[str, Item]] = {}
        for it in items:
            by_pair.setdefault(it.pair_id, {})[it.kind] = it
        samples: list[Sample] = []
        for slot in by_pair.values():
            chosen = [slot[k] for k in kinds if k in slot]
            if chosen and "neutral" in slot:
                samples += [detect_sample(it) for it in [*chosen, slot["neutral"]]]
        return require_samples(
            samples, items, f"{' or '.join(kinds)} item with a neutral control of the same pair_id"
        )

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
        for label, kind in (
            (("", "affect"), ("_keyword_rich", "keyword_rich")) if has_affect else (("", "keyword_rich"),)
        ):
            group = [r for r in records if _meta(r, "kind") == kind]
            if not group:
                continue
            # the headline items against every control; keyword-rich ones (a subset) against their own
            pids = {_meta(r, "pair_id") for r in group}
            both = group + [r for r in neutral if label == "" or _meta(r, "pair_id") in pids]
            metrics["auroc" + label] = M.auroc_metric(
                [self.model_score(r) for r in both], [int(r["target"]) for r in both]
            )
            metrics["accuracy" + label] = M.proportion([float(r["score"] or 0.0) for r in both])
            wins, losses, ties = self._pair_outcomes(group, neutral)
            if wins + losses:
                metrics["pair_win_rate" + label] = M.proportion([1.0] * wins + [0.0] * losses)
            details["sign_test" + label] = {
                "wins": wins,
                "losses": losses,
                "ties": ties,
                "p_value": sign_test(wins, losses),
            }
            details["mean_score" + label] = M.mean([self.model_score(r) for r in group]).as_dict()
        if neutral:
            details["mean_score_neutral"] = M.mean([self.model_score(r) for r in neutral]).as_dict()
        if "auroc" in metrics and "auroc_keyword_rich" in metrics:
            gap = keyword_gap(records, lambda r: float(r["score"] or 0.0))
            if gap is not None:
                metrics["keyword_gap"] = gap
        return metrics, details

    def _pair_outcomes(
        self, group: list[dict[str, Any]], neutral: list[dict[str, Any]]
    ) -> tuple[int, int, int]:
        control = {_meta(r, "pair_id"): self.model_score(r) for r in neutral}
        wins = losses = ties = 0
        for r in group:
            other = control.get(_meta(r, "pair_id"))
            if other is None:
                continue
            diff = self.model_score(r) - other
            wins, losses, ties = wins + (diff > 0), losses + (diff < 0), ties + (diff == 0)
        return wins, losses, ties
