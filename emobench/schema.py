"""The run-directory contract, typed: what manifest.json and results.json hold, and the scored record
that `Task.aggregate` receives.

They are TypedDicts, so they are plain dicts at run time: the builders (`build_manifest`,
`build_results`, `compact_record`) return them and `load_run` reads them back without any conversion,
and the files written stay exactly what `json.dumps` makes of a dict. A samples.jsonl line is the
`SampleRecord` dataclass of emobench/types.py.

A few dicts are open, their keys not fixed here: those typed `dict[str, Any]` (task args, variant
configs, a task's `details`, a variant's `variant_metrics`, a sample's `metadata` and `trace`), and
those in `EXTENSIBLE`, which declare the keys the harness writes but also carry what the backend
reports (its `identity()` in `model`, its `environment()` in `environment`).

The README's "The run directory and results schema" section is tested against these types
(tests/test_run_schema.py): its results.json example has exactly their keys. A change to them that
changes what a reader can rely on bumps `SCHEMA_VERSION`, which `load_run` checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypedDict

SCHEMA_VERSION = 1  # results.json's `schema_version`; `load_run` reads only this one

Outcome = Literal["correct", "incorrect", "unparseable", "error"]
Status = Literal["running", "complete", "errors", "incomplete"]


# ---- the manifest: what a run is -----------------------------------------------------------------


class Environment(TypedDict):
    """Where the answers' numerics come from (recorded, not hashed); plus the backend's `environment()`."""

    python: str
    platform: str
    machine: str


class GenerationOverrides(TypedDict):
    temperature: float | None
    max_tokens: int | None


class _ModelManifestRequired(TypedDict):
    spec: str
    backend: str
    model: str
    generation_overrides: GenerationOverrides
    system_prompt: str | None


class ModelManifest(_ModelManifestRequired, total=False):
    """`spec` as given to `emobench run` plus the backend's `identity()` (never secrets)."""

    args: dict[str, Any]
    base_url: str | None


class GenerationParams(TypedDict):
    """A task's `GenParams`, as `dataclasses.asdict` gives them."""

    temperature: float
    max_tokens: int
    top_p: float | None
    stop: Sequence[str] | None  # a tuple in memory, a list once read back
    seed: int | None


class JudgeManifest(TypedDict):
    """Who judged a judged task, and how (emobench/judge.py): each judge's spec and backend identity,
    each rubric's criteria, scale and template hash, and the judges that are the model under test."""

    judges: list[dict[str, Any]]
    rubrics: dict[str, dict[str, Any]]
    template_hash: str
    self_preference: list[str]


class _TaskManifestRequired(TypedDict):
    args: dict[str, Any]
    dataset_fingerprint: str
    template_hash: str
    n: int
    family: str
    output_mode: str
    generation: GenerationParams


class TaskManifest(_TaskManifestRequired, total=False):
    """One task of the manifest; `judge` only for a task scored by judge models."""

    judge: JudgeManifest


class Manifest(TypedDict):
    """Everything that determines the results (`build_manifest`); hashed without `UNHASHED`."""

    harness_version: str
    git_commit: str | None
    environment: Environment
    task_files: list[str]
    model: ModelManifest
    seed: int
    split: str
    limit: int | None
    tasks: dict[str, TaskManifest]
    variants: dict[str, dict[str, Any]]


class RunState(TypedDict):
    """manifest.json."""

    manifest_hash: str
    status: Status
    manifest: Manifest


# ---- results.json --------------------------------------------------------------------------------


class MetricDict(TypedDict):
    """`Metric.as_dict()`: a value with its 95% CI and n."""

    value: float
    ci_low: float
    ci_high: float
    n: int


class OutcomeCounts(TypedDict):
    correct: int
    incorrect: int
    unparseable: int
    error: int


class UsageSummary(TypedDict):
    calls: int
    cached_calls: int
    calls_per_sample: float | None
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cost_usd: float | None


class PairedDelta(TypedDict):
    """Mean of (variant - direct) over the samples both scored, with a paired bootstrap 95% CI."""

    delta: float | None
    ci_low: float | None
    ci_high: float | None
    n: int


class VsDirect(PairedDelta):
    cost_multiple: float | None


class JudgeUsage(TypedDict):
    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None


class JudgeScore(TypedDict):
    """One judge of a panel: its mean score (CI, n = samples it scored), the samples it was asked
    about, those whose verdict could not be read, whether it is the model under test, and its cost."""

    judge: str
    score: MetricDict
    n_judged: int
    n_unparseable: int
    self_preference: bool
    usage: JudgeUsage


class Agreement(TypedDict):
    """Agreement of a panel's judges over the samples (emobench/agreement.py)."""

    krippendorff_alpha: MetricDict
    icc2k: MetricDict


class JudgeSummary(TypedDict):
    """A judged (task, variant): each judge, the panel mean, agreement (two judges or more, else null)
    and the samples no judge's verdict could be read for (apart from the model's `n_unparseable`)."""

    judges: list[JudgeScore]
    panel_score: MetricDict
    agreement: Agreement | None
    n_judge_unparseable: int


class ReliabilityBin(TypedDict):
    """One equal-mass bin of a reliability diagram: mean confidence, accuracy, samples."""

    confidence: float
    accuracy: float
    n: int


class _CalibrationRequired(TypedDict):
    source: str  # loglikelihood, top_logprobs or verbalised
    n: int  # samples with a confidence from this source


class Calibration(_CalibrationRequired, total=False):
    """One confidence source's calibration figures (emobench/calibration.py; formulas in the README).
    `nll`, `top_k_accuracy`: only where there is a distribution over the options; `letter_mass`: the
    probability the option letters held at the answer token (top_logprobs); `n_unreadable`: replies
    whose stated confidence could not be read (verbalised)."""

    accuracy: MetricDict
    mean_confidence: MetricDict
    bins: int
    reliability: list[ReliabilityBin]
    ece: MetricDict
    ece_if_calibrated: MetricDict
    calibration_p: float
    brier: MetricDict
    brier_form: Literal["multiclass", "top_label"]
    nll: MetricDict
    aurc: MetricDict
    accuracy_at_80_coverage: MetricDict
    top_k_accuracy: dict[str, MetricDict]
    letter_mass: float
    n_unreadable: int


class _ResultEntryRequired(TypedDict):
    task: str
    variant: str
    family: str
    primary_metric: str
    metrics: dict[str, MetricDict]
    n_samples: int
    n_scored: int
    n_unparseable: int
    n_errors: int
    parse_failure_rate: float | None
    error_rate: float | None
    outcomes: OutcomeCounts
    usage: UsageSummary
    details: dict[str, Any]


class ResultEntry(_ResultEntryRequired, total=False):
    """One (task, variant) of results.json. `note`: a multiple_choice task answered by generation;
    `vs_direct`: variants other than `direct`, when `direct` ran too; `variant_metrics`: what the
    variant's `summarize` reports (`permute`: per-order scores, spread, consistency, position bias;
    `paraphrase`: per-template scores and spread), absent when it reports nothing; `judge`: a task
    scored by judge models (their scores, agreement and cost); `calibration`: per confidence source,
    where the samples' traces hold confidences (choice tasks)."""

    note: str
    calibration: dict[str, Calibration]
    vs_direct: VsDirect
    judge: JudgeSummary
    variant_metrics: dict[str, Any]


class ScoringRule(TypedDict):
    unparseable: str
    error: str


class Rescored(TypedDict):
    """When, and with which code, `emobench rescore` rebuilt the results, and what changed."""

    at: str
    harness_version: str
    git_commit: str | None
    records_changed: int
    records_without_sample: int


class _RunSummaryRequired(TypedDict):
    started: str
    wall_s: float
    run_dir: str
    complete: bool
    n_expected: int
    n_missing: int
    concurrency: int
    retries: int
    failed_calls: int
    n_errors: int


class RunSummary(_RunSummaryRequired, total=False):
    """results.json's `run`: when and how the run went, and whether it is complete; `rescored` once
    `emobench rescore` rebuilt the results (the rest is then the original run's)."""

    rescored: Rescored


class RunResults(TypedDict):
    """results.json (`build_results`, read back by `load_run`)."""

    schema_version: int
    manifest: Manifest
    manifest_hash: str
    scoring: ScoringRule
    run: RunSummary
    results: list[ResultEntry]


# ---- what aggregation reads ----------------------------------------------------------------------


class _ScoredRecordRequired(TypedDict):
    sample_id: str
    outcome: Outcome
    score: float | None
    parsed: Any
    target: Any
    metadata: dict[str, Any]  # the record's metadata without `trace` and `responses`
    trace: dict[str, Any]
    mode: str | None  # trace["mode"]: "generate_fallback" when a choice task was answered by generation


class ScoredRecord(_ScoredRecordRequired, total=False):
    """One sample as `Task.aggregate` receives it (`compact_record` of a samples.jsonl line; the refine
    variant's dev evaluation builds it without the cost fields)."""

    calls: int
    cached_calls: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cost_usd: float | None


EXTENSIBLE: tuple[type, ...] = (Environment, ModelManifest)  # + what the backend reports
