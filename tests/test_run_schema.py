"""The run-directory contract is typed (emobench/schema.py, and SampleRecord in emobench/types.py): a
real run writes every key the types require and none they do not declare, `Task.aggregate` receives
exactly a `ScoredRecord`, the README's schema section documents exactly the types' keys, and
`load_run` refuses a results file whose schema_version it does not read."""

from __future__ import annotations

import asyncio
import collections.abc
import dataclasses
import json
import re
import shutil
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from emobench.cli import main
from emobench.errors import ConfigError
from emobench.manifest import RunConfig
from emobench.registry import make_task
from emobench.rescore import rescore_run
from emobench.results import compact_record
from emobench.runner import run
from emobench.runstore import load_run
from emobench.schema import EXTENSIBLE, SCHEMA_VERSION, RunResults, RunState, ScoredRecord
from emobench.types import SampleRecord

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## The run directory and results schema"


# ---- checking a value against the types ----------------------------------------------------------


def problems(tp: Any, value: Any, path: str = "$", seen: set[tuple[str, str]] | None = None) -> list[str]:
    """Where `value` breaks `tp`: missing required keys, undeclared keys (except in EXTENSIBLE
    TypedDicts), values of the wrong JSON type. `seen` collects the (TypedDict, key) pairs met."""
    seen = set() if seen is None else seen
    out: list[str] = []
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return out
    if is_typeddict(tp):
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, expected an object ({tp.__name__})"]
        hints = get_type_hints(tp)
        out += [
            f"{path}.{k}: missing ({tp.__name__} requires it)"
            for k in sorted(tp.__required_keys__ - set(value))
        ]
        for key, item in value.items():
            if key in hints:
                seen.add((tp.__name__, key))
                out += problems(hints[key], item, f"{path}.{key}", seen)
            elif tp not in EXTENSIBLE:
                out.append(f"{path}.{key}: not declared in {tp.__name__}")
        return out
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return out
        options = [a for a in args if a is not type(None)]
        found = [problems(a, value, path, seen) for a in options]
        return [] if any(not f for f in found) else found[0]
    if origin is Literal:
        return [] if value in args else [f"{path}: {value!r} is not one of {args}"]
    if origin is dict:
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, expected an object"]
        for key, item in value.items():
            out += problems(args[1], item, f"{path}[{key!r}]", seen)
        return out
    if origin in (list, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return [f"{path}: {type(value).__name__}, expected an array"]
        for i, item in enumerate(value):
            out += problems(args[0], item, f"{path}[{i}]", seen)
        return out
    expected = {float: (int, float), int: (int,), str: (str,), bool: (bool,)}[tp]
    if not isinstance(value, expected) or (tp is not bool and isinstance(value, bool)):
        return [f"{path}: {value!r} is not a {tp.__name__}"]
    return out


def declared(tp: Any, out: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """Every (TypedDict, key) reachable from `tp`."""
    out = set() if out is None else out
    if is_typeddict(tp):
        for key, hint in get_type_hints(tp).items():
            if (tp.__name__, key) not in out:
                out.add((tp.__name__, key))
                declared(hint, out)
    else:
        for arg in get_args(tp):
            declared(arg, out)
    return out


def test_the_checker_catches_a_missing_an_undeclared_and_a_mistyped_key():
    state = {"manifest_hash": "h", "status": "done", "manifest": {}, "extra": 1}
    found = " | ".join(problems(RunState, state))
    assert "$.extra: not declared in RunState" in found
    assert "$.status: 'done' is not one of" in found
    assert "$.manifest.harness_version: missing (Manifest requires it)" in found


# ---- a real run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("schema") / "run"
    config = RunConfig(
        model="random",
        tasks="vignettes",
        limit=20,
        variants=["direct", "cot"],
        output=str(out),
        use_cache=False,
    )
    asyncio.run(run(config))
    return out


def test_a_run_writes_exactly_the_declared_keys(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    assert problems(RunResults, results) == []
    assert results["schema_version"] == SCHEMA_VERSION
    assert any("vs_direct" in e for e in results["results"]), "the run covers the optional paired delta"
    assert problems(RunState, json.loads((run_dir / "manifest.json").read_text())) == []
    fields = [f.name for f in dataclasses.fields(SampleRecord)]
    lines = (run_dir / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 40
    for line in lines:
        record = json.loads(line)
        assert list(record) == fields
        assert problems(ScoredRecord, compact_record(record)) == []
    assert load_run(run_dir) == results


def test_a_rescored_run_keeps_to_the_types(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    rescore_run(copy)
    results = json.loads((copy / "results.json").read_text())
    assert "rescored" in results["run"]
    assert problems(RunResults, results) == []


def test_aggregate_receives_scored_records(tmp_path, monkeypatch):
    cls = type(make_task("vignettes", {}))
    received: list[Any] = []
    original = cls.aggregate

    def spy(self, records):
        received.extend(records)
        return original(self, records)

    monkeypatch.setattr(cls, "aggregate", spy)
    asyncio.run(
        run(
            RunConfig(
                model="random",
                tasks="vignettes",
                limit=5,
                output=str(tmp_path / "run"),
                use_cache=False,
            )
        )
    )
    assert len(received) == 5
    keys = set(get_type_hints(ScoredRecord))
    for record in received:
        assert set(record) == keys, "the full record, optional cost fields included"
        assert problems(ScoredRecord, record) == []


# ---- the README ------------------------------------------------------------------------------------


def readme_section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION + "\n")
    end = text.find("\n## ", start + len(SECTION))
    return text[start : end if end != -1 else len(text)]


def _strip_comments(block: str) -> str:
    lines = []
    for line in block.splitlines():
        in_string = escaped = False
        for i, ch in enumerate(line):
            if in_string:
                escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
            elif ch == '"':
                in_string = True
            elif line.startswith("//", i):
                line = line[:i]
                break
        lines.append(line)
    return "\n".join(lines)


def readme_results_example() -> Any:
    """The section's jsonc example as data: `//` comments dropped, `{…}` (an open object, contents not
    shown) read as {}, a trailing `, …` (more keys, the backend's) dropped."""
    block = re.search(r"```jsonc\n(.*?)```", readme_section(), re.S)
    assert block, "the section shows results.json as a ```jsonc block"
    text = _strip_comments(block.group(1)).replace("{…}", "{}")
    return json.loads(re.sub(r",\s*…\s*}", "}", text))


def test_readme_results_example_has_exactly_the_keys_of_the_types():
    seen: set[tuple[str, str]] = set()
    assert problems(RunResults, readme_results_example(), seen=seen) == []
    missing = sorted(f"{t}.{k}" for t, k in declared(RunResults) - seen)
    assert missing == [], f"keys of the types that the README's results.json example does not show: {missing}"


def test_readme_tables_name_the_manifest_json_and_samples_jsonl_keys():
    section = readme_section()
    state = re.search(r"^\| `manifest\.json` \| `\{([^}]*)\}`", section, re.M)
    assert state and [k.strip() for k in state.group(1).split(",")] == list(get_type_hints(RunState))
    table = section[section.index("A `samples.jsonl` line") :]
    rows = re.findall(r"^\| (`[^|]*?`(?:, `[^|]*?`)*) \|", table.split("\n\n")[1], re.M)
    named = [name for cell in rows for name in re.findall(r"`([a-z_]+)`", cell)]
    assert named == [f.name for f in dataclasses.fields(SampleRecord)]


# ---- schema_version ---------------------------------------------------------------------------------


def _results_file(tmp_path: Path, **change: Any) -> Path:
    data = readme_results_example()
    data.update(change)
    for key in [k for k, v in change.items() if v is None]:
        del data[key]
    path = tmp_path / "run" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return path


def test_load_run_refuses_a_newer_schema_version(tmp_path):
    path = _results_file(tmp_path, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ConfigError) as info:
        load_run(path.parent)
    message = str(info.value)
    assert message.startswith(
        f"{path}: schema_version {SCHEMA_VERSION + 1} is newer than this emobench reads"
    )
    assert f"reads schema_version {SCHEMA_VERSION}" in message and "upgrade emobench" in message
    readme = " ".join(readme_section().split())
    quoted = re.sub(
        r"emobench \S+ reads", "emobench V reads", message.replace(str(path), "runs/…/results.json")
    )
    assert quoted.replace(str(SCHEMA_VERSION + 1), "2") in re.sub(
        r"emobench \S+ reads", "emobench V reads", readme
    )


def test_load_run_refuses_a_missing_or_odd_schema_version(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"results\.json: no schema_version, so not a results file written by "
        rf"emobench \(emobench \S+ reads schema_version {SCHEMA_VERSION}\)",
    ):
        load_run(_results_file(tmp_path / "a", schema_version=None))
    with pytest.raises(ConfigError, match=r"results\.json: unsupported schema_version '1'"):
        load_run(_results_file(tmp_path / "b", schema_version="1"))
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(
        ConfigError, match=r"list\.json: not an emobench results file \(a JSON object expected"
    ):
        load_run(tmp_path / "list.json")
    assert load_run(_results_file(tmp_path / "c"))["schema_version"] == SCHEMA_VERSION


def test_a_newer_results_file_is_one_line_and_exit_2_at_the_cli(tmp_path, capsys):
    path = _results_file(tmp_path, schema_version=SCHEMA_VERSION + 1)
    assert main(["show", str(path.parent)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"emobench: error: {path}: schema_version")
