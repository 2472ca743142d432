"""Tasks are plugins: found in tasks/, from an installed package's entry point, or a --task-file,
without touching the core; `emobench list` shows them."""

from __future__ import annotations

import sys
import textwrap

import pytest

from emobench import registry
from emobench.cli import main
from emobench.errors import ConfigError


@pytest.fixture
def fake_installed_plugin(tmp_path, monkeypatch):
    """A package with an `emobench.tasks` entry point, installed by putting its dist-info on sys.path."""
    pkg = tmp_path / "emo_plugin_demo"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        from emobench.task import ChoiceTask
        from emobench.types import Sample

        class PluginTask(ChoiceTask):
            name = "plugin_demo"
            description = "a task from an installed package"
            template = "{{ input }}\\n{{ lettered_choices }}"

            def load_samples(self, split="test"):
                yield Sample(id="p1", input="Pick B.", choices=["x", "y"], target=1)
    '''))
    dist = tmp_path / "emo_plugin_demo-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: emo-plugin-demo\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[emobench.tasks]\nplugin_demo = emo_plugin_demo:PluginTask\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.plugin_tasks.cache_clear()
    yield
    registry.plugin_tasks.cache_clear()
    sys.modules.pop("emo_plugin_demo", None)


def test_entry_point_task_is_discovered_and_runs(fake_installed_plugin, tmp_path, capsys):
    assert "plugin_demo" in registry.all_tasks()
    assert main(["list", "tasks"]) == 0
    assert "plugin_demo" in capsys.readouterr().out
    assert main(["run", "--model", "random", "--tasks", "plugin_demo", "-q", "--output", str(tmp_path / "r")]) == 0


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
                    yield Sample(id=f"{i}{side}", input="x", choices=["p", "q"], target=0,
                                 metadata={"pair_id": f"p{i}"})

    plain = Paired()
    assert not plain.has_split("dev")
    task = Paired(dev_size=5)
    dev, test = list(task.split_samples("dev")), list(task.split_samples("test"))
    assert task.has_split("dev") and task.has_split("train")
    assert len({group_of(s) for s in dev}) == 5 and len(dev) == 10 and len(test) == 30
    assert not {s.id for s in dev} & {s.id for s in test}
    assert [s.id for s in Paired(dev_size=5).split_samples("dev")] == [s.id for s in dev]  # deterministic
