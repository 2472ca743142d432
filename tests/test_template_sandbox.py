"""Task-file templates are untrusted code: they render in jinja2's immutable sandbox, values that would
outgrow any prompt are refused before they are computed, and the rendered text is bounded, so a hostile
template is one clear ConfigError, never executed, never a hang or a memory blow-up."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from emobench.cli import main
from emobench.errors import ConfigError
from emobench.prompts import MAX_RENDER_CHARS, render
from emobench.testing.workload import TASK_YAML

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "template, words",
    [
        ("{% set xs = [1] %}{{ xs.append(2) }}{{ xs }}", "unsafe"),  # mutating a list
        ("{% set d = {} %}{{ d.update(a=1) }}{{ d }}", "unsafe"),  # ... or a dict
        ("{{ 'x' * 10**9 }}", "characters"),  # folded at compile time
        ("{% set s = 'y' * 1000 %}{{ (s + s) * 10**6 }}", "characters"),
        ("{{ 10 ** 10000000 }}", "too large"),  # a number too big to print
        ("{% set s = 'z' * 3000000 %}{{ s + s }}", "characters"),
        ("{% for i in range(100000) %}{{ 'w' * 1000 }}{% endfor %}", "characters"),  # 100 MB of output
        ("{% for i in range(100000) %}{% for j in range(100000) %}ab{% endfor %}{% endfor %}", "characters"),
    ],
    ids=[
        "list-append",
        "dict-update",
        "repeat",
        "repeat-sum",
        "power",
        "concat",
        "loop-output",
        "nested-loops",
    ],
)
def test_a_hostile_template_is_refused_quickly_with_a_clear_error(template, words):
    start = time.perf_counter()
    with pytest.raises(ConfigError, match=words) as caught:
        render(template)
    assert time.perf_counter() - start < 10, "the template ran instead of being refused"  # 0.9 s at most here
    assert "template" in str(caught.value)


def test_the_output_bound_is_far_above_the_longest_real_prompt():
    context = "She said nothing for a long while. " * 20_000  # 700k characters, 3x a LongEmotion context
    text = render("{{ instruction }}\n{{ context }}\nAnswer:", instruction="Read this.", context=context)
    assert len(text) > 700_000 and MAX_RENDER_CHARS >= 2_000_000
    assert render("{{ 'ab' * n }}", n=MAX_RENDER_CHARS // 2) == "ab" * (MAX_RENDER_CHARS // 2)


def test_ordinary_arithmetic_and_loops_still_render():
    text = render(
        "{% for c in choices %}{{ loop.index }}) {{ c }} {% endfor %}{{ 2 ** 10 }} {{ [0] * 3 }} "
        "{{ 'a' + 'b' }} {{ 3 * 4 }}",
        choices=["joy", "fear"],
    )
    assert text == "1) joy 2) fear 1024 [0, 0, 0] ab 12"


def test_a_task_file_whose_template_outgrows_any_prompt_stops_before_any_model_call(server, tmp_path):
    (tmp_path / "items.jsonl").write_text(
        '{"id": "a", "text": "Lena hugged her brother.", "label": "joy"}\n', encoding="utf-8"
    )
    task = TASK_YAML.format(name="huge", metrics="accuracy").replace(
        "{{ input }}", "{% for i in range(100000) %}{{ input * 100 }}{% endfor %}"
    )
    (tmp_path / "task.yaml").write_text(task, encoding="utf-8")
    code = main(
        [
            "run",
            "--model",
            "openai/m",
            "--base-url",
            server.base_url,
            "--task-file",
            str(tmp_path / "task.yaml"),
            "-q",
            "--no-cache",
            "--output",
            str(tmp_path / "run"),
        ]
    )
    assert code == 2 and server.state.requests == 0


def test_the_jinja2_requirement_excludes_the_versions_with_sandbox_escapes():
    """CVE-2024-56326 and CVE-2025-27516 (sandbox breakouts through str.format and |attr) are fixed in 3.1.5
    and 3.1.6."""
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    [jinja] = [Requirement(d) for d in deps if Requirement(d).name.lower() == "jinja2"]
    assert not jinja.specifier.contains("3.1.5") and jinja.specifier.contains("3.1.6")
