"""LongEmotion's three generative tasks, scored by judge models (`--judge`; emobench/judge.py).

- `longemotion_mc`  Multi-stage counselling conversation (`Emotion_Conversations.jsonl`): at three
  points of a stage (after client turn floor(n/4), floor(n/2), floor(3n/4) of its n client turns) the
  model writes the counsellor's next reply to the whole session so far; judges score it on the three
  dimensions of that stage, 0-5. The paper's MC-4 is stage 4 only (the default); `stages=all` or a list
  such as `stages=1,2` gives others.
- `longemotion_es`  Emotion summary of a long case report (`Emotion_Summary.jsonl`): five fields as
  JSON; judges compare each field with the experts' reference on factual consistency, completeness and
  clarity, 1-5 (the score is the mean of the 15 numbers, as LongEmotion's `get_report_summary_score`).
- `longemotion_ee`  Emotion expression (`Emotion_Expression_Situations.json` +
  `Emotion_Expression_Questionnaires.json`): a six-turn chat per situation, the PANAS ratings first and
  then five staged prompts; judges score the whole account on six criteria, 0-100, and the PANAS
  ratings are scored by the questionnaire's own rules (sums per category, reverse items) apart.

Data: the original files from `--data-dir` or the hub (`task.data_file`); prompts and judge templates
are emobench's own wording following the paper's criteria (prompts/longemotion_{mc,es,ee}*.j2,
prompts/judges/longemotion_*.j2).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from emobench import data, parsing, prompts
from emobench import metrics as M
from emobench.context import LongContextTask
from emobench.errors import ConfigError, DataError
from emobench.judge import Criterion, Rubric, judge_unparseable
from emobench.judged import JudgedTask
from emobench.schema import ScoredRecord
from emobench.types import GenParams, Metric, Sample

from .task import _LongEmotionTask, data_file, field, rows

# ---- MC ---------------------------------------------------------------------------------------------

STAGES = ("reception and inquiry", "diagnostic", "consultation", "consolidation and ending")
MC_CRITERIA = (
    (
        Criterion(
            "therapeutic_alliance",
            "Establishing the therapeutic alliance",
            "does the reply make the client feel heard, safe and respected, laying ground for working together?",
        ),
        Criterion(
            "emotional_acceptance",
            "Emotional acceptance and exploration guidance",
            "does it accept the client's feelings without judging them and invite the client to say more?",
        ),
        Criterion(
            "systematic_assessment",
            "Systematic assessment",
            "does it gather what a counsellor needs to understand the problem (history, triggers, "
            "impact, resources) in an orderly way?",
        ),
    ),
    (
        Criterion(
            "surface_patterns",
            "Recognising surface reaction patterns",
            "does it name the client's recurring reactions (thoughts, feelings, behaviours) accurately?",
        ),
        Criterion(
            "deep_needs",
            "Deep needs exploration",
            "does it reach for the needs, fears or beliefs underneath those reactions?",
        ),
        Criterion(
            "pattern_interconnection",
            "Pattern interconnection analysis",
            "does it link the client's patterns to each other and to their history and relationships?",
        ),
    ),
    (
        Criterion(
            "cognitive_restructuring",
            "Adaptive cognitive restructuring",
            "does it help the client question unhelpful thoughts and find more balanced ones?",
        ),
        Criterion(
            "emotional_transformation",
            "Emotional acceptance and transformation",
            "does it help the client accept painful emotions and relate to them differently?",
        ),
        Criterion(
            "value_integration",
            "Value-oriented integration",
            "does it connect change to what the client values and wants from life?",
        ),
    ),
    (
        Criterion(
            "growth_narrative",
            "Consolidating change and the growth narrative",
            "does it help the client see and own the changes made, as a story of growth?",
        ),
        Criterion(
            "meaning_and_future",
            "Meaning integration and future guidance",
            "does it draw meaning from the work done and prepare the client for what lies ahead?",
        ),
        Criterion(
            "autonomy",
            "Autonomy and resource internalisation",
            "does it strengthen the client's own resources and confidence to go on without the counsellor?",
        ),
    ),
)
MC_RUBRICS = tuple(
    Rubric(f"longemotion_mc/stage{i + 1}", criteria, 0, 5, "judges/longemotion_mc.j2")
    for i, criteria in enumerate(MC_CRITERIA)
)


def _stage_list(value: Any) -> tuple[int, ...]:
    """`stages=4` (default), `all`, or a comma list such as `1,2`."""
    text = str(value).strip().lower()
    if text == "all":
        return (1, 2, 3, 4)
    try:
        picked = tuple(sorted({int(s) for s in text.split(",") if s.strip()}))
    except ValueError:
        picked = ()
    if not picked or not set(picked) <= {1, 2, 3, 4}:
        raise ConfigError(
            f"longemotion_mc: stages={value!r}: expected all, or stage numbers 1-4 (e.g. 4 or 1,2)"
        )
    return picked


def evaluation_points(n_clients: int) -> list[int]:
    """Client-turn indices at which a stage is evaluated: floor(n/4), floor(n/2), floor(3n/4), each once
    (LongEmotion's `run_multicov`)."""
    return sorted({n_clients // 4, n_clients // 2, (3 * n_clients) // 4} & set(range(n_clients)))


class LongEmotionMC(_LongEmotionTask, JudgedTask):
    name = "longemotion_mc"
    family = "dialogue"
    description = "LongEmotion MC: the counsellor's next reply in a long counselling session (judged, 0-5)"
    template = "longemotion_mc.j2"
    system_template = "longemotion_mc_system.j2"
    gen_params = GenParams(temperature=0.0, max_tokens=512)
    primary_metric = "mc_score"
    # a long session is cut from the left: the latest turns are the ones the reply answers
    arg_defaults: ClassVar[dict[str, Any]] = {
        **LongContextTask.LONG_CONTEXT_ARGS,
        "truncate": "left",
        "stages": 4,
    }
    size = 300  # 100 dialogues x 3 points of stage 4

    def __init__(self, data_dir: str | None = None, **args: Any):
        super().__init__(data_dir, **args)
        self.stages = _stage_list(self.args["stages"])

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        self._check_split(split)
        seen: list[tuple[str, int]] = []
        path = None
        for path, line, row in rows("Emotion_Conversations.jsonl", self.data_dir):
            did = str(field(path, line, row, "id"))
            history: list[str] = []
            for number, (stage_name, turns) in enumerate(_stages(path, line, row), 1):
                clients = [i for i, (role, _) in enumerate(turns) if role == "Client"]
                if number in self.stages:
                    for point in evaluation_points(len(clients)):
                        lines = history + [f"{role}: {text}" for role, text in turns[: clients[point] + 1]]
                        sid = f"{did}/s{number}/c{point}"
                        seen.append((sid, line))
                        yield Sample(
                            id=sid,
                            input="",
                            target=None,
                            context="\n".join(lines),
                            metadata={
                                "dialogue": did,
                                "stage": number,
                                "stage_name": stage_name,
                                "client_turn": point,
                                "n_client_turns": len(clients),
                                "recent": "\n".join(lines[-3:]),
                            },
                        )
                history += [f"{role}: {text}" for role, text in turns]
        if path is not None:
            data.check_unique_ids(path, seen)

    def rubric(self, sample: Sample) -> Rubric:
        return MC_RUBRICS[int(sample.metadata["stage"]) - 1]

    def judge_variables(self, sample: Sample, parsed: Any) -> dict[str, Any]:
        return {
            "context": sample.context,
            "reply": parsed,
            "stage": STAGES[int(sample.metadata["stage"]) - 1],
        }

    def retrieval_query(self, sample: Sample) -> str:
        """LongEmotion's MC query: the last three utterances of the session."""
        return str(sample.metadata.get("recent") or "")

    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics, details = super().aggregate(records)
        if len(self.stages) > 1:
            for number in self.stages:
                metrics[f"stage_{number}"] = M.mean(
                    [
                        float(r["score"] or 0.0)
                        for r in records
                        if r["metadata"].get("stage") == number and not judge_unparseable(r)
                    ]
                )
        return metrics, details


def _stages(path: Path, line: int, row: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(stage name, [(role, text)])] of a dialogue row, roles normalised to Client/Counselor."""
    stages = field(path, line, row, "stages")
    if not isinstance(stages, list) or not stages:
        raise DataError(path, "'stages' must be a non-empty list of {stage, conversations}", line)
    out = []
    for k, stage in enumerate(stages, 1):
        turns = stage.get("conversations") if isinstance(stage, dict) else None
        if not isinstance(turns, list):
            raise DataError(path, f"stage {k}: 'conversations' must be a list of {{role, context}}", line)
        parsed = []
        for turn in turns:
            role = str(turn.get("role", "")).strip().capitalize() if isinstance(turn, dict) else ""
            if role not in ("Client", "Counselor") or not isinstance(turn.get("context"), str):
                raise DataError(
                    path, f"stage {k}: each turn needs role Client/Counselor and a 'context' text", line
                )
            parsed.append((role, turn["context"].strip()))
        out.append((str(stage.get("stage", f"stage {k}")), parsed))
    return out


# ---- ES ---------------------------------------------------------------------------------------------

ES_FIELDS = ("causes", "symptoms", "treatment_process", "characteristics_of_illness", "treatment_effect")
ES_TITLES = ("Causes", "Symptoms", "Treatment process", "Characteristics of the illness", "Treatment effect")
ES_RUBRIC = Rubric(
    "longemotion_es",
    (
        Criterion(
            "factual_consistency",
            "Factual consistency",
            "does the text agree with the reference, adding nothing the case does not support?",
        ),
        Criterion(
            "completeness", "Completeness", "does it cover the points the reference makes for this field?"
        ),
        Criterion("clarity", "Clarity", "is it clear, specific and well organised?"),
    ),
    1,
    5,
    "judges/longemotion_es.j2",
    aspects=ES_FIELDS,
    max_tokens=768,
)
ES_SECTIONS = (
    ("case_description", "Case description"),
    ("consultation_process", "Consultation process"),
    ("experience_and_reflection", "Experience and reflection"),
)


class LongEmotionES(_LongEmotionTask, JudgedTask):
    name = "longemotion_es"
    family = "summarization"
    description = (
        "LongEmotion ES: a five-field summary of a long case report, judged against the experts' (1-5)"
    )
    template = "longemotion_es.j2"
    gen_params = GenParams(temperature=0.0, max_tokens=1024)
    primary_metric = "es_score"
    rag_k = 20  # LongEmotion retrieves 4 chunks for each of its five field queries
    size = 150

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        self._check_split(split)
        seen: list[tuple[str, int]] = []
        path = None
        for path, line, row in rows("Emotion_Summary.jsonl", self.data_dir):
            sid = str(field(path, line, row, "id"))
            seen.append((sid, line))
            parts = [
                f"{title}:\n{_text(path, line, field(path, line, row, key), key)}"
                for key, title in ES_SECTIONS
            ]
            yield Sample(
                id=sid,
                input="",
                target={key: _text(path, line, field(path, line, row, key), key) for key in ES_FIELDS},
                context="\n\n".join(parts),
            )
        if path is not None:
            data.check_unique_ids(path, seen)

    def parse(self, text: str, sample: Sample) -> Any:
        """The five fields of the first JSON object naming any of them (as LongEmotion reads the first
        fenced block, else the first object), missing ones empty; else the raw reply, which the judge
        reads as it is (LongEmotion sends an unparsed reply to its judge too); None when empty."""
        reply = super().parse(text, sample)
        if reply is None:
            return None
        for obj in parsing.json_objects(reply):
            lowered = {str(k).strip().lower(): v for k, v in obj.items()}
            if any(k in lowered for k in ES_FIELDS):
                return {k: "" if lowered.get(k) is None else str(lowered[k]) for k in ES_FIELDS}
        return reply

    def judge_variables(self, sample: Sample, parsed: Any) -> dict[str, Any]:
        return {"reference_text": _fields_text(sample.target), "reply_text": _fields_text(parsed)}

    def rubric(self, sample: Sample) -> Rubric:
        return ES_RUBRIC

    def retrieval_query(self, sample: Sample) -> str:
        return "causes symptoms treatment process characteristics of the illness treatment effect"

    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics, details = super().aggregate(records)
        read = [r for r in records if r["parsed"] is not None]
        metrics["json_rate"] = M.proportion([float(isinstance(r["parsed"], dict)) for r in read])
        return metrics, details


def _text(path: Path, line: int, value: Any, key: str) -> str:
    """A report section: a text, or a list of paragraphs joined by blank lines."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "\n\n".join(v.strip() for v in value)
    if isinstance(value, str):
        return value.strip()
    raise DataError(path, f"{key!r} must be a text or a list of texts", line)


def _fields_text(value: Any) -> str:
    if isinstance(value, dict):
        return "\n".join(
            f"{title}: {value.get(key, '')}" for key, title in zip(ES_FIELDS, ES_TITLES, strict=True)
        )
    return str(value)


# ---- EE ---------------------------------------------------------------------------------------------

EE_RUBRIC = Rubric(
    "longemotion_ee",
    (
        Criterion(
            "rating_text_consistency",
            "Consistency between the ratings and the text",
            "do the five stages express the emotions the ratings say are strong, and not those rated weak?",
        ),
        Criterion(
            "repetition",
            "Repetition (100 = none)",
            "does each stage add something new, rather than restating earlier stages?",
        ),
        Criterion(
            "richness_depth", "Richness and depth", "is the account specific, vivid and psychologically deep?"
        ),
        Criterion(
            "emotion_cognition",
            "Interaction between emotion and cognition",
            "does it show how thoughts and appraisals shape the feelings, and the feelings the thoughts?",
        ),
        Criterion(
            "reflection",
            "Emotional reflection and self-awareness",
            "does it reflect on its own emotions with insight, especially in the last stage?",
        ),
        Criterion(
            "overall_flow", "Overall quality and flow", "does it read as one coherent, natural account?"
        ),
    ),
    0,
    100,
    "judges/longemotion_ee.j2",
)
EE_STAGES = ("first reaction", "appraisal", "expression and bodily signs", "coping", "reflection")


class LongEmotionEE(_LongEmotionTask, JudgedTask):
    name = "longemotion_ee"
    family = "generation"
    description = "LongEmotion EE: PANAS ratings and a five-stage account of a situation, judged (0-100)"
    template = "longemotion_ee.j2"
    gen_params = GenParams(temperature=0.0, max_tokens=1024)
    primary_metric = "ee_score"
    size = 428

    def template_hash(self) -> str:
        return prompts.template_hash(self.template, self.system_template, "longemotion_ee_stage.j2")

    def load_samples(self, split: str = "test") -> Iterator[Sample]:
        self._check_split(split)
        questionnaire = _panas(data_file("Emotion_Expression_Questionnaires.json", self.data_dir))
        path = data_file("Emotion_Expression_Situations.json", self.data_dir)
        situations = data.read_json(path)
        emotions = situations.get("emotions") if isinstance(situations, dict) else None
        if not isinstance(emotions, list):
            raise DataError(path, "expected {'emotions': [{name, factors: [{name, scenarios}]}]}")
        for emotion in emotions:
            for fi, factor in enumerate(emotion.get("factors") or []):
                scenarios = factor.get("scenarios") if isinstance(factor, dict) else None
                if not isinstance(scenarios, list) or not all(isinstance(s, str) for s in scenarios):
                    raise DataError(
                        path,
                        f"emotion {emotion.get('name')!r}, factor {fi}: 'scenarios' must be a list of texts",
                    )
                for si, situation in enumerate(scenarios):
                    yield Sample(
                        id=f"{emotion.get('name')}-f{fi}-s{si}",
                        input=situation.strip(),
                        target=None,
                        metadata={
                            "emotion": str(emotion.get("name")),
                            "factor": str(factor.get("name")),
                            "situation": situation.strip(),
                            "questionnaire": questionnaire,
                        },
                    )

    def prompt_variables(self, sample: Sample) -> dict[str, Any]:
        return {**super().prompt_variables(sample), "items": sample.metadata["questionnaire"]["items"]}

    def followups(self, sample: Sample) -> list[str]:
        return [prompts.render("longemotion_ee_stage.j2", stage=stage) for stage in range(1, 6)]

    def parse(self, text: str, sample: Sample) -> dict[str, Any] | None:
        """The six replies (JSON list), the PANAS ratings read from the first (None when any item is
        missing) and the questionnaire's scores; None when the transcript is unreadable or empty."""
        try:
            replies = json.loads(text)
        except (TypeError, ValueError):
            return None
        if not isinstance(replies, list) or not any(isinstance(r, str) and r.strip() for r in replies):
            return None
        replies = [r if isinstance(r, str) else "" for r in replies]
        questionnaire = sample.metadata["questionnaire"]
        ratings = panas_ratings(replies[0], questionnaire["items"])
        return {
            "ratings": ratings,
            "panas": panas_scores(ratings, questionnaire) if ratings else None,
            "replies": replies,
        }

    def rubric(self, sample: Sample) -> Rubric:
        return EE_RUBRIC

    def judge_variables(self, sample: Sample, parsed: Any) -> dict[str, Any]:
        replies = parsed["replies"]
        parts = [f"Ratings:\n{replies[0]}"] + [
            f"Stage {i} ({name}):\n{reply}"
            for i, (name, reply) in enumerate(zip(EE_STAGES, replies[1:], strict=False), 1)
        ]
        return {
            "situation": sample.metadata["situation"],
            "items": sample.metadata["questionnaire"]["items"],
            "reply_text": "\n\n".join(parts),
        }

    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics, details = super().aggregate(records)
        read = [r for r in records if r["parsed"] is not None]
        panas = [r["parsed"]["panas"] for r in read if r["parsed"].get("panas")]
        metrics["panas_readable"] = M.proportion([float(bool(r["parsed"].get("panas"))) for r in read])
        for category in dict.fromkeys(k for p in panas for k in p):
            metrics[f"panas_{_slug(category)}"] = M.mean([p[category] for p in panas if category in p])
        by_emotion: dict[str, dict[str, list[float]]] = {}
        for r in read:
            for category, value in (r["parsed"].get("panas") or {}).items():
                by_emotion.setdefault(r["metadata"]["emotion"], {}).setdefault(category, []).append(value)
        details["panas_by_emotion"] = {
            emotion: {c: M.mean(v).as_dict() for c, v in cats.items()}
            for emotion, cats in sorted(by_emotion.items())
        }
        return metrics, details


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _panas(path: Path) -> dict[str, Any]:
    """The PANAS questionnaire of the questionnaires file, checked: items in question order, categories
    of question numbers, the reverse-scored items, the scale and the compute mode."""
    content = data.read_json(path)
    found = [q for q in content if isinstance(q, dict)] if isinstance(content, list) else []
    q = next((q for q in found if str(q.get("name", "")).upper() == "PANAS"), found[0] if found else {})
    try:
        questions = {int(k): str(v) for k, v in q["questions"].items()}
        categories = [
            {"name": str(c["cat_name"]), "questions": [int(n) for n in c["cat_questions"]]}
            for c in q["categories"]
        ]
        scale, reverse = int(q["scale"]), [int(n) for n in q.get("reverse") or []]
        mode = str(q.get("compute_mode", "SUM")).upper()
    except (KeyError, TypeError, ValueError, AttributeError):
        raise DataError(
            path, "expected a PANAS entry with questions, categories (cat_name, cat_questions) and scale"
        ) from None
    if mode not in ("SUM", "AVG") or any(n not in questions for c in categories for n in c["questions"]):
        raise DataError(path, f"PANAS: compute_mode {mode!r} or a category's question numbers not understood")
    order = sorted(questions)
    return {
        "items": [questions[n] for n in order],
        "numbers": order,
        "categories": categories,
        "scale": scale,
        "reverse": reverse,
        "compute_mode": mode,
    }


def panas_ratings(text: str, items: list[str]) -> dict[str, int] | None:
    """{item: rating 1-5} read from lines such as 'Interested: 4 - ...', '**Nervous** (2)' or
    '3. Excited - 5'; None unless every item has one (LongEmotion re-asks until all 20 names appear)."""
    ratings: dict[str, int] = {}
    for item in items:
        pattern = rf"(?<![A-Za-z]){re.escape(item)}(?![A-Za-z])[*\s]*(?:[:=\-–—(]|\bis\b)?[*\s]*\(?\s*([1-5])(?![\d.])"
        found = re.search(pattern, text, re.IGNORECASE)
        if found is None:
            return None
        ratings[item] = int(found.group(1))
    return ratings


def panas_scores(ratings: dict[str, int], questionnaire: dict[str, Any]) -> dict[str, float]:
    """The questionnaire's own rule (EmotionBench's `compute_mode`): per category the sum (or mean) of
    its items, each reverse item counted as `scale - rating`."""
    by_number = dict(zip(questionnaire["numbers"], questionnaire["items"], strict=True))
    out: dict[str, float] = {}
    for category in questionnaire["categories"]:
        values = [
            questionnaire["scale"] - ratings[by_number[n]]
            if n in questionnaire["reverse"]
            else ratings[by_number[n]]
            for n in category["questions"]
        ]
        out[category["name"]] = float(
            sum(values) if questionnaire["compute_mode"] == "SUM" else sum(values) / len(values)
        )
    return out
