"""Tasks are plugins: found in tasks/ (a folder per benchmark, single .py files, .yaml files), from an
installed package's entry point, or a --task-file (.yaml or .py), without touching the core;
`emobench list` shows them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from emobench import registry
from emobench.cli import main
from emobench.errors import ConfigError

FIXTURE_DIR = Path(__file__).resolve().parent / "fixtures" / "custom"

PLUGIN_TASK = """
from emobench.task import ChoiceTask
from emobench.types import Sample

class PluginTask(ChoiceTask):
    name = "plugin_demo"
    description = "a task from an installed package"
    template = "{{ input }}\\n{{ lettered_choices }}"
    ids = __IDS__

    def load_samples(self, split="test"):
        for sid in self.ids:
            yield Sample(id=sid, input="Pick B.", choices=["x", "y"], target=1)
"""


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """Install a package with an `emobench.tasks` entry point (its dist-info put on sys.path) whose
    task yields the sample ids given."""

    def install(ids: list[str], extra: str = "") -> None:
        pkg = tmp_path / "emo_plugin_demo"
        pkg.mkdir()
        (pkg / "__init__.py").write_text(PLUGIN_TASK.replace("__IDS__", repr(ids)) + extra)
        dist = tmp_path / "emo_plugin_demo-0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: emo-plugin-demo\nVersion: 0.1\n")
        (dist / "entry_points.txt").write_text("[emobench.tasks]\nplugin_demo = emo_plugin_demo:PluginTask\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        registry.plugin_tasks.cache_clear()

    yield install
    registry.plugin_tasks.cache_clear()
    sys.modules.pop("emo_plugin_demo", None)


@pytest.fixture
def fake_installed_plugin(install_plugin):
    install_plugin(["p1"])


def test_entry_point_task_is_discovered_and_runs(fake_installed_plugin, tmp_path, capsys):
    assert "plugin_demo" in registry.all_tasks()
    assert main(["list", "tasks"]) == 0
    assert "plugin_demo" in capsys.readouterr().out
    assert (
        main(["run", "--model", "random", "--tasks", "plugin_demo", "-q", "--output", str(tmp_path / "r")])
        == 0
    )


def test_list_commands_print_one_line_each(capsys):
    for what in ("models", "variants", "suites"):
        assert main(["list", what]) == 0
    out = capsys.readouterr().out
    assert "openai/<model>" in out and "direct" in out and "default" in out


def test_unknown_task_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown task or suite 'nope'"):
        registry.resolve_task_names("nope")


def test_task_args_apply_only_where_declared():
    from emobench.task import Task

    class T(Task):
        name = "t_args"
        arg_defaults = {"lang": "en"}

    with pytest.raises(ConfigError, match="unknown --task-arg"):
        T(colour="red")
    assert T(lang="zh").args == {"lang": "zh"}


def test_dev_size_holds_out_whole_groups_disjoint_from_test():
    from emobench.task import ChoiceTask, group_of
    from emobench.types import Sample

    class Paired(ChoiceTask):
        name = "paired_demo"

        def load_samples(self, split="test"):
            for i in range(20):
                for side in ("a", "b"):
                    yield Sample(
                        id=f"{i}{side}",
                        input="x",
                        choices=["p", "q"],
                        target=0,
                        metadata={"pair_id": f"p{i}"},
                    )

    plain = Paired()
    assert not plain.has_split("dev")
    task = Paired(dev_size=5)
    dev, test = list(task.split_samples("dev")), list(task.split_samples("test"))
    assert task.has_split("dev") and task.has_split("train")
    assert len({group_of(s) for s in dev}) == 5 and len(dev) == 10 and len(test) == 30
    assert not {s.id for s in dev} & {s.id for s in test}
    assert [s.id for s in Paired(dev_size=5).split_samples("dev")] == [s.id for s in dev]  # deterministic


def test_a_task_that_yields_one_id_twice_is_refused_before_any_call(install_plugin, tmp_path, capsys):
    install_plugin(["p1", "p2", "p3", "p2"])
    assert (
        main(["run", "--model", "random", "--tasks", "plugin_demo", "-q", "--output", str(tmp_path / "r")])
        == 2
    )
    err = capsys.readouterr().err
    assert "plugin_demo" in err and "'p2'" in err and "#2 and #4" in err, err
    assert not (tmp_path / "r" / "samples.jsonl").exists()


def test_a_task_that_loads_no_samples_is_an_error_not_an_empty_result(install_plugin, tmp_path, capsys):
    install_plugin([])
    assert (
        main(["run", "--model", "random", "--tasks", "plugin_demo", "-q", "--output", str(tmp_path / "r")])
        == 2
    )
    err = capsys.readouterr().err
    assert "task plugin_demo loaded 0 samples" in err and "split 'test'" in err, err
    assert not (tmp_path / "r" / "results.json").exists()


NO_DEV = """
    splits = ("test", "dev")

    def split_samples(self, split="test"):
        if split == "dev":
            from emobench.errors import DataError
            raise DataError("plugin", "no samples in the dev split")
        return self.load_samples(split)
"""


def test_a_direct_run_does_not_load_the_dev_split(install_plugin, tmp_path, server):
    """Only variants that read the dev split (fewshot, refine) load it: a small dataset whose dev split
    is empty (an error when loaded) still runs `direct`."""
    install_plugin(["p1", "p2"], NO_DEV)
    args = [
        "run",
        "--model",
        "openai/m",
        "--base-url",
        server.base_url,
        "--tasks",
        "plugin_demo",
        "-q",
        "--no-cache",
    ]
    assert main([*args, "--output", str(tmp_path / "direct")]) == 0
    assert main([*args, "--variant", "fewshot", "--output", str(tmp_path / "fewshot")]) == 2


@pytest.mark.parametrize(
    "arg, words",
    [
        (
            "bogus=1",
            ["bogus", "no selected task takes it", "vignettes (", "vignettes_affect (", "set", "dev_size"],
        ),
        ("protcol=paper", ["protcol", "no selected task takes it", "vignettes ("]),
        ("emobench_ea.lang=zh", ["emobench_ea", "not selected", "vignettes, vignettes_affect"]),
    ],
    ids=["unknown", "typo", "scoped-to-unselected-task"],
)
def test_a_task_arg_that_no_selected_task_takes_is_an_error(arg, words, tmp_path, capsys):
    code = main(
        [
            "run",
            "--model",
            "random",
            "--tasks",
            "vignettes,vignettes_affect",
            "--task-arg",
            arg,
            "-q",
            "--output",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert all(w in err for w in words), err
    assert not (tmp_path / "r").exists()


def test_an_unscoped_task_arg_goes_to_every_selected_task_that_takes_it():
    tasks = registry.make_tasks(
        ["vignettes", "emobench_ea", "emobench_eu"], {"lang": "zh", "set": "keyword_free"}
    )
    assert [t.args.get("lang") for t in tasks] == [None, "zh", "zh"]
    assert tasks[0].args["set"] == "keyword_free"
    scoped = registry.make_tasks(["emobench_ea", "emobench_eu"], {"emobench_eu.lang": "zh"})
    assert [t.args["lang"] for t in scoped] == ["en", "zh"]
    with pytest.raises(ConfigError, match="task emobench_ea: unknown --task-arg colour"):
        registry.make_tasks(["emobench_ea"], {"emobench_ea.colour": "red"})


# ---- tasks/ layout: a folder per benchmark, single files, YAML ------------------------------------
def test_each_builtin_benchmark_is_a_folder_package_with_stable_module_names():
    tasks = registry.builtin_tasks()
    modules = {name: cls.__module__ for name, cls in tasks.items()}
    assert modules["vignettes"] == modules["vignettes_affect"] == "emobench_tasks.vignettes.task"
    assert modules["aipsy_affect"] == modules["aipsy_affect_detect"] == "emobench_tasks.aipsy_affect.task"
    assert {m.split(".")[1] for m in modules.values()} == {
        "aipsy_affect",
        "emobench",
        "eqbench",
        "esconv",
        "longemotion",
        "vignettes",
    }
    # AIPsy-Affect reuses the vignette classes instead of copying them
    assert issubclass(tasks["aipsy_affect"], tasks["vignettes"])
    assert issubclass(tasks["aipsy_affect_detect"], tasks["vignettes_affect"])
    root = registry.tasks_dir()
    for bench in ("aipsy_affect", "emobench", "eqbench", "esconv", "longemotion", "vignettes"):
        assert (root / bench / "README.md").is_file() and (root / bench / "task.py").is_file()
    assert (root / "vignettes" / "vignettes.jsonl").is_file()


FOLDER_TASK = """
from emobench.task import ChoiceTask
from emobench.types import Sample

from .items import ROWS


class FolderTask(ChoiceTask):
    name = "folder_demo"
    template = "{{ input }}"

    def load_samples(self, split="test"):
        return [Sample(id=i, input=t, choices=["x", "y"], target=0) for i, t in ROWS]
"""
SINGLE_FILE = """
from emobench.task import Task


class Single(Task):
    name = "single_file_demo"
"""


@pytest.fixture
def tasks_folder(tmp_path, monkeypatch):
    """A `tasks/` folder of the user's: a benchmark folder (modules importing each other relatively, no
    `__init__.py`), a single-file plugin and a YAML task file; the registry pointed at it."""
    root = tmp_path / "tasks"
    (root / "mybench").mkdir(parents=True)
    (root / "mybench" / "task.py").write_text(FOLDER_TASK)
    (root / "mybench" / "items.py").write_text("ROWS = [('a', 'one'), ('b', 'two')]\n")
    (root / "solo.py").write_text(SINGLE_FILE)
    (root / "_private.py").write_text("raise RuntimeError('never imported')\n")
    (root / "notes").mkdir()  # a folder without task.py or __init__.py: not a task
    (root / "feelings.yaml").write_text(
        (FIXTURE_DIR / "feelings.yaml")
        .read_text()
        .replace("data: feelings.jsonl", f"data: {FIXTURE_DIR / 'feelings.jsonl'}")
    )
    (root / "suites.yaml").write_text("mine: {tasks: [folder_demo]}\n")
    monkeypatch.setattr(registry, "tasks_dir", lambda: root)
    registry.builtin_tasks.cache_clear()
    registry.suites.cache_clear()
    package = registry._tasks_package(root)
    yield root
    registry.builtin_tasks.cache_clear()
    registry.suites.cache_clear()
    package.__path__.remove(str(root))
    for name in [
        n
        for n in sys.modules
        if n.split(".")[:2] in (["emobench_tasks", "mybench"], ["emobench_tasks", "solo"])
    ]:
        del sys.modules[name]


def test_folders_single_files_and_yaml_in_tasks_are_all_discovered(tasks_folder):
    found = registry.builtin_tasks()
    assert sorted(found) == ["feelings_demo", "folder_demo", "single_file_demo"]
    assert found["folder_demo"].__module__ == "emobench_tasks.mybench.task"
    assert found["single_file_demo"].__module__ == "emobench_tasks.solo"
    assert [s.id for s in found["folder_demo"]().load_samples()] == ["a", "b"]
    assert registry.resolve_task_names("mine") == ["folder_demo"]


def test_a_python_task_file_runs_and_names_its_tasks(tmp_path, capsys):
    path = tmp_path / "my_tasks.py"
    path.write_text(FOLDER_TASK.replace("from .items import ROWS", "ROWS = [('a', 'one')]"))
    assert registry.resolve_task_names(None, [str(path)]) == ["folder_demo"]
    assert (
        main(
            [
                "run",
                "--model",
                "random",
                "--task-file",
                str(path),
                "-q",
                "--no-cache",
                "--output",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert main(["list", "tasks", "--task-file", str(path)]) == 0
    assert "folder_demo" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content, words",
    [
        (None, "no such file"),
        ("X = 1\n", "defines no Task subclass"),
    ],
    ids=["missing", "no-task"],
)
def test_a_bad_python_task_file_is_a_config_error(tmp_path, content, words):
    path = tmp_path / "t.py"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=words):
        registry.task_classes_from_file(path)
