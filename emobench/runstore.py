"""The run directory: the single contract that resume, rescoring, the leaderboard and `compare` read.

    manifest.json   what the run is (a pure function of it) and how far it got (`status`)
    samples.jsonl   one line per finished sample, appended and flushed as each one finishes
    results.json    metrics with CIs per (task, variant), written when the run ends
    *.svg           with results.json: reliability diagrams and wheel plots (emobench/leaderboard/figures.py)
    run.lock        locked (flock) by the process running in the directory, for as long as it runs

A killed run leaves at most one partial last line, which the next run drops. When a run finishes,
samples.jsonl is rewritten once in dataset order with one line per sample (the last attempt wins), so
an interrupted-and-resumed run ends with the same file as an uninterrupted one. That rewrite replaces
the file, so a second process appending at the same time would write into the replaced one and lose
its samples: hence the lock. The kernel drops it when its process ends, however it ends, so a killed
run never leaves a stale lock behind.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any, get_args

try:
    import fcntl
except ImportError:  # Windows: no flock; run directories are not locked there
    fcntl = None  # type: ignore[assignment]

from . import __version__
from .errors import ConfigError, EmobenchError
from .schema import SCHEMA_VERSION, Manifest, RunResults, RunState, Status
from .types import SampleRecord

SAMPLES = "samples.jsonl"
RESULTS = "results.json"
MANIFEST = "manifest.json"
LOCK = "run.lock"
STATUSES: tuple[Status, ...] = get_args(Status)  # all but `complete` are resumed


class RunDirError(EmobenchError):
    """The run directory cannot be written (read-only, disk full) or holds another run."""


def atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a reader never sees half a file."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None


class RunStore:
    def __init__(self, run_dir: str | Path):
        self.dir = Path(run_dir)
        self.samples_path = self.dir / SAMPLES
        self.results_path = self.dir / RESULTS
        self.manifest_path = self.dir / MANIFEST
        self._fh: IO[str] | None = None

    def _mkdir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunDirError(f"cannot create run directory {self.dir}: {exc.strerror or exc}") from None

    # ---- lock -------------------------------------------------------------------------------
    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's exclusive lock, or stop at once with one line naming its holder."""
        self._mkdir()
        if fcntl is None:
            yield
            return
        path = self.dir / LOCK
        try:
            fh = path.open("a+", encoding="utf-8")
        except OSError as exc:
            raise RunDirError(f"cannot create {path}: {exc.strerror or exc}") from None
        with fh:  # closing the file releases the lock
            self._acquire(fh, path)
            yield

    def _acquire(self, fh, path: Path) -> None:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "a process that is starting"
            raise RunDirError(
                f"{self.dir} is in use by another emobench run ({holder}); wait for it to "
                "finish, or pass another --output to run separately"
            ) from None
        except OSError as exc:
            raise RunDirError(f"cannot lock {path}: {exc.strerror or exc}") from None
        try:  # who holds it, for the message above
            fh.seek(0)
            fh.truncate()
            fh.write(
                f"pid {os.getpid()} on {socket.gethostname()}, since "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n"
            )
            fh.flush()
        except OSError as exc:
            raise RunDirError(f"cannot write {path}: {exc.strerror or exc}") from None

    # ---- manifest ---------------------------------------------------------------------------
    def read_state(self) -> RunState | None:
        if not self.manifest_path.exists():
            return None
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def write_state(self, manifest: Manifest, manifest_hash: str, status: Status) -> None:
        assert status in STATUSES, status
        self._mkdir()
        state: RunState = {"manifest_hash": manifest_hash, "status": status, "manifest": manifest}
        atomic_write(self.manifest_path, json.dumps(state, indent=2, default=str))

    # ---- samples ----------------------------------------------------------------------------
    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every complete line of samples.jsonl (a trailing partial line from a kill is skipped)."""
        if not self.samples_path.exists():
            return
        with self.samples_path.open("rb") as fh:
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                try:
                    yield json.loads(raw)
                except ValueError:
                    continue

    def finished(self) -> dict[str, str]:
        """key -> outcome of the latest record of each sample; `error` samples are retried."""
        return {rec["key"]: rec["outcome"] for rec in self.iter_records()}

    def open_for_append(self) -> None:
        self._drop_partial_line()
        try:
            self._fh = self.samples_path.open("a", encoding="utf-8")
        except OSError as exc:
            raise RunDirError(f"cannot write {self.samples_path}: {exc.strerror or exc}") from None

    def _drop_partial_line(self) -> None:
        if not self.samples_path.exists():
            return
        data = self.samples_path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with self.samples_path.open("r+b") as fh:
                fh.truncate(keep)

    def append(self, record: SampleRecord) -> None:
        assert self._fh is not None, "open_for_append() first"
        try:
            self._fh.write(record.to_json() + "\n")
            self._fh.flush()
        except OSError as exc:
            raise RunDirError(
                f"cannot append to {self.samples_path}: {exc.strerror or exc}; "
                "the samples finished so far are intact, rerun to resume"
            ) from None

    def close(self) -> None:
        if self._fh is not None:
            with suppress(OSError):
                self._fh.close()
            self._fh = None

    def compact(self, order: list[str]) -> None:
        """Rewrite samples.jsonl with one line per key (the last one written), in `order`."""
        offsets: dict[str, int] = {}
        with self.samples_path.open("rb") as fh:
            pos = 0
            for raw in fh:
                if raw.endswith(b"\n"):
                    with suppress(ValueError, KeyError):
                        offsets[json.loads(raw)["key"]] = pos
                pos += len(raw)
        tmp = self.samples_path.with_name(f".{SAMPLES}.compact")
        try:
            with self.samples_path.open("rb") as src, tmp.open("wb") as dst:
                for key in order:
                    if key in offsets:
                        src.seek(offsets[key])
                        dst.write(src.readline())
            os.replace(tmp, self.samples_path)
        except OSError as exc:
            raise RunDirError(f"cannot rewrite {self.samples_path}: {exc.strerror or exc}") from None

    def write_results(self, results: RunResults) -> None:
        """results.json, and the figures drawn from it, so that a rescored run's figures match it."""
        from .leaderboard.figures import write_run_figures  # markupsafe and the site: only once a run ends

        atomic_write(self.results_path, json.dumps(results, indent=2, default=str, allow_nan=True))
        write_run_figures(self.dir, results)


def load_run(path: str | Path) -> RunResults:
    """results.json of a run directory (or a results file given directly), of the schema version this
    emobench reads (`check_schema_version`)."""
    p = Path(path)
    p = p / RESULTS if p.is_dir() else p
    if not p.exists():
        raise RunDirError(f"{p}: no results file (did the run finish?)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise RunDirError(f"{p}: not valid JSON ({exc})") from None
    check_schema_version(p, data)
    return data


def check_schema_version(path: Path, data: Any) -> None:
    """Refuse, in one line, a results file whose `schema_version` is missing or is not the one this
    emobench reads: its fields may not mean what the readers take them to mean."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: not an emobench results file (a JSON object expected, found {type(data).__name__})"
        )
    version = data.get("schema_version")
    if version == SCHEMA_VERSION and type(version) is int:
        return
    reads = f"emobench {__version__} reads schema_version {SCHEMA_VERSION}"
    if "schema_version" not in data:
        raise ConfigError(f"{path}: no schema_version, so not a results file written by emobench ({reads})")
    if type(version) is int and version > SCHEMA_VERSION:
        raise ConfigError(
            f"{path}: schema_version {version} is newer than this emobench reads ({reads}); "
            "upgrade emobench to read it"
        )
    raise ConfigError(f"{path}: unsupported schema_version {version!r} ({reads})")
