"""`leaderboards/<name>.yaml`: which tasks a leaderboard ranks, how the overall score is aggregated,
and which results feed it.

    name: core
    title: emobench core leaderboard
    runs: ["runs/*/results.json"]      # run dirs, results files, globs, folders of runs (relative to the cwd)
    variant: direct                    # the variant that is ranked; the others are shown as deltas
    tasks:
      - {task: vignettes, metric: accuracy, floor: 0.125, ceiling: 1.0}
    aggregate: {method: mean_normalised}

Normalisation of a task score s: 100 * (s - floor) / (ceiling - floor), so chance-level answering
scores 0 and a perfect one 100 on every task. The overall EI score is the unweighted mean of the
normalised task scores; a model lacking a comparable result for any task has no overall score.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data import read_yaml_mapping
from ..errors import ConfigError

_TOP = {"name", "title", "description", "runs", "variant", "tasks", "aggregate"}
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

    @property
    def aggregation(self) -> str:
        """The aggregation rule in words, printed on the site and in leaderboard.json."""
        floors = ", ".join(f"{t.task} {t.floor:g}..{t.ceiling:g}" for t in self.tasks)
        return (f"Overall EI score = unweighted mean over the {len(self.tasks)} tasks of the normalised "
                f"task score 100 x (score - floor) / (ceiling - floor), floor = chance level "
                f"({floors}). Its 95% CI combines the per-task CIs as independent errors (root sum of squares of each side, divided by the number of tasks). A model "
                f"without a comparable result on every task has no overall score.")


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
    return LeaderboardConfig(name=str(spec.get("name") or p.stem), path=p, title=str(spec.get("title") or ""),
                             description=str(spec.get("description") or ""), runs=runs,
                             variant=str(spec.get("variant") or "direct"), tasks=tasks)


def as_dict(config: LeaderboardConfig) -> dict[str, Any]:
    return {"name": config.name, "title": config.title, "description": config.description,
            "variant": config.variant, "runs": config.runs, "aggregation": config.aggregation,
            "tasks": [vars(t) for t in config.tasks]}
