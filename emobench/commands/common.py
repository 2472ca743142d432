"""Arguments shared by the commands that talk to a model (run, refine, doctor)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError


def key_values(pairs: list[str] | None, flag: str) -> dict[str, Any]:
    """`k=v` pairs -> dict, with values read as YAML scalars (numbers, booleans) where they parse."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} expects key=value, got {pair!r}")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        out[key.strip()] = parsed if isinstance(parsed, (int, float, bool, str)) or parsed is None else value
    return out


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        "-m",
        default=None,
        help="model spec (default: the embedded SmolLM2-135M-Instruct); see `emobench list models`",
    )
    g.add_argument("--model-arg", action="append", metavar="K=V", help="backend option, repeatable")
    g.add_argument("--base-url", default=None, help="OpenAI-compatible server URL (else $OPENAI_BASE_URL)")
    g.add_argument("--system-prompt", default=None, help="prepended to every conversation")
    g.add_argument("--temperature", type=float, default=None, help="override the tasks' temperature")
    g.add_argument("--max-tokens", type=int, default=None, help="override the tasks' completion limit")
    g.add_argument("--concurrency", "-c", type=int, default=8, help="model calls in flight (default 8)")
    g.add_argument("--timeout", type=float, default=120.0, help="seconds per request (default 120)")
    g.add_argument("--max-retries", type=int, default=6, help="retries of a failed call (default 6)")


def add_task_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tasks")
    g.add_argument(
        "--tasks", "-t", default=None, help="comma-separated tasks or suites (default: the offline suite)"
    )
    g.add_argument("--task-file", action="append", default=[], metavar="YAML", help="a no-code task file")
    g.add_argument(
        "--task-arg",
        action="append",
        metavar="K=V",
        help="task option (`lang=zh` for every selected task that has it, `emobench_ea.lang=zh` for "
        "one); an option that no selected task takes is an error",
    )
    g.add_argument("--limit", type=int, default=None, help="first N samples of each task")
    g.add_argument(
        "--data-dir",
        default=None,
        help="local folder with the original dataset files "
        "(else $EMOBENCH_DATA_DIR, else the Hugging Face hub)",
    )
