"""`emobench --help` and an API run never import the heavy model libraries (lazy imports)."""

from __future__ import annotations

import json
import subprocess
import sys

from reliability_support import write_task

HEAVY = ("torch", "transformers", "vllm", "lm_eval", "llama_cpp", "litellm", "openai", "accelerate")

PROBE = """
import json, sys
from emobench.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted({m.split('.')[0] for m in sys.modules} & set(json.loads(HEAVY)))
print('HEAVY=' + json.dumps(heavy), file=sys.stderr)
"""


def _imported(args: list[str]) -> list[str]:
    code = "HEAVY = " + repr(json.dumps(HEAVY)) + "\n" + PROBE
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    line = [x for x in res.stderr.splitlines() if x.startswith("HEAVY=")]
    assert line, res.stderr
    return json.loads(line[-1][len("HEAVY="):])


def test_help_imports_no_model_library():
    assert _imported(["--help"]) == []


def test_api_run_imports_no_model_library(server, tmp_path):
    task = write_task(tmp_path / "task", 5)
    assert _imported(["run", "--model", "openai/loopback", "--base-url", server.base_url, "--task-file",
                      str(task), "-q", "--output", str(tmp_path / "run")]) == []
    assert server.state.requests == 5
