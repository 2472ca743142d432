"""The peer harnesses (lm-eval, inspect_ai) in their own virtual environment, and the command that runs
each of them on the same workload as emobench.

The venv (`benchmarks/.venv-peers`, git-ignored by a `.gitignore` inside it) is created on first use
with the pinned versions (plus `openai`, which inspect_ai needs for `openai-api`); a peer that does not install or import is skipped with a clear message.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _common import PEERS_VENV

from emobench.testing.workload import PROMPT_TAIL

LM_EVAL = "lm-eval==0.4.13"
INSPECT = "inspect-ai==0.3.285"


def venv_python() -> Path:
    return PEERS_VENV / "bin" / "python"


def ensure_peers(install: bool = True) -> dict[str, str | None]:
    """name -> None when usable, else the reason it is skipped."""
    if not venv_python().exists() and install:
        print(f"creating {PEERS_VENV} with {LM_EVAL} and {INSPECT} (once; a few minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
        (PEERS_VENV / ".gitignore").write_text("*\n")
        proc = subprocess.run(
            [str(venv_python()), "-m", "pip", "install", "-q", LM_EVAL, INSPECT, "openai"],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"peer install failed: {proc.stderr.strip().splitlines()[-1:]}", flush=True)
    status: dict[str, str | None] = {}
    for name, module in (("lm-eval", "lm_eval"), ("inspect_ai", "inspect_ai")):
        if not venv_python().exists():
            status[name] = f"skipped: {PEERS_VENV} missing (run without --no-install to create it)"
            continue
        proc = subprocess.run([str(venv_python()), "-c", f"import {module}"], capture_output=True, text=True)
        status[name] = (
            None
            if proc.returncode == 0
            else f"skipped: {module} does not import in {PEERS_VENV}: {proc.stderr.strip().splitlines()[-1:]}"
        )
    return status


def write_peer_tasks(folder: Path) -> None:
    """lm-eval task YAML and inspect_ai task file reading the same items.jsonl with the same prompt."""
    data = (folder / "items.jsonl").resolve()
    lm_dir = folder / "lm_eval_tasks"
    lm_dir.mkdir(exist_ok=True)
    doc_to_text = "{{text}}\n" + PROMPT_TAIL
    (lm_dir / "bench_chat.yaml").write_text(
        "task: bench_chat\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {json.dumps(str(data))}\n"
        "test_split: test\n"
        "output_type: generate_until\n"
        f"doc_to_text: {json.dumps(doc_to_text)}\n"
        "doc_to_target: label\n"
        "generation_kwargs:\n  until: []\n  max_gen_toks: 16\n  do_sample: false\n  temperature: 0.0\n"
        "metric_list:\n  - metric: exact_match\n",
        encoding="utf-8",
    )
    (folder / "inspect_task.py").write_text(
        f"""
from inspect_ai import Task, task
from inspect_ai.dataset import Sample, json_dataset
from inspect_ai.scorer import includes
from inspect_ai.solver import generate

TAIL = {PROMPT_TAIL!r}


def record(r):
    return Sample(id=r["id"], input=r["text"] + "\\n" + TAIL, target=r["label"])


@task
def bench_chat():
    return Task(dataset=json_dataset({str(data)!r}, record), solver=[generate()], scorer=includes())
""",
        encoding="utf-8",
    )


def lm_eval_command(folder: Path, base_url: str, concurrency: int) -> list[str]:
    args = (
        f"model=bench,base_url={base_url}/chat/completions,num_concurrent={concurrency},"
        "max_retries=3,tokenized_requests=False,tokenizer_backend=None"
    )
    return [
        str(PEERS_VENV / "bin" / "lm_eval"),
        "--model",
        "local-chat-completions",
        "--model_args",
        args,
        "--tasks",
        "bench_chat",
        "--include_path",
        str(folder / "lm_eval_tasks"),
        "--apply_chat_template",
        "--output_path",
        str(folder / "lm_eval_out"),
    ]


def inspect_command(folder: Path, concurrency: int) -> list[str]:
    return [
        str(PEERS_VENV / "bin" / "inspect"),
        "eval",
        "inspect_task.py",  # relative: inspect globs it
        "--model",
        "openai-api/bench/bench",
        "--max-connections",
        str(concurrency),
        "--max-tokens",
        "16",
        "--log-dir",
        str(folder / "inspect_logs"),
        "--display",
        "plain",
        "--no-fail-on-error",
    ]


def inspect_env(base_url: str) -> dict[str, str]:
    return {"BENCH_BASE_URL": base_url, "BENCH_API_KEY": "sk-bench", "INSPECT_LOG_LEVEL": "warning"}
