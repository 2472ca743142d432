"""Built-in tasks, prompts and leaderboards ship inside the wheel, not only in a source checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT

pytest.importorskip("hatchling", reason="hatchling (the build backend) is needed to build the wheel offline")


@pytest.mark.slow
def test_wheel_carries_builtin_tasks_and_lists_them_when_installed(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
        cwd=tmp_path,
    )
    wheel = next((tmp_path / "dist").glob("emobench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "emobench/_builtin/tasks/suites.yaml" in names
    for bench in (
        "aipsy_affect",
        "emobench",
        "eqbench",
        "esconv",
        "longemotion",
        "vignettes",
    ):  # a folder each
        assert {
            f"emobench/_builtin/tasks/{bench}/{f}" for f in ("__init__.py", "task.py", "README.md")
        } <= set(names)
    assert "emobench/_builtin/tasks/vignettes/vignettes.jsonl" in names
    assert any(n.startswith("emobench/_builtin/prompts/") for n in names)
    assert not any("shared/datasets" in n for n in names)
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import emobench.paths as p; from emobench.cli import main; "
            "print(p.tasks_dir()); main(['list', 'suites']); main(['list', 'tasks'])",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(target) in out.splitlines()[0]
    assert "default" in out and "aipsy_affect_detect" in out and "vignettes_affect" in out
