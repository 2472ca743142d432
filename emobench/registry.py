"""Finding tasks without touching the core.

Three sources, in order (a later one may not shadow an earlier name silently: it is an error):
1. built-in plugins in `tasks/` (shipped inside the wheel as well), sorted by name:
   - a folder `tasks/<benchmark>/` is a package, imported as `emobench_tasks.<benchmark>` (its modules
     may import each other relatively, and one benchmark may import another: `from ..vignettes.task
     import Vignettes`); its `task.py` is imported too when the package does not import it itself;
   - a single file `tasks/<name>.py`, imported as `emobench_tasks.<name>`;
   - a no-code task file `tasks/<name>.yaml` (see emobench/taskfile.py);
   every Task subclass with a `name` defined in those modules is a task;
2. installed packages exposing the entry-point group `emobench.tasks` (a Task subclass, or a callable
   returning a list of them);
3. `--task-file` given on the command line: a no-code `.yaml` task file, or a `.py` file whose Task
   subclasses are its tasks (e.g. `examples/tasks/feelings/task.py`).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from functools import lru_cache
from importlib.machinery import ModuleSpec
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError
from .paths import tasks_dir
from .task import COMMON_ARGS, Task
from .taskfile import load_python_file, task_class_from_file

ENTRY_POINT_GROUP = "emobench.tasks"
PACKAGE = "emobench_tasks"  # the built-in folder `tasks/` as a package: `emobench_tasks.<benchmark>`
NOT_TASKS = {"suites.yaml"}


def _tasks_package(folder: Path):
    """`emobench_tasks`, a package whose search path is the `tasks/` folder, so that its files and
    folders import as `emobench_tasks.<name>` with the ordinary import machinery."""
    package = sys.modules.get(PACKAGE)
    if package is None:
        spec = ModuleSpec(PACKAGE, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        package = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = package
    elif str(folder) not in package.__path__:
        package.__path__.append(str(folder))
    return package


def _import_builtin(path: Path) -> list:
    """The modules of one entry of `tasks/`: a single-file plugin, or a folder package and its modules
    (the package itself, every module of it the import loaded, and its `task.py`)."""
    name = f"{PACKAGE}.{path.stem if path.is_file() else path.name}"
    importlib.import_module(name)
    if path.is_dir() and (path / "task.py").is_file():
        importlib.import_module(f"{name}.task")
    return [m for n, m in sorted(sys.modules.items()) if n == name or n.startswith(name + ".")]


def _is_task_folder(path: Path) -> bool:
    return path.is_dir() and ((path / "__init__.py").is_file() or (path / "task.py").is_file())


def _classes_in(module) -> list[type[Task]]:
    return [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and issubclass(obj, Task) and obj.name and obj.__module__ == module.__name__
    ]


def task_classes_from_file(path: str | Path) -> list[type[Task]]:
    """The tasks of a `--task-file`: a `.py` file (its Task subclasses with a `name`), else a no-code
    YAML task file (one task)."""
    path = Path(path)
    if path.suffix == ".py":
        if not path.is_file():
            raise ConfigError(f"task file {path}: no such file")
        classes = _classes_in(load_python_file(path))
        if not classes:
            raise ConfigError(f"task file {path}: defines no Task subclass with a `name`")
        return classes
    return [task_class_from_file(path)]


@lru_cache(maxsize=1)
def builtin_tasks() -> dict[str, type[Task]]:
    found: dict[str, type[Task]] = {}
    folder = tasks_dir()
    _tasks_package(folder)
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if path.name.startswith(("_", ".")):
            continue
        if (path.suffix == ".py" and path.is_file()) or _is_task_folder(path):
            for module in _import_builtin(path):
                for cls in _classes_in(module):
                    _add(found, cls, str(path))
        elif path.suffix == ".yaml" and path.is_file() and path.name not in NOT_TASKS:
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
    for path in task_files:
        for cls in task_classes_from_file(path):
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
            return list(dict.fromkeys(cls.name for p in task_files for cls in task_classes_from_file(p)))
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


def make_task(
    name: str, args: dict[str, Any], data_dir: str | None = None, task_files: list[str] | tuple[str, ...] = ()
) -> Task:
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


def make_tasks(
    names: list[str],
    args: dict[str, Any],
    data_dir: str | None = None,
    task_files: list[str] | tuple[str, ...] = (),
) -> list[Task]:
    """The selected tasks of a run. A `--task-arg` that none of them takes is an error rather than
    ignored: a typo such as `protcol=paper` would otherwise run the default protocol, and a
    `task.key` for a task not selected would change nothing."""
    classes = all_tasks(task_files)
    for key in args:
        task_name, scoped, _ = key.rpartition(".")
        if scoped and task_name not in names:
            raise ConfigError(
                f"--task-arg {key}: task {task_name!r} is not selected (selected: {', '.join(names)})"
            )
        if not scoped and not any(_accepts(classes[n], key) for n in names):
            known = "; ".join(f"{n} ({', '.join([*classes[n].arg_defaults, *COMMON_ARGS])})" for n in names)
            raise ConfigError(f"--task-arg {key}: no selected task takes it; known: {known}")
    return [make_task(name, args, data_dir, task_files) for name in names]


def _accepts(cls: type[Task], key: str) -> bool:
    return key in cls.arg_defaults or key in COMMON_ARGS
