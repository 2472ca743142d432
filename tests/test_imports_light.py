"""The base install stays light: `emobench --help` and an API run never import the heavy libraries that
only the local backends need (checked in a fresh interpreter, so nothing imported by other tests counts)."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "transformers", "vllm", "lm_eval", "llama_cpp")
API_SDKS = ("openai", "litellm")  # needed for API runs, but `--help` must not pay for them

PROBE = """
import sys
from emobench.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
heavy = [m for m in {heavy!r} if m in sys.modules]
print("HEAVY", heavy)
sys.exit(3 if heavy else int(rc or 0))
"""


def run_probe(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True, timeout=300
    )


def test_help_imports_no_model_library_nor_api_sdk():
    probe = PROBE.format(heavy=HEAVY + API_SDKS)
    proc = subprocess.run(
        [sys.executable, "-c", probe, "--help"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "HEAVY []" in proc.stdout


def test_an_api_run_imports_no_model_library(server, tmp_path):
    proc = run_probe(
        "run",
        "--model",
        "openai/test-model",
        "--base-url",
        server.base_url,
        "--tasks",
        "vignettes",
        "--limit",
        "3",
        "-o",
        str(tmp_path / "run"),
        "--no-cache",
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout


def test_console_exit_flushes_output_runs_exit_handlers_and_keeps_the_code(tmp_path):
    """`entry()` skips only the interpreter's module teardown: piped output arrives whole, atexit
    handlers run, and the command's exit code comes through (0 for `list`, 2 for a user error)."""
    marker = tmp_path / "atexit-ran"
    script = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
        "from emobench.cli import entry\n"
        "sys.argv = ['emobench', *sys.argv[1:]]\n"
        "entry()\n"
    )
    listed = subprocess.run(
        [sys.executable, "-c", script, "list", "tasks"], capture_output=True, text=True, timeout=300
    )
    assert listed.returncode == 0, listed.stderr
    assert marker.read_text() == "yes"
    lines = listed.stdout.splitlines()
    assert any(line.startswith("vignettes ") for line in lines) and len(lines) >= 8
    bad = subprocess.run(
        [sys.executable, "-c", script, "run", "--model", "nosuch/model", "--limit", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("emobench: error: unknown model spec")


def test_an_lm_eval_export_reads_no_data_and_imports_no_hub_library(tmp_path):
    """The export only writes YAML: lm-eval has emobench load the data when it runs a task."""
    probe = PROBE.format(heavy=HEAVY + ("datasets", "huggingface_hub"))
    proc = subprocess.run(
        [sys.executable, "-c", probe, "export", "lm-eval", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "HEAVY []" in proc.stdout
