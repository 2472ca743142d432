"""Run every `benchmarks/bench_*.py`, each in its own process, and summarise what each wrote.

    python benchmarks/run_all.py            # full runs (about 20 minutes on 2 cores)
    python benchmarks/run_all.py --quick    # --quick to the benchmarks that have it (smoke test)

Arguments after the known ones are passed to every benchmark. Results land in benchmarks/results/
(<name>.json + <name>.md per benchmark); the exit status is non-zero when any benchmark failed or
missed a target.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    ap.add_argument("--only", default=None, help="comma-separated benchmark names (e.g. harness,retrieval)")
    args, passthrough = ap.parse_known_args(argv)
    scripts = sorted(HERE.glob("bench_*.py"))
    if args.only:
        wanted = {f"bench_{n.strip()}.py" for n in args.only.split(",")}
        scripts = [s for s in scripts if s.name in wanted]
    status: list[tuple[str, int, float]] = []
    for script in scripts:
        quick = args.quick and "--quick" in script.read_text(encoding="utf-8")  # only where it is understood
        cmd = [sys.executable, str(script), *(["--quick"] if quick else []), *passthrough]
        print(f"==> {script.name}", flush=True)
        start = time.perf_counter()
        rc = subprocess.run(cmd, cwd=HERE.parent).returncode
        status.append((script.name, rc, time.perf_counter() - start))
    print("\nbenchmark            exit  seconds")
    for name, rc, secs in status:
        print(f"{name:20s} {rc:4d}  {secs:7.1f}")
    return 0 if all(rc == 0 for _, rc, _ in status) else 1


if __name__ == "__main__":
    sys.exit(main())
