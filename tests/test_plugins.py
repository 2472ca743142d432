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
