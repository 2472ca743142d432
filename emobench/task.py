"""The Task contract: a named dataset of Samples, a prompt template, a parser and metrics.

A task plugin is one small class. Subclass `ChoiceTask` for multiple-choice items (most tasks are);
subclass `Task` directly when the answer is free text or a number. See `tasks/vignettes.py` for a
complete example and the README section "Adding a task".
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from . import metrics as M
from . import parsing, prompts
from .errors import ConfigError
from .schema import ScoredRecord
from .types import GenParams, Message, Metric, Sample, stable_hash

if TYPE_CHECKING:
    from .client import ModelClient
    from .judge import Rubric

COMMON_ARGS: dict[str, Any] = {"dev_size": 0}  # --task-arg keys every task accepts
STRICT_KEY = "strict_parse"  # record metadata: was the answer stated (True) or guessed from free text?


class Task:
    """Base class. Class attributes describe the task; `__init__` receives `--task-arg` values."""

    name: ClassVar[str] = ""
    family: ClassVar[str] = "custom"
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""
    license: ClassVar[str] = ""
    output_mode: ClassVar[str] = "generate"  # or "multiple_choice" (rank options by log-likelihood)
    template: ClassVar[str] = ""  # a file in prompts/ or inline jinja2 for the user message
    system_template: ClassVar[str | None] = None
    instruction: ClassVar[str] = ""  # exposed to templates as {{ instruction }}; `refine` rewrites it
    # rewordings for the `paraphrase` variant: a YAML file (a path, or a name in prompts/paraphrases/);
    # empty: prompts/paraphrases/<the template's file name>.yaml, shared by the tasks of one template
    paraphrase_file: ClassVar[str] = ""
    gen_params: ClassVar[GenParams] = GenParams()
    primary_metric: ClassVar[str] = "accuracy"
    arg_defaults: ClassVar[dict[str, Any]] = {}
    splits: ClassVar[tuple[str, ...]] = ("test",)
    size: ClassVar[int | None] = None  # items in the default split, for `emobench list tasks`
    draws: int = 1  # replies asked per prompt, combined by `combine` (the EmoBench paper protocol: 5)
    reask_unparseable: int = 0  # re-ask an unparseable reply up to N times (EQ-Bench's `reask=N`)
    reask_temperature_step: float = 0.15  # ...each time this much hotter, as EQ-Bench's own runner does
    rag_chunk_size: ClassVar[int | None] = None  # word tokens per chunk for `rag`/`coem` (None: by family)
    rag_k: ClassVar[int | None] = None  # chunks `rag` keeps (None: by family and query)

    def __init__(self, data_dir: str | None = None, **args: Any):
        known = {**COMMON_ARGS, **self.arg_defaults}
        unknown = set(args) - set(known)
        if unknown:
            raise ConfigError(
                f"task {self.name}: unknown --task-arg {', '.join(sorted(unknown))} "
                f"(known: {', '.join(sorted(known))})"
            )
        self.args: dict[str, Any] = {**self.arg_defaults, **args}
        self.data_dir = data_dir

    # ---- data -------------------------------------------------------------------------------
    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        raise NotImplementedError

    def has_split(self, split: str) -> bool:
        return split in self.splits or (split in ("dev", "train") and self._dev_size() > 0)

    def split_samples(self, split: str = "test") -> Iterable[Sample]:
        """The samples of `split`. A task without its own dev split can hold one out of its test items
        with `--task-arg dev_size=N`: N items (whole matched pairs / choice orders kept together, picked
        by a hash of their ids, so the same on every machine) become the `dev` and `train` split and are
        removed from `test`. The refine and fewshot variants need this on such tasks."""
        size = self._dev_size()
        if size <= 0 or split not in ("test", "dev", "train"):
            return self.load_samples(split)
        every = list(self.load_samples("test"))
        groups = sorted({group_of(s) for s in every}, key=lambda g: stable_hash(["dev_size", g]))
        held = set(groups[:size])
        wanted = split != "test"
        return [s for s in every if (group_of(s) in held) == wanted]

    def _dev_size(self) -> int:
        return 0 if "dev" in self.splits else int(self.args.get("dev_size") or 0)

    # ---- prompt -----------------------------------------------------------------------------
    def prompt_variables(self, sample: Sample) -> dict[str, Any]:
        return {
            **sample.metadata,
            "input": sample.input,
            "choices": sample.choices or [],
            "context": sample.context,
            "instruction": self.instruction,
        }

    def render(self, sample: Sample, instruction: str | None = None) -> list[Message]:
        """Chat messages for `sample`. `instruction` replaces the task's default instruction."""
        if isinstance(sample.input, list) and not self.template:
            return list(sample.input)
        variables = self.prompt_variables(sample)
        if instruction is not None:
            variables["instruction"] = instruction
        messages: list[Message] = []
        if self.system_template:
            messages.append({"role": "system", "content": prompts.render(self.system_template, **variables)})
        messages.append({"role": "user", "content": prompts.render(self.template, **variables)})
        return messages

    def template_hash(self) -> str:
        return prompts.template_hash(self.template, self.system_template, self.instruction)

    def fit_context(
        self, sample: Sample, messages: list[Message], client: ModelClient
    ) -> tuple[list[Message], dict[str, Any] | None]:
        """`messages` fitted to the model's window just before every call (`LongContextTask` in
        emobench/context.py cuts a long `sample.context`), and what was done, for the trace. This
        default leaves them as they are and records nothing (None)."""
        return messages, None

    def followups(self, sample: Sample) -> list[str]:
        """User messages sent one by one after the model's first reply, in the same chat (LongEmotion EE:
        the five staged prompts). Empty (this default): one prompt, one reply. With follow-ups the
        recorded reply is the JSON list of the model's replies, first one first, which `parse` reads."""
        return []

    # ---- judging (generative tasks: emobench/judge.py) -----------------------------------------
    def rubric(self, sample: Sample) -> Rubric | None:
        """The rubric a judge model scores this sample's reply by; None (this default): the task scores
        replies itself with `score`. A task that returns one needs `--judge` to run."""
        return None

    def judge_variables(self, sample: Sample, parsed: Any) -> dict[str, Any]:
        """What the judge's template sees besides the rubric: the sample's prompt variables, the reply as
        parsed (`reply`) and the reference answer (`reference`, the sample's target)."""
        return {**self.prompt_variables(sample), "reply": parsed, "reference": sample.target}

    # ---- retrieval (the rag and coem variants) -------------------------------------------------
    def retrieval_query(self, sample: Sample) -> str | None:
        """What `rag`/`coem` rank the context's chunks for; None (this default) or empty: the subject,
        else the question (see `emobench.retrieval.retrieval_query`)."""
        return None

    def retrieval_units(self, sample: Sample) -> list[str] | None:
        """The segments of a pre-segmented item (LongEmotion ED), for query-free outlier selection;
        by default `metadata["segments"]`. None: the item is chunked and queried."""
        return sample.metadata.get("segments")

    def leak_texts(self, sample: Sample) -> list[str]:
        """Texts whose presence in a retrieved chunk would let the answer be copied (flagged in the
        `rag` trace): the gold option's text. Long-context QA answers are extracted from the article
        by design, so they are not checked."""
        if sample.choices and isinstance(sample.target, int) and 0 <= sample.target < len(sample.choices):
            return [sample.choices[sample.target]]
        if isinstance(sample.target, str) and self.family != "long_context_qa":
            return [sample.target]
        return []

    # ---- answers ----------------------------------------------------------------------------
    def parse(self, text: str, sample: Sample) -> Any:
        """The answer in `text`, or None when it cannot be read (scored as unparseable)."""
        raise NotImplementedError

    def parse_strict(self, text: str, sample: Sample) -> Any:
        """`parse` restricted to answers the reply states explicitly (None for one it would only guess
        from free text), so that results can show how much of a score rests on guessing. Optional: a
        task that does not define it (this default) records no strictness."""
        raise NotImplementedError

    def score(self, parsed: Any, sample: Sample) -> float:
        return float(parsed == sample.target)

    def is_correct(self, score: float) -> bool:
        """Whether a sample's score makes its outcome `correct` (graded tasks set their own bar)."""
        return score >= 0.5

    def combine(self, answers: Sequence[Any]) -> Any:
        """Majority vote over repeated draws; unparseable wins only when every draw is unparseable."""
        readable = [a for a in answers if a is not None]
        if len(readable) <= 1:  # one draw (most tasks): no vote to count
            return readable[0] if readable else None
        counts = Counter(_hashable(a) for a in readable)
        best = counts.most_common(1)[0][0]
        return next(a for a in readable if _hashable(a) == best)

    def answer_space(self, sample: Sample) -> list[Any]:
        """Every possible parsed answer (for `random`/`majority` baselines and log-likelihood)."""
        return list(range(len(sample.choices or [])))

    def format_answer(self, answer: Any, sample: Sample) -> str:
        """A model reply that `parse` reads back as `answer` (what the baselines reply)."""
        return str(answer)

    def answer_letters(self, sample: Sample) -> list[str] | None:
        """The letter that names each answer of `answer_space` in a reply, where an answer is one letter
        (A, B, ...): the first-token confidence reads those letters' log-probabilities from APIs that
        return them (emobench/confidence.py). None (this default): answers are not single letters."""
        return None

    def continuation(self, answer: Any, sample: Sample) -> str:
        """The text whose log-likelihood ranks `answer` in multiple_choice mode."""
        return " " + self.format_answer(answer, sample)

    # ---- option order (the `permute` variant) --------------------------------------------------
    def option_lists(self, sample: Sample) -> dict[str, int]:
        """The option lists `sample` shows, by name, with their lengths; empty when it shows none (the
        `permute` variant then refuses the task). This default: `choices`, if the sample has them."""
        return {"choices": len(sample.choices)} if sample.choices else {}

    def reorder_options(self, sample: Sample, shifts: dict[str, int]) -> Sample:
        """`sample` with each option list shifted cyclically: with shift s, position p shows the
        original option (p + s) mod n. An index target follows its option; a text target (the option
        itself, as in LongEmotion EC) stays as it is."""
        if not sample.choices:
            return sample
        n, s = len(sample.choices), shifts.get("choices", 0) % len(sample.choices)
        target = (sample.target - s) % n if _is_index(sample.target) else sample.target
        choices = [sample.choices[(p + s) % n] for p in range(n)]
        return dataclasses.replace(sample, choices=choices, target=target)

    def restore_answer(self, answer: Any, sample: Sample, shifts: dict[str, int]) -> Any:
        """An answer to `reorder_options(sample, shifts)` as an answer to `sample` itself."""
        if not sample.choices or not _is_index(answer):
            return answer
        return (answer + shifts.get("choices", 0)) % len(sample.choices)

    def option_positions(self, answer: Any, sample: Sample) -> dict[str, int | None]:
        """The position (0 = A) `answer` takes in each option list of `sample` as shown; None where it
        takes none (unparseable, or not one of the options)."""
        options = sample.choices or []
        if _is_index(answer):
            return {"choices": answer if 0 <= answer < len(options) else None}
        return {"choices": options.index(answer) if answer in options else None}

    def read_reference_outputs(self, paths: Sequence[str | Path]) -> list[tuple[Sample, list[str]]]:
        """Samples and replies from the task's own native result files (`emobench import`). Optional:
        a task that does not define it (this default) reads only the generic prediction files."""
        raise NotImplementedError

    # ---- metrics ----------------------------------------------------------------------------
    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
        """Corpus metrics from the non-error records (unparseable ones score 0 unless overridden)."""
        scores = [float(r["score"] or 0.0) for r in records]
        return {"accuracy": M.proportion(scores)}, {}


class ChoiceTask(Task):
    """Pick one option among `sample.choices`; `sample.target` is the index of the right one.

    The default reply format is a JSON block `{"answer": "<letter>"}`; the parser also accepts a bare
    letter, an 'Answer: X' line or the option's text. `aggregate` reports `strict_accuracy` (answers
    stated in the JSON field, an answer line or a one-option reply) beside the lenient `accuracy`.
    """

    family: ClassVar[str] = "classification"
    json_keys: ClassVar[tuple[str, ...]] = ("answer",)

    def prompt_variables(self, sample: Sample) -> dict[str, Any]:
        variables = super().prompt_variables(sample)
        variables["lettered_choices"] = "\n".join(
            f"{chr(65 + i)}) {c}" for i, c in enumerate(sample.choices or [])
        )
        return variables

    def parse(self, text: str, sample: Sample) -> int | None:
        return parsing.choice_index(text, sample.choices or [], self.json_keys)

    def parse_strict(self, text: str, sample: Sample) -> int | None:
        """The strict reading of `parse` (see `parsing.choice_index`). A subclass with a parser of its
        own has no strict reading until it defines this too: this one would not match its answers."""
        if type(self).parse is not ChoiceTask.parse:
            raise NotImplementedError
        return parsing.choice_index(text, sample.choices or [], self.json_keys, strict=True)

    def format_answer(self, answer: Any, sample: Sample) -> str:
        return '{"%s": "%s"}' % (self.json_keys[0], chr(65 + int(answer)))

    def answer_letters(self, sample: Sample) -> list[str] | None:
        """A, B, ... for the options, as this class's replies name them; None for a subclass that formats
        its answers otherwise (by name, or several questions in one reply) until it defines this too."""
        own = (
            type(self).format_answer is ChoiceTask.format_answer
            and type(self).answer_space is Task.answer_space
        )
        if not own or not sample.choices:
            return None
        return [chr(65 + i) for i in range(len(sample.choices))]

    def continuation(self, answer: Any, sample: Sample) -> str:
        return " " + chr(65 + int(answer))

    def aggregate(self, records: list[ScoredRecord]) -> tuple[dict[str, Metric], dict[str, Any]]:
        metrics, details = super().aggregate(records)
        by_cat: dict[str, list[float]] = {}
        for r in records:
            cat = (r.get("metadata") or {}).get("category")
            if cat is not None:
                by_cat.setdefault(str(cat), []).append(float(r["score"] or 0.0))
        if by_cat:
            details["accuracy_by_category"] = {
                k: M.proportion(v).as_dict() for k, v in sorted(by_cat.items())
            }
        strict = strict_accuracy(records)
        if strict is not None:
            metrics["strict_accuracy"] = strict
        return metrics, details


def strict_score(record: ScoredRecord) -> float:
    """A record's score if its answer was read strictly (stated, not guessed), else 0: the per-sample
    value behind `strict_accuracy`, for tasks that average their own way (over choice orders, pairs)."""
    return float(record["score"] or 0.0) if (record.get("metadata") or {}).get(STRICT_KEY) else 0.0


def strict_accuracy(records: list[ScoredRecord]) -> Metric | None:
    """Accuracy counting only strictly read answers, beside the lenient headline `accuracy`; None when
    the records carry no strictness (the task has no strict reading)."""
    if not any(STRICT_KEY in (r.get("metadata") or {}) for r in records):
        return None
    return M.proportion([strict_score(r) for r in records])


def group_of(sample: Sample) -> str:
    """Items that must stay on the same side of a split: a matched pair, or the choice orders of one
    item (ids `<item>/o<k>`)."""
    return str(sample.metadata.get("pair_id") or sample.id.split("/")[0])


def _is_index(value: Any) -> bool:
    """An option index (an int, not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _hashable(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    return value
