"""`leaderboards/<name>.yaml`: which tasks a leaderboard ranks, how the overall score is aggregated,
and which results feed it.

    name: core
    title: emobench core leaderboard
    runs: ["runs/*/results.json"]      # run dirs, results files, globs, folders of runs (relative to the cwd)
    variant: direct                    # the variant that is ranked; the others are shown as deltas
    tasks:
      - {task: vignettes, metric: accuracy, floor: 0.125, ceiling: 1.0}
    aggregate: {method: mean_normalised}
    max_error_rate: 0.05               # a result with more failed samples is shown, not ranked

Normalisation of a task score s: 100 * (s - floor) / (ceiling - floor), so chance-level answering
scores 0 and a perfect one 100 on every task. The overall EI score is the unweighted mean of the
normalised task scores; a model lacking a ranked result for any task has no overall score. A result
is ranked only when it is valid on its own terms: complete (every sample of its manifest), not marked
failed by its task (EQ-Bench below 83.33% parseable), and with at most `max_error_rate` of its
samples failed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import read_yaml_mapping
from ..errors import ConfigError

_TOP = {"name", "title", "description", "runs", "variant", "tasks", "aggregate", "max_error_rate"}
MAX_ERROR_RATE = 0.05
_TASK = {"task", "metric", "floor", "ceiling", "title", "description"}


@dataclass
class TaskSpec:
    task: str
    metric: str | None = None  # None: each result's own primary metric
    floor: float = 0.0
    ceiling: float = 1.0
    title: str = ""
    description: str = ""

    def normalise(self, value: float | None) -> float | None:
        if value is None:
            return None
        return 100.0 * (value - self.floor) / (self.ceiling - self.floor)


@dataclass
class LeaderboardConfig:
    name: str
    path: Path
    title: str = ""
    description: str = ""
    runs: list[str] = field(default_factory=list)
    variant: str = "direct"
    tasks: list[TaskSpec] = field(default_factory=list)
    max_error_rate: float = MAX_ERROR_RATE

    @property
    def aggregation(self) -> str:
        """The aggregation rule in words, printed on the site and in leaderboard.json."""
        floors = ", ".join(f"{t.task} {t.floor:g}..{t.ceiling:g}" for t in self.tasks)
        return (
            f"Overall EI score = unweighted mean over the {len(self.tasks)} tasks of the normalised "
            f"task score 100 x (score - floor) / (ceiling - floor), floor = chance level "
            f"({floors}). Its 95% CI combines the per-task CIs as independent errors (root sum of "
            f"squares of each side, divided by the number of tasks). A model without a ranked result "
            f"on every task has no overall score. Not ranked: results from incomparable runs, "
            f"incomplete runs, runs with more than {self.max_error_rate:.0%} of their samples failed, "
            f"and results their own task marks invalid."
        )


def load_config(path: str | Path) -> LeaderboardConfig:
    p = Path(path)
    spec = read_yaml_mapping(p, _TOP, "leaderboard file")
    if not spec.get("tasks"):
        raise ConfigError(f"{p}: `tasks` must list at least one task")
    aggregate = spec.get("aggregate") or {"method": "mean_normalised"}
    if aggregate.get("method", "mean_normalised") != "mean_normalised":
        raise ConfigError(f"{p}: aggregate.method must be mean_normalised")
    tasks = []
    for i, item in enumerate(spec["tasks"]):
        item = {"task": item} if isinstance(item, str) else item
        if not isinstance(item, dict) or "task" not in item:
            raise ConfigError(f"{p}: tasks[{i}] must be a task name or a mapping with `task`")
        bad = set(item) - _TASK
        if bad:
            raise ConfigError(f"{p}: tasks[{i}] ({item['task']}): unknown key(s) {', '.join(sorted(bad))}")
        t = TaskSpec(**{k: item[k] for k in item})
        try:
            t.floor, t.ceiling = float(t.floor), float(t.ceiling)
        except (TypeError, ValueError):
            raise ConfigError(f"{p}: tasks[{i}] ({t.task}): floor and ceiling must be numbers") from None
        if t.ceiling <= t.floor:
            raise ConfigError(f"{p}: tasks[{i}] ({t.task}): ceiling must be above floor")
        tasks.append(t)
    runs = spec.get("runs") or []
    runs = [runs] if isinstance(runs, str) else [str(r) for r in runs]
    max_error_rate = spec.get("max_error_rate", MAX_ERROR_RATE)
    if (
        isinstance(max_error_rate, bool)
        or not isinstance(max_error_rate, (int, float))
        or not 0 <= max_error_rate <= 1
    ):
        raise ConfigError(f"{p}: max_error_rate must be a number from 0 to 1")
    return LeaderboardConfig(
        name=str(spec.get("name") or p.stem),
        path=p,
        title=str(spec.get("title") or ""),
        description=str(spec.get("description") or ""),
        runs=runs,
        variant=str(spec.get("variant") or "direct"),
        tasks=tasks,
        max_error_rate=float(max_error_rate),
    )


def as_dict(config: LeaderboardConfig) -> dict[str, Any]:
    return {
        "name": config.name,
        "title": config.title,
        "description": config.description,
        "variant": config.variant,
        "runs": config.runs,
        "aggregation": config.aggregation,
        "max_error_rate": config.max_error_rate,
        "tasks": [vars(t) for t in config.tasks],
    }
