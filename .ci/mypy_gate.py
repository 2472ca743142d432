"""mypy over emobench/, gated on a baseline that only shrinks.

    python .ci/mypy_gate.py            # exit 1 if any file has more errors than .ci/mypy-baseline.json
    python .ci/mypy_gate.py --update   # after fixing errors: write the smaller counts back

Why a baseline: the code base predates type checking, so "mypy clean" is reached file by file; the
gate stops new errors from landing while the old ones are paid off. A file absent from the baseline
must be clean.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.json"
ERROR = re.compile(r"^(?P<path>[^:]+\.py):\d+(?::\d+)?: error: ")


def mypy_errors() -> tuple[Counter[str], str]:
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "emobench"], cwd=ROOT, capture_output=True, text=True
    )
    if proc.returncode not in (0, 1):  # 2: mypy itself failed (bad config, crash)
        sys.exit(f"mypy failed to run (exit {proc.returncode}):\n{proc.stdout}{proc.stderr}")
    counts = Counter(m["path"] for line in proc.stdout.splitlines() if (m := ERROR.match(line)))
    return counts, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update", action="store_true", help="write the current counts as the new baseline")
    args = ap.parse_args()
    counts, output = mypy_errors()
    baseline: dict[str, int] = json.loads(BASELINE.read_text()) if BASELINE.exists() else {}
    if args.update:
        BASELINE.write_text(json.dumps(dict(sorted(counts.items())), indent=1) + "\n")
        print(f"mypy baseline: {sum(counts.values())} errors in {len(counts)} files")
        return 0
    worse = {p: (n, baseline.get(p, 0)) for p, n in counts.items() if n > baseline.get(p, 0)}
    total, allowed = sum(counts.values()), sum(baseline.values())
    if worse:
        print(output)
        for path, (n, limit) in sorted(worse.items()):
            print(f"mypy: {path}: {n} errors, the baseline allows {limit}")
        return 1
    note = " (fewer than the baseline: run `python .ci/mypy_gate.py --update`)" if total < allowed else ""
    print(f"mypy: {total} errors, baseline {allowed}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
