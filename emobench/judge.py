"""LLM judges: rubrics, judge prompts, reading a judge's verdict, and a panel of judges.

Generative tasks (LongEmotion MC, ES and EE; a task file with a `judge:` rubric) have no gold label: a
judge model scores each reply on the task's rubric. Why it is built this way:

- A judge is any model spec (`--judge openai/gpt-4o,litellm/...`), called through the same
  `ModelClient` as the model under test (`client.client_for`): cached, retried and metered, each judge
  under its own name, so a killed run resumes without asking a judge twice for a finished sample and
  the judge's cost is reported apart from the model's.
- Judge prompts are jinja2 templates (`prompts/judges/`). The rubric renders the reply format itself,
  a JSON skeleton with one `<score LOW-HIGH>` slot per criterion, so every template asks for the same
  machine-readable answer. The templates' hash and the judges' identities go into the run manifest:
  scores are comparable only between runs judged the same way.
- A reply whose verdict cannot be read (no JSON object with every criterion in range) is recorded as
  such, never scored 0: the sample is `unparseable` with the judge named in its error and counted as
  `n_judge_unparseable` apart from the model's own parse failures.
- The whole exchange (prompt, reply, scores, usage) goes into the sample's trace, so `emobench rescore`
  reuses the recorded verdicts and never calls a judge.
- With several judges each one's score, the panel mean and their agreement (emobench/agreement.py) are
  reported; a judge that is the model under test is flagged (self-preference).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import metrics as M
from . import parsing, prompts
from .agreement import agreement
from .client import ModelClient, client_for
from .errors import ConfigError, ModelCallError
from .scoring import judged_score, prompt_text, read_answer
from .types import GenParams, Message, Sample, Usage, stable_hash

if TYPE_CHECKING:
    from .schema import JudgeSummary, ScoredRecord
    from .task import Task

SYSTEM_TEMPLATE = "judges/system.j2"
_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(?:/\s*\d+(?:\.\d+)?)?\s*$")  # "4", "4.5", "4/5"


@dataclass(frozen=True)
class Criterion:
    key: str  # the JSON key the judge answers under
    title: str
    description: str = ""


@dataclass(frozen=True)
class Rubric:
    """How a judge scores one reply: criteria on a numeric scale, asked through a jinja2 template.

    With `aspects` every criterion is scored once per aspect (LongEmotion ES: factual consistency,
    completeness and clarity of each of the five summary fields), the verdict a JSON object of objects.
    The sample's judged score is the mean of all the numbers, averaged over the panel's judges."""

    name: str
    criteria: tuple[Criterion, ...]
    low: float
    high: float
    template: str  # a file in prompts/ (judges/...) or inline jinja2
    system: str | None = SYSTEM_TEMPLATE
    aspects: tuple[str, ...] = ()
    max_tokens: int = 512

    def __post_init__(self) -> None:
        if not self.criteria or self.high <= self.low:
            raise ConfigError(f"judge rubric {self.name}: needs criteria and a scale with high > low")

    def keys(self) -> list[str]:
        """The scored slots: `criterion`, or `aspect.criterion` with aspects."""
        if self.aspects:
            return [f"{a}.{c.key}" for a in self.aspects for c in self.criteria]
        return [c.key for c in self.criteria]

    def passes(self, score: float) -> bool:
        """A judged sample's outcome is `correct` at or above the middle of the scale."""
        return score >= (self.low + self.high) / 2

    def reply_format(self) -> str:
        """The JSON skeleton the judge fills in, one `<score LOW-HIGH>` slot per criterion."""
        slot = f"<score {self.low:g}-{self.high:g}>"
        if not self.aspects:
            inner = ",\n".join(f'  "{c.key}": {slot}' for c in self.criteria)
        else:
            row = ", ".join(f'"{c.key}": {slot}' for c in self.criteria)
            inner = ",\n".join(f'  "{a}": {{{row}}}' for a in self.aspects)
        return "```json\n{\n" + inner + "\n}\n```"

    def messages(self, variables: dict[str, Any]) -> list[Message]:
        values = {
            **variables,
            "criteria": [vars(c) for c in self.criteria],
            "aspects": list(self.aspects),
            "scale_low": f"{self.low:g}",
            "scale_high": f"{self.high:g}",
            "reply_format": self.reply_format(),
        }
        out: list[Message] = []
        if self.system:
            out.append({"role": "system", "content": prompts.render(self.system, **values)})
        out.append({"role": "user", "content": prompts.render(self.template, **values)})
        return out

    def template_hash(self) -> str:
        """The templates' sources and the rubric itself: another wording or scale is another judge."""
        rubric = [self.name, [vars(c) for c in self.criteria], self.low, self.high, self.aspects]
        return stable_hash([prompts.template_hash(self.template, self.system), rubric])[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "criteria": [c.key for c in self.criteria],
            "aspects": list(self.aspects),
            "scale": [self.low, self.high],
            "template_hash": self.template_hash(),
        }


# ---- reading a verdict ---------------------------------------------------------------------------


def parse_verdict(text: Any, rubric: Rubric) -> dict[str, float] | None:
    """{slot: score} from a judge's reply: the last JSON object holding every criterion (keys matched
    case- and punctuation-insensitively, values numbers or numeric strings such as "4" or "4/5") within
    the scale. None when no object has them all: a partial verdict would silently average fewer
    criteria. Never raises."""
    if not isinstance(text, str):
        return None
    for obj in reversed(parsing.json_objects(parsing.strip_reasoning(text))):
        scores = _read_object(obj, rubric)
        if scores is not None:
            return scores
    return None


def _read_object(obj: dict[str, Any], rubric: Rubric) -> dict[str, float] | None:
    out: dict[str, float] = {}
    for aspect in rubric.aspects or (None,):
        inner = _lookup(obj, aspect) if aspect is not None else obj
        if not isinstance(inner, dict):
            return None
        for c in rubric.criteria:
            value = _number(_lookup(inner, c.key, c.title))
            if value is None or not rubric.low <= value <= rubric.high:
                return None
            out[f"{aspect}.{c.key}" if aspect else c.key] = value
    return out


def _norm(key: Any) -> str:
    return re.sub(r"[^a-z0-9]+", "", str(key).lower())


def _lookup(obj: dict[str, Any], *names: str) -> Any:
    wanted = {_norm(n) for n in names}
    return next((v for k, v in obj.items() if _norm(k) in wanted), None)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, str) and (m := _NUMBER.match(value)):
        return float(m.group(1))
    return None


# ---- the panel ---------------------------------------------------------------------------------


@dataclass
class Judge:
    spec: str  # as given to --judge: the judge's name in results
    client: ModelClient
    self_preference: bool = False  # the judge is the model under test


@dataclass
class JudgePanel:
    judges: list[Judge] = field(default_factory=list)

    @classmethod
    def from_specs(cls, specs: Sequence[str], client: ModelClient) -> JudgePanel:
        """Judges for `specs`, sharing the run's cache, retry settings and (openai/ specs) server."""
        names = [s.strip() for s in specs if s and s.strip()]
        if len(set(names)) != len(names):
            raise ConfigError(f"--judge names a judge twice: {', '.join(names)}")
        model = _who(client.identity)
        judges = []
        for spec in names:
            judge = client_for(spec, client) if spec != "same" else client
            judges.append(Judge(spec, judge, _who(judge.identity) == model))
        return cls(judges)

    async def judge(self, task: Task, sample: Sample, replies: list[str]) -> dict[str, Any] | None:
        """Every judge's verdict on the sample's replies (the trace entry `judge`), or None when the task
        does not judge this sample or the model's reply cannot be read (nothing to judge: the sample is
        the model's parse failure). A judge call that fails after every retry raises ModelCallError,
        naming the judge: the sample is an `error`, retried by the next run."""
        rubric = task.rubric(sample)
        if rubric is None:
            return None
        parsed = read_answer(task, sample, replies)
        if parsed is None:
            return None
        messages = rubric.messages(task.judge_variables(sample, parsed))
        verdicts = await asyncio.gather(*(self._ask(j, task, sample, rubric, messages) for j in self.judges))
        entry: dict[str, Any] = {"rubric": rubric.name, "judges": list(verdicts)}
        entry["score"] = judged_score(entry)
        return entry

    async def _ask(
        self, judge: Judge, task: Task, sample: Sample, rubric: Rubric, messages: list[Message]
    ) -> dict[str, Any]:
        usage = Usage()
        fitted, info = task.fit_context(sample, messages, judge.client)  # a long context, cut to its window
        params = GenParams(temperature=0.0, max_tokens=rubric.max_tokens)
        try:
            reply = await judge.client.chat(fitted, params, usage)
        except ModelCallError as exc:
            raise ModelCallError(f"judge {judge.spec}: {exc}") from None
        scores = parse_verdict(reply.text, rubric)
        record: dict[str, Any] = {
            "judge": judge.spec,
            "scores": scores,
            "score": float(np.mean(list(scores.values()))) if scores else None,
            "prompt": prompt_text(fitted),
            "prompt_hash": stable_hash(fitted)[:16],
            "reply": reply.text,
            "usage": vars(usage),
        }
        if info is not None and info.get("truncated"):
            record["context"] = info
        return record

    def manifest(self, rubrics: Sequence[Rubric]) -> dict[str, Any]:
        """The judging part of a task's manifest: who judges, by which rubrics and templates."""
        described = {r.name: r.describe() for r in rubrics}
        return {
            "judges": [{"spec": j.spec, **j.client.identity} for j in self.judges],
            "rubrics": described,
            "template_hash": stable_hash(described)[:16],
            "self_preference": [j.spec for j in self.judges if j.self_preference],
        }


def judge_signature(entry: dict[str, Any] | None) -> dict[str, Any] | None:
    """What must be equal for two runs' judged scores to be compared: the judges (backend, model and
    args; not their server's address) and the rubrics with their templates. None: no judge."""
    if not entry:
        return None
    judges = [[j.get("backend"), j.get("model"), j.get("args")] for j in entry.get("judges", [])]
    return {"judges": judges, "template_hash": entry.get("template_hash")}


def _who(identity: dict[str, Any]) -> tuple[Any, Any]:
    """What makes two clients the same model (its server aside): backend and model name."""
    return identity.get("backend"), identity.get("model")


def rubrics_of(task: Task, samples: Sequence[Sample]) -> list[Rubric]:
    """The distinct rubrics a task judges these samples by (MC has one per counselling stage)."""
    found: dict[str, Rubric] = {}
    for sample in samples:
        rubric = task.rubric(sample)
        if rubric is not None:
            found.setdefault(rubric.name, rubric)
    return list(found.values())


# ---- results -------------------------------------------------------------------------------------


def judge_unparseable(record: ScoredRecord) -> bool:
    """The sample's judges were asked and none gave a readable verdict (not the model's parse failure)."""
    return record["outcome"] == "unparseable" and bool(record["trace"].get("judge"))


def summary(records: Sequence[ScoredRecord], self_preference: Sequence[str] = ()) -> JudgeSummary | None:
    """results.json's `judge` block of a judged (task, variant), or None when nothing was judged: each
    judge's mean score with its CI, readable verdicts and usage (and whether it is the model under
    test, `self_preference`); the panel mean; and, with two judges or more, their agreement on the
    samples they scored."""
    judged = [r["trace"]["judge"] for r in records if r["trace"].get("judge")]
    if not judged:
        return None
    names = list(dict.fromkeys(v["judge"] for entry in judged for v in entry["judges"]))
    matrix = np.full((len(judged), len(names)), np.nan)
    usage: dict[str, Usage] = {n: Usage() for n in names}
    for row, entry in enumerate(judged):
        for v in entry["judges"]:
            col = names.index(v["judge"])
            if v.get("score") is not None:
                matrix[row, col] = v["score"]
            usage[v["judge"]].add(Usage(**v.get("usage", {})))
    panel = [s for s in (e.get("score") for e in judged) if s is not None]
    block = {
        "judges": [
            {
                "judge": name,
                "score": M.mean(matrix[~np.isnan(matrix[:, i]), i]).as_dict(),
                "n_judged": len(judged),
                "n_unparseable": int(np.isnan(matrix[:, i]).sum()),
                "self_preference": name in self_preference,
                "usage": _usage_summary(usage[name]),
            }
            for i, name in enumerate(names)
        ],
        "panel_score": M.mean(panel).as_dict(),
        "agreement": agreement(matrix) if len(names) > 1 else None,
        "n_judge_unparseable": sum(judge_unparseable(r) for r in records),
    }
    return cast("JudgeSummary", block)


def _usage_summary(u: Usage) -> dict[str, Any]:
    return {
        "calls": u.calls,
        "cached_calls": u.cached_calls,
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "cost_usd": round(u.cost_usd, 6) if u.cost_usd is not None else None,
    }
