"""Hostile input: broken dataset files give one clear error line naming file and line; 10,000 generated
model outputs go through every parser without an exception; templates that reach for Python internals
are refused by the jinja2 sandbox."""

from __future__ import annotations

import functools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import FIXTURES
from emobench import parsing
from emobench.errors import ConfigError
from emobench.prompts import render
from emobench.registry import all_tasks
from emobench.testing.workload import TASK_YAML as _TEMPLATE
from emobench.types import Sample
from reliability_support import cli

GOOD = json.dumps({"id": "g1", "text": "Lena hugged her brother at the gate.", "label": "joy"})

TASK_YAML = _TEMPLATE.format(name="rel_task", metrics="accuracy")


def _task_with_data(tmp_path, data: bytes):
    (tmp_path / "items.jsonl").write_bytes(data)
    (tmp_path / "task.yaml").write_text(TASK_YAML, encoding="utf-8")
    return tmp_path / "task.yaml"


@pytest.mark.parametrize(
    "data, line, words",
    [
        ((GOOD + '\n{"id": "x2", "text": oops}\n').encode(), 2, "invalid JSON"),
        ((GOOD + "\n" + GOOD[:25]).encode(), 2, "invalid JSON"),  # truncated last line
        ((GOOD + "\n").encode() + b'{"id": "b", "text": "caf\xe9", "label": "joy"}\n', 2, "UTF-8"),
        ((GOOD + "\n" + GOOD + "\n").encode(), 2, "duplicate"),
        ((GOOD + "\n[1, 2]\n").encode(), 2, "JSON object"),
    ],
    ids=["malformed", "truncated", "non-utf8", "duplicate-id", "not-an-object"],
)
def test_broken_dataset_file_is_one_error_line_with_file_and_line(server, tmp_path, data, line, words):
    yaml_path = _task_with_data(tmp_path, data)
    res = cli(
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        server.base_url,
        "--task-file",
        str(yaml_path),
        "-q",
        "--output",
        str(tmp_path / "run"),
    )
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "items.jsonl" in err and f":{line}" in err and words.lower() in err.lower(), err
    assert server.state.requests == 0


@pytest.mark.slow
def test_hundred_megabyte_line_is_refused_with_file_and_line(server, tmp_path):
    huge = b'{"id": "h", "text": "' + b"a" * (100 * 1024 * 1024) + b'", "label": "joy"}\n'
    yaml_path = _task_with_data(tmp_path, (GOOD + "\n").encode() + huge)
    res = cli(
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        server.base_url,
        "--task-file",
        str(yaml_path),
        "-q",
        "--output",
        str(tmp_path / "run"),
    )
    err = res.stderr.strip()
    assert res.returncode == 2 and "\n" not in err and "items.jsonl" in err and ":2" in err, err


TEXT = st.one_of(
    st.text(max_size=300),
    st.from_regex(
        r"\{\s*\"(answer|index|score)\"\s*:\s*(\"[A-Za-z]{0,3}\"|-?\d{1,30}(\.\d*)?|null|\[\]|\{)\s*\}?",
        fullmatch=False,
    ),
    st.builds(lambda a, b: f"<think>{a}</think>{b}", st.text(max_size=50), st.text(max_size=50)),
    st.builds(lambda n: "9" * n + "e999", st.integers(0, 400)),
)
CHOICES = ["joy", "sadness", "anger", "fear"]


@functools.cache
def _registered_parsers() -> list[tuple[str, Any, Sample]]:
    """(name, parse, sample) for every task class that can be built offline without data, plus a sample
    of its own (the first one it loads from a test fixture folder) so that each parser sees the target
    shape it is written for (EQ-Bench's reference ratings, a choice index, an answer text). Called from
    the test, after the fixture that makes the hub offline."""
    out = []
    for name, cls in sorted(all_tasks().items()):
        try:
            task = cls()
        except Exception:  # tasks needing arguments or data are fuzzed through parsing.*
            continue
        out.append(
            (name, task.parse, _own_sample(cls) or Sample(id="f", input="x", target=0, choices=CHOICES))
        )
    return out


def _own_sample(cls) -> Sample | None:
    for folder in sorted(FIXTURES.iterdir()):
        try:
            return next(iter(cls(data_dir=str(folder)).load_samples()))
        except Exception:  # not this task's data: try the next folder
            continue
    return None


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=TEXT)
def test_parsers_never_raise_on_generated_model_outputs(text):
    """5 x 2,000 = 10,000 generated outputs through every parser of parsing.py and every task's parse."""
    parsing.strip_reasoning(text)
    parsing.json_field(text, "answer", "index")
    parsing.choice_index(text, CHOICES)
    parsing.integer(text, lo=0, hi=30)
    parsing.number(text, lo=0.0, hi=10.0)
    for _name, parse, sample in _registered_parsers():
        try:
            parse(text, sample)
        except Exception as exc:  # report which task's parser failed
            raise AssertionError(f"{_name}.parse raised {type(exc).__name__}: {exc}") from exc


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ self._TemplateReference__context }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    ],
)
def test_templates_reaching_python_internals_are_refused(template):
    with pytest.raises(ConfigError):
        out = render(template)
        # a template that renders must not have leaked anything from Python's internals
        assert "class" not in out and "module" not in out and "function" not in out, out


def test_task_file_with_escaping_template_stops_the_run_with_one_line(server, tmp_path):
    (tmp_path / "items.jsonl").write_text(GOOD + "\n", encoding="utf-8")
    (tmp_path / "task.yaml").write_text(
        TASK_YAML.replace("{{ input }}", "{{ cycler.__init__.__globals__ }}"), encoding="utf-8"
    )
    res = cli(
        "run",
        "--model",
        "openai/loopback",
        "--base-url",
        server.base_url,
        "--task-file",
        str(tmp_path / "task.yaml"),
        "-q",
        "--no-cache",
        "--output",
        str(tmp_path / "run"),
    )
    assert res.returncode == 2 and "sandbox" in res.stderr and "\n" not in res.stderr.strip(), res.stderr
    assert server.state.requests == 0
