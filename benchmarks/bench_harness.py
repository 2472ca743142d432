"""emobench against lm-eval 0.4.13 and inspect_ai 0.3.285 on the same single-call chat workload, plus
emobench's own targets (64-way request phase, resume of a finished 10k run, peak RSS, start-up, scaling).

    python benchmarks/bench_harness.py            # full: 400 items, medians of 3 interleaved runs
    python benchmarks/bench_harness.py --quick    # smoke test: 1 run, 40 items, small scaling sizes

Every harness runs as a subprocess against `python -m emobench.testing.server` (a separate process)
answering after 200 ms; wall time includes start-up. "Request phase" is first request to last reply
as the server saw them. Ratios are to the ideal `items x latency / concurrency`. Two floor rows
(benchmarks/floor_client.py: a bare asyncio loop over the openai SDK, and one over plain aiohttp) run
interleaved with emobench at concurrency 32 and 64, so that the harness's own cost and the SDK's are
told apart.
Writes benchmarks/results/harness.json and harness.md.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, ServerProcess, machine_info, measure, median, write_report, write_workload
from peers import ensure_peers, inspect_command, inspect_env, lm_eval_command, write_peer_tasks

LATENCY = 0.2
PEER_FIGURES = {  # the table, measured earlier on this machine class (for reference only)
    "lm-eval 0.4.13 (issue)": {"c1": 89.5, "c32": 11.4, "phase32": 2.63, "startup": 8.8, "rss": 449},
    "inspect_ai 0.3.285 (issue)": {"c1": 90.1, "c32": 9.2, "phase32": 5.1, "startup": 3.9, "rss": 187},
}


FLOORS = {"floor-sdk": "openai-sdk", "floor-aiohttp": "aiohttp"}  # row name -> floor_client.py mode
NAMES = {
    "emobench": "**emobench** (`openai/…`)",
    "lm-eval": "lm-eval 0.4.13 (`local-chat-completions`)",
    "inspect_ai": "inspect_ai 0.3.285 (`openai-api`)",
    "floor-sdk": "floor: bare loop over the `openai` SDK, no harness",
    "floor-aiohttp": "floor: bare loop over `aiohttp`, no SDK, no harness",
}


def floor_command(mode: str, task_yaml: Path, base_url: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        str(Path(__file__).resolve().parent / "floor_client.py"),
        mode,
        str(task_yaml.parent / "items.jsonl"),
        base_url,
        str(concurrency),
    ]


def emobench_command(
    task_yaml: Path, base_url: str, concurrency: int, out: Path, cache: bool = False
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "emobench.cli",
        "run",
        "--model",
        "openai/bench",
        "--base-url",
        base_url,
        "--task-file",
        str(task_yaml),
        "--concurrency",
        str(concurrency),
        "-q",
        "--output",
        str(out),
    ]
    return cmd if cache else [*cmd, "--no-cache"]


def one_run(server: ServerProcess, cmd: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    server.reset()
    m = measure(cmd, env=env, cwd=cwd)
    st = server.stats()
    phase = st["request_phase_s"]
    result = {
        "wall_s": round(m.wall_s, 3),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
        "returncode": m.returncode,
        "requests": st["requests"],
        "completed": st["completed"],
        "peak_in_flight": st["peak_in_flight"],
        "request_phase_s": round(phase, 3) if phase is not None else None,
        "startup_s": round(m.wall_s - phase, 3) if phase is not None else None,
    }
    if m.returncode != 0:
        result["output_tail"] = m.output[-800:]
    return result


def compare_peers(
    work: Path, n: int, concurrencies: list[int], runs: int, peers: dict[str, str | None], env: dict[str, str]
) -> dict[str, Any]:
    folder = work / "compare"
    task_yaml = write_workload(folder, n)
    write_peer_tasks(folder)
    harnesses = ["emobench", *FLOORS] + [p for p, why in peers.items() if why is None]
    raw: dict[str, dict[int, list[dict[str, Any]]]] = {h: {c: [] for c in concurrencies} for h in harnesses}
    with ServerProcess(latency=LATENCY) as server:
        for r in range(runs):  # interleaved: run r of every harness at every concurrency, then run r+1
            for c in concurrencies:
                for h in harnesses:
                    stamp = f"{h}-c{c}-r{r}"
                    if h in FLOORS:
                        if c == 1:  # one call at a time leaves nothing for a floor to show
                            continue
                        cmd, henv = floor_command(FLOORS[h], task_yaml, server.base_url, c), env
                    elif h == "emobench":
                        cmd, henv = emobench_command(task_yaml, server.base_url, c, folder / stamp), env
                    elif h == "lm-eval":
                        cmd = lm_eval_command(folder, server.base_url, c)
                        henv = {**env, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
                    else:
                        cmd, henv = inspect_command(folder, c), {**env, **inspect_env(server.base_url)}
                    res = one_run(server, cmd, henv, folder)
                    raw[h][c].append(res)
                    print(
                        f"  {h:10s} c={c:<3d} run {r + 1}/{runs}: wall {res['wall_s']:.2f}s, request phase "
                        f"{res['request_phase_s']}s, {res['completed']}/{n} replies, rc {res['returncode']}",
                        flush=True,
                    )
    summary: dict[str, Any] = {}
    for h in harnesses:
        summary[h] = {}
        for c in concurrencies:
            ideal = n * LATENCY / c
            rs = raw[h][c]
            if not rs:
                continue
            wall, phase = median([x["wall_s"] for x in rs]), median([x["request_phase_s"] for x in rs])
            summary[h][str(c)] = {
                "ideal_s": ideal,
                "wall_s": wall,
                "wall_ratio": wall / ideal if wall else None,
                "request_phase_s": phase,
                "request_phase_ratio": phase / ideal if phase else None,
                "startup_s": median([x["startup_s"] for x in rs]),
                "peak_rss_mb": median([x["peak_rss_mb"] for x in rs]),
                "peak_in_flight": max(x["peak_in_flight"] for x in rs),
                "all_replied": all(x["completed"] >= n and x["returncode"] == 0 for x in rs),
                "runs": rs,
            }
    return {
        "items": n,
        "latency_s": LATENCY,
        "runs": runs,
        "concurrencies": concurrencies,
        "peers_skipped": {p: why for p, why in peers.items() if why},
        "harnesses": summary,
    }


def wide_concurrency(work: Path, n: int, runs: int, env: dict[str, str]) -> dict[str, Any]:
    """n calls at concurrency 64, emobench interleaved with the floors: each one's request phase against
    the ideal (medians of `runs`), and the concurrency the server saw."""
    folder = work / "c64"
    task_yaml = write_workload(folder, n)
    ideal = n * LATENCY / 64
    raw: dict[str, list[dict[str, Any]]] = {h: [] for h in ["emobench", *FLOORS]}
    with ServerProcess(latency=LATENCY) as server:
        for r in range(runs):
            for h in raw:
                cmd = (
                    floor_command(FLOORS[h], task_yaml, server.base_url, 64)
                    if h in FLOORS
                    else emobench_command(task_yaml, server.base_url, 64, folder / f"run{r}")
                )
                raw[h].append(one_run(server, cmd, env, folder))
    out: dict[str, Any] = {"items": n, "ideal_s": ideal, "runs": runs}
    for h, rs in raw.items():
        phase, wall = median([x["request_phase_s"] for x in rs]), median([x["wall_s"] for x in rs])
        out[h] = {
            "request_phase_s": phase,
            "request_phase_ratio": phase / ideal,
            "wall_s": wall,
            "wall_ratio": wall / ideal,
            "peak_in_flight": max(x["peak_in_flight"] for x in rs),
            "all_replied": all(x["completed"] >= n and x["returncode"] == 0 for x in rs),
            "runs": rs,
        }
        print(
            f"  {h:14s} c=64: request phase {phase:.3f} s ({phase / ideal:.3f}x), wall {wall:.2f} s",
            flush=True,
        )
    return out


def big_run_and_resume(work: Path, n: int, env: dict[str, str]) -> dict[str, Any]:
    """An n-sample run with a fast server (peak RSS), then the same command again (0 calls, seconds)."""
    folder = work / "big"
    task_yaml = write_workload(folder, n)
    with ServerProcess(latency=0.0) as server:
        cmd = emobench_command(task_yaml, server.base_url, 32, folder / "run", cache=True)
        first = one_run(server, cmd, env, folder)
        again = one_run(server, cmd, env, folder)
    return {"items": n, "first": first, "rerun": again}


def help_time(env: dict[str, str], repeats: int = 7) -> dict[str, Any]:
    exe = shutil.which("emobench")
    cmd = [exe, "--help"] if exe else [sys.executable, "-m", "emobench.cli", "--help"]
    walls = [measure(cmd, env=env).wall_s for _ in range(repeats)]
    return {
        "command": " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)),
        "median_s": median(walls),
        "walls_s": [round(w, 3) for w in walls],
    }


def default_run(work: Path, env: dict[str, str]) -> dict[str, Any]:
    """`emobench run` with no arguments (embedded model, default suite), when the embedded model is here."""
    try:
        from emobench.models.llamacpp import embedded_model_path

        embedded_model_path()
        import llama_cpp  # noqa: F401
    except Exception as exc:  # any reason means "not available here"
        return {"skipped": f"embedded model not available ({type(exc).__name__}: {str(exc)[:120]})"}
    m = measure(
        [sys.executable, "-m", "emobench.cli", "run", "-q", "--output", str(work / "default")],
        env=env,
        timeout=600,
    )
    return {
        "wall_s": round(m.wall_s, 2),
        "peak_rss_mb": round(m.peak_rss_mb, 1),
        "returncode": m.returncode,
        **({"output_tail": m.output[-800:]} if m.returncode else {}),
    }


def scaling(work: Path, sizes: list[int], env: dict[str, str]) -> dict[str, Any]:
    points = []
    with ServerProcess(latency=0.0) as server:
        for n in sizes:
            folder = work / f"scale{n}"
            task_yaml = write_workload(folder, n)
            res = one_run(
                server, emobench_command(task_yaml, server.base_url, 32, folder / "run"), env, folder
            )
            res.update(
                items=n,
                us_per_sample=round(1e6 * res["wall_s"] / n, 1),
                phase_us_per_sample=round(1e6 * (res["request_phase_s"] or 0) / n, 1),
            )
            points.append(res)
            print(
                f"  scaling n={n}: wall {res['wall_s']:.2f}s ({res['us_per_sample']} us/sample), "
                f"peak RSS {res['peak_rss_mb']} MB",
                flush=True,
            )
    first, last = points[0], points[-1]
    return {
        "points": points,
        "per_sample_ratio_largest_vs_smallest": round(
            last["phase_us_per_sample"] / first["phase_us_per_sample"], 3
        ),
    }


def fmt(x: float | None, nd: int = 1) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def markdown(data: dict[str, Any]) -> str:
    comp = data["compare"]
    c_lo, c_hi = min(comp["concurrencies"]), max(comp["concurrencies"])
    n = comp["items"]
    lines = [
        f"### {n} single-call chat items, loopback server answering after {int(LATENCY * 1000)} ms "
        f"(medians of {comp['runs']} interleaved runs, same machine, same run)",
        "",
        f"| harness | concurrency {c_lo} (ideal {n * LATENCY / c_lo:g} s) | concurrency {c_hi} "
        f"(ideal {n * LATENCY / c_hi:g} s) | request phase at {c_hi} | fixed start-up | peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for h, per_c in comp["harnesses"].items():
        lo, hi = per_c.get(str(c_lo)), per_c[str(c_hi)]
        low = f"{fmt(lo['wall_s'])} s ({fmt(lo['wall_ratio'], 2)}×)" if lo else "-"
        rss = max(lo["peak_rss_mb"], hi["peak_rss_mb"]) if lo else hi["peak_rss_mb"]
        lines.append(
            f"| {NAMES.get(h, h)} | {low} | {fmt(hi['wall_s'])} s ({fmt(hi['wall_ratio'], 2)}×) | "
            f"{fmt(hi['request_phase_s'], 2)} s ({fmt(hi['request_phase_ratio'], 2)}×) | "
            f"{fmt(hi['startup_s'])} s | {fmt(rss, 0)} MB |"
        )
    for p, why in comp["peers_skipped"].items():
        lines.append(f"| {p} | {why} | | | | |")
    w = data["c64"]
    lines += [
        "",
        f"### {w['items']} calls at concurrency 64 (ideal {w['ideal_s']:g} s; medians of {w['runs']} "
        "interleaved runs)",
        "",
        "| client | request phase | wall |",
        "|---|---|---|",
    ]
    for h in ["emobench", *FLOORS]:
        x = w[h]
        lines.append(
            f"| {NAMES[h]} | {x['request_phase_s']:.2f} s ({x['request_phase_ratio']:.3f}×) | "
            f"{x['wall_s']:.2f} s |"
        )
    t = data["targets"]
    lines += ["", "### emobench targets", "", "| target | measured | goal | met |", "|---|---|---|---|"]
    for row in t:
        lines.append(
            f"| {row['target']} | {row['measured']} | {row['goal']} | {'yes' if row['met'] else 'NO'} |"
        )
    lines += [
        "",
        f"Machine: {data['machine']['cpus']} CPUs, Python {data['machine']['python']}, load average "
        f"at start {data['machine']['loadavg_at_start']}; {data['elapsed_s']:.0f} s in all.",
        "",
    ]
    return "\n".join(lines)


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    comp = data["compare"]["harnesses"]
    emo = comp["emobench"]
    goals = {1: 1.03, 32: 1.25}
    for c, per in emo.items():
        goal = goals.get(int(c))
        if goal:
            rows.append(
                {
                    "target": f"wall at concurrency {c} / ideal",
                    "measured": f"{per['wall_ratio']:.3f}×",
                    "goal": f"≤ {goal}×",
                    "met": per["wall_ratio"] <= goal and per["all_replied"],
                }
            )
        peers = [
            comp[p][c]["wall_s"]
            for p in comp
            if p != "emobench" and p not in FLOORS and comp[p][c]["all_replied"]
        ]
        if peers:
            rows.append(
                {
                    "target": f"faster than every peer at concurrency {c}",
                    "measured": f"{per['wall_s']:.2f} s vs {min(peers):.2f} s",
                    "goal": "faster",
                    "met": per["wall_s"] < min(peers),
                }
            )
    w, e = data["c64"], data["c64"]["emobench"]
    rows.append(
        {
            "target": f"{w['items']} calls at concurrency 64: request phase / ideal",
            "measured": f"{e['request_phase_ratio']:.3f}× ({e['request_phase_s']:.2f} s)",
            "goal": "≤ 1.05×",
            "met": e["request_phase_ratio"] <= 1.05 and e["all_replied"],
        }
    )
    rows.append(
        {
            "target": "server-observed peak concurrency",
            "measured": str(e["peak_in_flight"]),
            "goal": "64",
            "met": e["peak_in_flight"] == 64,
        }
    )
    b = data["big"]
    rows.append(
        {
            "target": f"re-run a finished {b['items']}-sample run: model calls",
            "measured": str(b["rerun"]["requests"]),
            "goal": "0",
            "met": b["rerun"]["requests"] == 0,
        }
    )
    rows.append(
        {
            "target": f"re-run a finished {b['items']}-sample run: wall",
            "measured": f"{b['rerun']['wall_s']:.2f} s",
            "goal": "≤ 3 s",
            "met": b["rerun"]["wall_s"] <= 3.0,
        }
    )
    rows.append(
        {
            "target": f"peak RSS of a {b['items']}-sample run",
            "measured": f"{b['first']['peak_rss_mb']:.0f} MB",
            "goal": "≤ 250 MB",
            "met": b["first"]["peak_rss_mb"] <= 250,
        }
    )
    h = data["help"]
    rows.append(
        {
            "target": "`emobench --help`",
            "measured": f"{h['median_s']:.3f} s",
            "goal": "≤ 0.3 s",
            "met": h["median_s"] <= 0.3,
        }
    )
    d = data["default_run"]
    if "skipped" in d:
        rows.append(
            {
                "target": "`emobench run` (embedded default)",
                "measured": d["skipped"],
                "goal": "≤ 60 s",
                "met": False,
            }
        )
    else:
        rows.append(
            {
                "target": "`emobench run` (embedded default)",
                "measured": f"{d['wall_s']:.1f} s",
                "goal": "≤ 60 s",
                "met": d["wall_s"] <= 60 and d["returncode"] == 0,
            }
        )
    s = data["scaling"]
    pts = ", ".join(
        f"{p['items']}: {p['wall_s']:.1f} s ({p['phase_us_per_sample']:.0f} µs/sample)" for p in s["points"]
    )
    rows.append(
        {
            "target": "scaling (fast server): request-phase time per sample, largest / smallest",
            "measured": f"{s['per_sample_ratio_largest_vs_smallest']:.2f} ({pts})",
            "goal": "linear (≤ 1.3)",
            "met": s["per_sample_ratio_largest_vs_smallest"] <= 1.3,
        }
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 run, 40 items, small sizes (smoke test)")
    ap.add_argument("--runs", type=int, default=None, help="interleaved runs per cell (default 3, quick 1)")
    ap.add_argument("--items", type=int, default=None, help="items in the peer comparison (default 400)")
    ap.add_argument("--no-peers", action="store_true", help="emobench only")
    ap.add_argument("--no-install", action="store_true", help="do not create the peers' venv")
    ap.add_argument("--name", default=None, help="results file name (default harness, quick: harness-quick)")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers and peers cleanly
    quick = args.quick
    runs = args.runs or (1 if quick else 3)
    n = args.items or (40 if quick else 400)
    name = args.name or ("harness-quick" if quick else "harness")
    t0 = time.perf_counter()
    info = machine_info()
    peers = (
        {"lm-eval": "skipped: --no-peers", "inspect_ai": "skipped: --no-peers"}
        if args.no_peers
        else ensure_peers(install=not args.no_install)
    )
    for p, why in peers.items():
        if why:
            print(f"{p}: {why}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="emobench-bench-"))
    env = {"EMOBENCH_CACHE_DIR": str(work / "cache"), "CI": "true", "PYTHONPATH": str(ROOT)}
    try:
        data: dict[str, Any] = {"name": name, "quick": quick, "machine": info}
        print(f"[1/6] peer comparison: {n} items, concurrency 1 and 32, {runs} run(s)", flush=True)
        data["compare"] = compare_peers(work, n, [1, 32], runs, peers, env)
        print("[2/6] 1,000 calls at concurrency 64", flush=True)
        data["c64"] = wide_concurrency(work, 200 if quick else 1000, runs, env)
        print("[3/6] finished run re-run and peak RSS", flush=True)
        data["big"] = big_run_and_resume(work, 2000 if quick else 10_000, env)
        print("[4/6] emobench --help", flush=True)
        data["help"] = help_time(env)
        print("[5/6] emobench run on the embedded default", flush=True)
        data["default_run"] = {"skipped": "not run in --quick"} if quick else default_run(work, env)
        print("[6/6] scaling", flush=True)
        data["scaling"] = scaling(work, [500, 2000, 5000] if quick else [1000, 10_000, 50_000], env)
        data["machine"]["loadavg_at_end"] = [round(x, 2) for x in __import__("os").getloadavg()]
        data["elapsed_s"] = time.perf_counter() - t0
        data["targets"] = targets(data)
        md = markdown(data)
        jpath, mpath = write_report(name, data, md)
        print(md)
        print(f"wrote {jpath.relative_to(ROOT)} and {mpath.relative_to(ROOT)}")
        return 0 if all(r["met"] for r in data["targets"]) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
