"""Finding tasks without touching the core.

Three sources, in order (a later one may not shadow an earlier name silently: it is an error):
1. built-in plugins: every `tasks/*.py` file (Task subclasses with a `name`) and `tasks/*.yaml`
   no-code task files; shipped inside the wheel as well;
2. installed packages exposing the entry-point group `emobench.tasks` (a Task subclass, or a callable
   returning a list of them);
3. `--task-file my_task.yaml` given on the command line.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .paths import tasks_dir
from .task import COMMON_ARGS, Task

ENTRY_POINT_GROUP = "emobench.tasks"


def _load_module(path: Path):
    name = f"emobench_tasks.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _classes_in(module) -> list[type[Task]]:
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, Task) and obj.name and obj.__module__ == module.__name__]


@lru_cache(maxsize=1)
def builtin_tasks() -> dict[str, type[Task]]:
    found: dict[str, type[Task]] = {}
    folder = tasks_dir()
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        for cls in _classes_in(_load_module(path)):
            _add(found, cls, str(path))
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "suites.yaml":
            continue
        from .taskfile import task_class_from_file

        _add(found, task_class_from_file(path), str(path))
    return found


@lru_cache(maxsize=1)
def plugin_tasks() -> dict[str, type[Task]]:
    found: dict[str, type[Task]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        classes = [obj] if isinstance(obj, type) else list(obj())
        for cls in classes:
            _add(found, cls, f"entry point {ep.name} ({ep.value})")
    return found


def _add(found: dict[str, type[Task]], cls: type[Task], origin: str) -> None:
    if cls.name in found and found[cls.name] is not cls:
        raise ConfigError(f"task name {cls.name!r} from {origin} is already defined")
    found[cls.name] = cls


def all_tasks(task_files: list[str] | tuple[str, ...] = ()) -> dict[str, type[Task]]:
    tasks = dict(builtin_tasks())
    for name, cls in plugin_tasks().items():
        if name in tasks and tasks[name] is not cls:
            raise ConfigError(f"plugin task {name!r} clashes with a built-in task of the same name")
        tasks[name] = cls
    from .taskfile import task_class_from_file

    for path in task_files:
        cls = task_class_from_file(Path(path))
        tasks[cls.name] = cls
    return tasks


@lru_cache(maxsize=1)
def suites() -> dict[str, list[str]]:
    """Named lists of tasks from `tasks/suites.yaml`; `default` is what `emobench run` runs."""
    path = tasks_dir() / "suites.yaml"
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {name: list(spec["tasks"]) for name, spec in data.items()}


def suite_descriptions() -> dict[str, str]:
    path = tasks_dir() / "suites.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else {}
    return {name: spec.get("description", "") for name, spec in (data or {}).items()}


def resolve_task_names(spec: str | None, task_files: list[str] | tuple[str, ...] = ()) -> list[str]:
    """`--tasks a,b,suite_name`; with --task-file and no --tasks, just the file's tasks."""
    known = all_tasks(task_files)
    if not spec:
        if task_files:
            from .taskfile import task_class_from_file

            return [task_class_from_file(Path(p)).name for p in task_files]
        spec = "default"
    names: list[str] = []
    for part in [p.strip() for p in spec.split(",") if p.strip()]:
        if part in known:
            names.append(part)
        elif part in suites():
            names.extend(suites()[part])
        else:
            raise ConfigError(f"unknown task or suite {part!r}; see `emobench list tasks`")
    return list(dict.fromkeys(names))


def make_task(name: str, args: dict[str, Any], data_dir: str | None = None,
              task_files: list[str] | tuple[str, ...] = ()) -> Task:
    """Instantiate a task with the `--task-arg`s that apply to it.

    `key=value` applies to every task that declares `key`; `task.key=value` to that task only (and
    must be known to it).
    """
    cls = all_tasks(task_files)[name]
    mine: dict[str, Any] = {}
    for key, value in args.items():
        task_name, scoped, sub = key.rpartition(".")
        if scoped and task_name == name:
            mine[sub] = value
        elif not scoped and _accepts(cls, key):
            mine[key] = value
    return cls(data_dir=data_dir, **mine)


def make_tasks(names: list[str], args: dict[str, Any], data_dir: str | None = None,
               task_files: list[str] | tuple[str, ...] = ()) -> list[Task]:
    """The selected tasks of a run. A `--task-arg` that none of them takes is an error rather than
    ignored: a typo such as `protcol=paper` would otherwise run the default protocol, and a
    `task.key` for a task not selected would change nothing."""
    classes = all_tasks(task_files)
    for key in args:
        task_name, scoped, _ = key.rpartition(".")
        if scoped and task_name not in names:
            raise ConfigError(f"--task-arg {key}: task {task_name!r} is not selected (selected: "
                              f"{', '.join(names)})")
        if not scoped and not any(_accepts(classes[n], key) for n in names):
            known = "; ".join(f"{n} ({', '.join([*classes[n].arg_defaults, *COMMON_ARGS])})" for n in names)
            raise ConfigError(f"--task-arg {key}: no selected task takes it; known: {known}")
    return [make_task(name, args, data_dir, task_files) for name in names]


def _accepts(cls: type[Task], key: str) -> bool:
    return key in cls.arg_defaults or key in COMMON_ARGS
