"""Vignette batteries: where the affect items, their matched neutral controls and keyword-rich versions
come from. The vignette tasks read them and so does representation probing, through `load_battery`.

Three sources, all returned as the same `Item`s (`emobench/audit.py`):
- `vignettes`: the original battery shipped in `tasks/vignettes/vignettes.jsonl`;
- a user file in the same documented layout (`id, pair_id, kind, emotion, text`; JSONL or CSV);
- `aipsy_affect`: AIPsy-Affect (M. Keeman, arXiv 2604.23719; hub `keidolabs/aipsy-affect`, MIT), read
  from the hub or from `--data-dir` in its own documented layout, which is mapped onto the items here.

AIPsy-Affect's layout (its dataset card): splits `clinical` (192), `neutral` (192), `moderate` (48) and
`complex_neutral` (48), files `data/<split>.parquet`, columns `id, emotion, intensity, domain,
domain_label, matched_control_id, word_count, text`. `emotion` holds the peak-intensity names of
Plutchik's eight (rage ... vigilance) or `neutral`; they are mapped to the primaries the tasks ask for,
and each item keeps the dataset's own name as `label`. A clinical row and its neutral control name each
other in `matched_control_id` (`B-rage-d1-v1` <-> `N-rage-d1-c1`); moderate rows have no control.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .audit import EMOTIONS, Item, read_items
from .data import check_unique_ids, find_local, hub_rows
from .data import data_dir as resolve_data_dir
from .errors import ConfigError, DataError
from .paths import tasks_dir

SHIPPED = "vignettes"
AIPSY = "aipsy_affect"
AIPSY_REPO = "keidolabs/aipsy-affect"
AIPSY_AFFECT_SPLITS = ("clinical", "moderate")
AIPSY_CONTROL_SPLITS = ("neutral", "complex_neutral")
# Plutchik's wheel: the peak-intensity name of each primary emotion
PEAK_TO_PRIMARY = {
    "rage": "anger",
    "terror": "fear",
    "grief": "sadness",
    "loathing": "disgust",
    "amazement": "surprise",
    "admiration": "trust",
    "ecstasy": "joy",
    "vigilance": "anticipation",
}


@dataclass(frozen=True)
class Battery:
    """`items` are what the tasks ask about and probes are trained on: affect items with their neutral
    controls (same `pair_id`) and keyword-rich versions. `transfer` holds affect items of another
    intensity without a control (AIPsy-Affect's moderate split), kept apart to test a probe's transfer."""

    name: str
    source: str
    items: tuple[Item, ...]
    transfer: tuple[Item, ...] = ()


def shipped_path() -> Path:
    return tasks_dir() / "vignettes" / "vignettes.jsonl"


def load_battery(name_or_path: str | Path, data_dir: str | Path | None = None) -> Battery:
    """The battery `vignettes`, `aipsy_affect` (hub, or `data_dir`) or a file in the documented layout."""
    name = str(name_or_path)
    if name == SHIPPED:
        return Battery(SHIPPED, str(shipped_path()), tuple(read_items(shipped_path())))
    if name == AIPSY:
        items = aipsy_items("clinical", "neutral", data_dir)
        return Battery(AIPSY, items[0].path, tuple(items), tuple(aipsy_items("moderate", None, data_dir)))
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"battery {name!r}: no such file, and not one of {SHIPPED}, {AIPSY}")
    return Battery(name, str(path), tuple(read_items(path)))


# ---- AIPsy-Affect ------------------------------------------------------------------------------------
Rows = list[tuple[int, dict[str, Any]]]


def aipsy_items(affect_split: str, control_split: str | None, data_dir: str | Path | None) -> list[Item]:
    """The `affect_split` rows as affect items and the `control_split` rows as neutral ones. Clinical
    and neutral items are paired by `matched_control_id` (the pair id is the clinical item's id); items
    of the other splits have no partner and are their own pair."""
    where, rows = _split_rows(affect_split, data_dir)
    items = [_item(where, line, row, "affect", None) for line, row in rows]
    if control_split is None:
        return items
    control_where, control = _split_rows(control_split, data_dir)
    matched = (affect_split, control_split) == ("clinical", "neutral")
    pairs = _pairs(rows, control_where, control) if matched else {}
    return items + [_item(control_where, line, row, "neutral", pairs.get(line)) for line, row in control]


def _split_rows(split: str, data_dir: str | Path | None) -> tuple[str, Rows]:
    """(where, rows numbered from 1) of one split, checked for the columns the items need."""
    where, rows = _read_split(split, data_dir)
    if not rows:
        raise DataError(where, "split is empty")
    missing = [c for c in ("id", "emotion", "matched_control_id", "text") if c not in rows[0][1]]
    if missing:
        raise DataError(
            where,
            f"missing column(s) {', '.join(map(repr, missing))} (columns found: {', '.join(rows[0][1])})",
        )
    check_unique_ids(where, [(_text(row, "id"), line) for line, row in rows])
    return where, rows


def _read_split(split: str, data_dir: str | Path | None) -> tuple[str, Rows]:
    """The split's parquet file from `--data-dir` (flat, under `data/` as on the hub, or one folder down),
    else the hub; with `--data-dir`, only the local copy (like every other task)."""
    root = resolve_data_dir(data_dir)
    if root is None:
        return f"hf://{AIPSY_REPO}[{split}]", list(hub_rows(AIPSY_REPO, split=split))
    path = find_local(root, f"{split}.parquet", f"data/{split}.parquet")
    if path is None:
        raise DataError(
            str(root),
            f"{split}.parquet not found under --data-dir {root} (flat or in data/); "
            f"without --data-dir it is read from hf://{AIPSY_REPO}",
        )
    import pandas as pd  # only needed for a local copy

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged or non-parquet file
        raise DataError(str(path), f"cannot read parquet ({type(exc).__name__}: {exc})") from None
    return str(path), list(enumerate(frame.to_dict(orient="records"), start=1))


def _text(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    return value.strip() if isinstance(value, str) else ""


def _item(where: str, line: int, row: dict[str, Any], kind: str, pair_id: str | None) -> Item:
    ident, label, text = _text(row, "id"), _text(row, "emotion"), _text(row, "text")
    if not ident:
        raise DataError(where, "empty id", line)
    if not text:
        raise DataError(where, f"{ident}: empty text", line)
    emotion = None
    if kind == "affect":
        key = label.lower()
        emotion = PEAK_TO_PRIMARY.get(key) or (key if key in EMOTIONS else None)
        if emotion is None:
            raise DataError(
                where,
                f"{ident}: emotion {row.get('emotion')!r} is not one of "
                f"{', '.join(PEAK_TO_PRIMARY)} (nor a primary: {', '.join(EMOTIONS)})",
                line,
            )
    return Item(ident, pair_id or ident, kind, emotion, text, where, line, label or None)


def _pairs(clinical: Rows, where: str, neutral: Rows) -> dict[int, str]:
    """Neutral row number -> the id of its clinical item; each link must name the other row back."""
    control_of = {_text(row, "id"): _text(row, "matched_control_id") for _, row in clinical}
    pairs = {}
    for line, row in neutral:
        ident, partner = _text(row, "id"), _text(row, "matched_control_id")
        if control_of.get(partner) != ident:
            raise DataError(
                where,
                f"{ident}: matched_control_id {partner!r} is not a clinical item whose "
                "matched_control_id names this one",
                line,
            )
        pairs[line] = partner
    return pairs
