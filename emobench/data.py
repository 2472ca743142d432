"""Reading dataset files safely: every malformed row is reported with its file and line.

Public datasets are loaded from a local folder (`--data-dir` / `EMOBENCH_DATA_DIR`) when the user names
one, else from the Hugging Face hub through `datasets`; `hub_unavailable` decides, within seconds, when
the hub cannot be used. Nothing is copied into the project.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import DataError

MAX_LINE_BYTES = 64 * 1024 * 1024  # a line larger than this is refused rather than loaded


def _decode(path: Path, raw: bytes, line_no: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"not valid UTF-8 (byte {exc.start})", line_no) from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; raise DataError on the first bad one."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "file not found")
    seen = False
    with path.open("rb") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if len(raw) > MAX_LINE_BYTES:
                raise DataError(
                    str(path), f"line is {len(raw)} bytes, over the {MAX_LINE_BYTES} byte limit", line_no
                )
            text = _decode(path, raw, line_no).strip()
            if not text:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                raise DataError(
                    str(path), f"invalid JSON ({exc.msg} at column {exc.colno})", line_no
                ) from None
            if not isinstance(obj, dict):
                raise DataError(str(path), f"expected a JSON object, got {type(obj).__name__}", line_no)
            seen = True
            yield line_no, obj
    if not seen:
        raise DataError(str(path), "file is empty")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "file not found")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(str(path), "file is empty")
    try:
        return json.loads(_decode(path, raw, 1))
    except json.JSONDecodeError as exc:
        raise DataError(str(path), f"invalid JSON ({exc.msg} at column {exc.colno})", exc.lineno) from None


def read_csv(path: str | Path, delimiter: str | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) from a CSV/TSV file with a header row."""
    path = Path(path)
    if not path.exists():
        raise DataError(str(path), "file not found")
    raw = path.read_bytes()
    for line_no, line in enumerate(raw.splitlines(), start=1):
        _decode(path, line, line_no)
    text = raw.decode("utf-8-sig")
    if not text.strip():
        raise DataError(str(path), "file is empty")
    delimiter = delimiter or ("\t" if path.suffix == ".tsv" else ",")
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = reader.fieldnames or []
    for row in reader:
        if None in row or any(v is None for v in row.values()):
            raise DataError(
                str(path), f"row has {len(row)} fields, header has {len(header)}", reader.line_num
            )
        yield reader.line_num, row


def require(path: str | Path, line: int | None, obj: dict[str, Any], *fields: str) -> None:
    missing = [f for f in fields if f not in obj]
    if missing:
        raise DataError(str(path), f"missing field(s) {', '.join(map(repr, missing))}", line)


def read_yaml_mapping(path: str | Path, allowed: set[str], what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping with only `allowed` keys (task files, leaderboards);
    anything else is a ConfigError naming the file."""
    import yaml

    from .errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    unknown = set(spec) - allowed
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    return spec


def data_dir(explicit: str | Path | None = None) -> Path | None:
    """The local folder holding original dataset files, if the user named one."""
    value = explicit or os.environ.get("EMOBENCH_DATA_DIR")
    return Path(value).expanduser() if value else None


def find_local(data_root: Path | None, *candidates: str) -> Path | None:
    """First existing file among `candidates` under `data_root` (also searched one folder down)."""
    if data_root is None:
        return None
    if not data_root.is_dir():
        raise DataError(str(data_root), "data folder not found (from --data-dir or $EMOBENCH_DATA_DIR)")
    for name in candidates:
        for base in (data_root, *sorted(p for p in data_root.iterdir() if p.is_dir())):
            if (base / name).exists():
                return base / name
    return None


HUB_CONNECT_TIMEOUT_S = 5.0  # the one attempt to reach the hub; the libraries' own retries take 25 s and more
_OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def hub_unavailable() -> str | None:
    """Why the Hugging Face hub cannot be used now, or None when it answered.

    This is the one place that decides, for every hub access, so that a machine without network gets
    the same clear error within seconds instead of sitting in the hub libraries' retries (5 retries with
    backoff per file: 25 s per dataset, minutes for a whole suite). The offline switches are read at
    call time: the libraries read them once, at import, which may be before a test or a notebook sets
    them. Otherwise the answer is one request to the endpoint, remembered for the process.
    """
    for name in _OFFLINE_SWITCHES:
        if os.environ.get(name, "").lower() in ("1", "true", "yes", "on"):
            return f"{name} is set"
    from huggingface_hub import constants  # only needed without --data-dir

    return _probe(constants.ENDPOINT)


@cache
def _probe(endpoint: str) -> str | None:
    from huggingface_hub import get_session  # the libraries' own client: same proxies, same TLS

    try:
        get_session().head(endpoint, timeout=HUB_CONNECT_TIMEOUT_S)
    except Exception as exc:  # refused, DNS failure, timeout, proxy error: any of them means no hub
        url = urlsplit(endpoint)  # printed without any user:password the endpoint may carry
        where = f"{url.scheme}://{url.hostname}" + (f":{url.port}" if url.port else "")
        return f"the hub at {where} cannot be reached ({type(exc).__name__})"
    return None


def hub_offline() -> bool:
    """True when the hub must not be contacted; a loader may still read the hub libraries' local cache."""
    return hub_unavailable() is not None


def hub_rows(
    repo_id: str, *, data_files: str | list[str] | None = None, split: str = "train", name: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Rows of a Hugging Face hub dataset, numbered from 1 (for error messages).

    `datasets` is imported lazily: it is slow to import and only needed when data comes from the hub.
    """
    reason = hub_unavailable()
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a core dependency
        raise DataError(repo_id, "the `datasets` package is required to load from the hub") from exc
    kwargs: dict[str, Any] = {"split": split}
    if data_files is not None:
        kwargs["data_files"] = data_files
    try:
        with _cache_only(datasets, reason is not None):
            ds = datasets.load_dataset(repo_id, name, **kwargs)
    except Exception as exc:  # missing repo or file, a server error, not in the cache while offline
        why = (
            f"{reason}, and the dataset is not in the local `datasets` cache"
            if reason is not None
            else f"could not load from the Hugging Face hub ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        )
        raise DataError(f"hf://{repo_id}", f"{why}; pass --data-dir with the original files") from None
    for i, row in enumerate(ds, start=1):
        yield i, dict(row)


@contextmanager
def _cache_only(datasets: Any, offline: bool) -> Iterator[None]:
    """Without a hub, `datasets` may still serve a dataset it downloaded before (no request at all in
    its offline mode); it reads its offline switch once, at import, so the switch is set here."""
    if not offline:
        yield
        return
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved


def check_unique_ids(path: str | Path, ids_lines: list[tuple[str, int]]) -> None:
    seen: dict[str, int] = {}
    for sid, line in ids_lines:
        if sid in seen:
            raise DataError(str(path), f"duplicate id {sid!r} (first seen on line {seen[sid]})", line)
        seen[sid] = line


def task_file_rows(
    path: Path, fields: dict[str, str], roles: tuple[str, ...]
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line, id, row) for each row of a no-code task's data file (.jsonl, .csv or .tsv). A row missing
    a column that `fields` maps one of `roles` to, or repeating an id (column `fields["id"]`, else the
    line number), stops the load with its file and line."""
    if path.suffix == ".jsonl":
        rows: Iterator[tuple[int, dict[str, Any]]] = read_jsonl(path)
    elif path.suffix in (".csv", ".tsv"):
        rows = read_csv(path)
    else:
        raise DataError(str(path), "data file must be .jsonl, .csv or .tsv")
    seen: dict[str, int] = {}
    for line, row in rows:
        missing = [fields[k] for k in (*roles, "id") if k in fields and fields[k] not in row]
        if missing:
            raise DataError(str(path), f"missing field(s) {', '.join(map(repr, missing))}", line)
        sid = str(row[fields["id"]]) if "id" in fields else str(line)
        if sid in seen:
            raise DataError(str(path), f"duplicate id {sid!r} (first on line {seen[sid]})", line)
        seen[sid] = line
        yield line, sid, row
