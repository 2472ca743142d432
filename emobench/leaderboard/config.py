"""`leaderboards/<name>.yaml`: which tasks a leaderboard ranks, how the overall score is aggregated,
and which results feed it.

    name: core
    title: emobench core leaderboard
    runs: ["runs/*/results.json"]      # run dirs, results files, globs, folders of runs (relative to the cwd)
    variant: direct                    # the variant that is ranked; the others are shown as deltas
    tasks:
      - {task: vignettes, metric: accuracy, floor: 0.125, ceiling: 1.0}
    aggregate: {method: mean_normalised}   # or longemotion_overall (LongEmotion's Overall, its six tasks)
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
    method: str = "mean_normalised"  # or "longemotion_overall"

    @property
    def aggregation(self) -> str:
        """The aggregation rule in words, printed on the site and in leaderboard.json."""
        if self.method == "longemotion_overall":
            return (
                "Overall = LongEmotion's Overall (arXiv 2509.07403, project page): the mean of EC, ED and "
                "QA (in %), 20 x MC-4, 20 x ES and EE, i.e. each task normalised with floor 0 and ceiling "
                "1 (EC accuracy, ED accuracy, QA F1), 5 (MC-4 and ES, judged 0-5 and 1-5) or 100 (EE, "
                "judged 0-100); not chance-corrected. MC must be run with its default stages=4 (MC-4). "
                "Its 95% CI combines the per-task CIs as independent errors (root sum of squares of each "
                "side, divided by 6). A model without a ranked result on all six tasks has no Overall. "
                "Judged tasks rank together only when the same judges scored them. Not ranked: results "
                "from incomparable runs, incomplete runs, runs with more than "
                f"{self.max_error_rate:.0%} of their samples failed, and results their own task marks "
                "invalid."
            )
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
    aggregate = spec.get("aggregate") or {"method": "mean_normalised"}
    method = aggregate.get("method", "mean_normalised")
    if method not in ("mean_normalised", "longemotion_overall"):
        raise ConfigError(f"{p}: aggregate.method must be mean_normalised or longemotion_overall")
    if method == "longemotion_overall":
        spec["tasks"] = _longemotion_tasks(p, spec.get("tasks"))
    if not spec.get("tasks"):
        raise ConfigError(f"{p}: `tasks` must list at least one task")
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
        method=method,
    )


# LongEmotion's six tasks: (title, metric, ceiling). With floor 0, the mean of 100 x score / ceiling
# is the project page's Overall = mean(EC, ED, QA, 20 x MC-4, 20 x ES, EE).
LONGEMOTION_OVERALL = {
    "longemotion_ec": ("LongEmotion EC", "accuracy", 1.0),
    "longemotion_ed": ("LongEmotion ED", "accuracy", 1.0),
    "longemotion_qa": ("LongEmotion QA", "f1", 1.0),
    "longemotion_mc": ("LongEmotion MC-4", "mc_score", 5.0),
    "longemotion_es": ("LongEmotion ES", "es_score", 5.0),
    "longemotion_ee": ("LongEmotion EE", "ee_score", 100.0),
}


def _longemotion_tasks(p: Path, given: Any) -> list[dict[str, Any]]:
    """The six task specs of `aggregate: {method: longemotion_overall}`: the listed tasks may add a
    title or description, but must be exactly the six, with the Overall's metrics and scales."""
    items = [{"task": t} if isinstance(t, str) else dict(t) for t in given or LONGEMOTION_OVERALL]
    names = [str(t.get("task")) for t in items]
    if sorted(names) != sorted(LONGEMOTION_OVERALL):
        raise ConfigError(
            f"{p}: longemotion_overall ranks exactly the six LongEmotion tasks "
            f"({', '.join(LONGEMOTION_OVERALL)}), got {', '.join(names)}"
        )
    out = []
    for item in items:
        title, metric, ceiling = LONGEMOTION_OVERALL[item["task"]]
        fixed = {"metric": metric, "floor": 0.0, "ceiling": ceiling}
        clash = {k: item[k] for k in fixed if k in item and item[k] != fixed[k]}
        if clash:
            raise ConfigError(f"{p}: {item['task']}: longemotion_overall fixes {fixed}, got {clash}")
        out.append({"title": title, **item, **fixed})
    return out


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
