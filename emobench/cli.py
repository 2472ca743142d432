"""The `emobench` command. Each subcommand lives in `emobench/commands/<name>.py` and is imported only
when used, so `emobench --help` stays fast and never loads a model library.

A subcommand is one line in `COMMANDS` (its help text) and a module that defines
`add_arguments(parser)` and `run(args) -> int`, the exit code, one of the codes in `emobench.errors`
(0 ok, 1 a check failed, 2 bad input, 3 model calls failed). User errors (EmobenchError) print one line on stderr and exit with their code (2), never a
traceback.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import sys
import threading

COMMANDS: dict[str, str] = {
    "run": "run tasks against a model and write a run directory",
    "list": "list tasks, models, variants or suites",
    "show": "print the results of a run directory",
    "rescore": "score an existing run directory again without calling the model",
    "import": "import predictions made elsewhere into a run directory",
    "compare": "compare two runs per task; exit 1 on a significant regression (CI gate)",
    "leaderboard": "build the static leaderboard site",
    "audit-keywords": "check vignette items for emotion keywords and other leakage",
    "refine": "optimise a task's instruction on its dev split (APOLO-style agents)",
    "export": "export tasks for other harnesses (lm-eval)",
    "doctor": "check a model backend: device, dtype, chat template, three canned prompts",
    "probe": "probe a model's hidden states for affect reception and emotion categorization",
    "judge-check": "check a judge model on responses of known quality before trusting it with a run",
}


def _module_name(command: str) -> str:
    if command == "import":  # `import` is a Python keyword: the module has a longer name
        return "emobench.commands.import_predictions"
    return "emobench.commands." + command.replace("-", "_")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emobench", description="Measure the emotional intelligence of LLMs."
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"emobench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(_module_name(name))
            module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in COMMANDS:
        command = None
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    from .errors import EmobenchError

    try:
        module = importlib.import_module(_module_name(args.command))
        return int(module.run(args) or 0)
    except EmobenchError as exc:
        print(f"emobench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emobench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script. `main` has closed every file it wrote; the exit handlers run as usual, and
    only the interpreter's teardown of the ~2,000 modules a run imports is skipped (0.25 s on 2 cores,
    a tenth of a 32-way benchmark run). With another non-daemon thread alive it exits the normal way.
    Tests call `main()`, which never exits."""
    code = main()
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()  # the first step of a normal exit, run here by hand
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # a closed pipe (`emobench show | head`)
        pass
    os._exit(code)


if __name__ == "__main__":
    entry()
