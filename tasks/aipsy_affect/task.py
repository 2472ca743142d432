"""AIPsy-Affect (M. Keeman, arXiv 2604.23719; hub `keidolabs/aipsy-affect`, MIT), asked the two
questions of the shipped vignette battery (`tasks/vignettes/`), whose task classes it reuses:

- `aipsy_affect`: *which* emotion, 8-way Plutchik labelling of the `subset=` split (clinical or
  moderate), top-1 accuracy against chance 1/8, per-emotion confusion;
- `aipsy_affect_detect`: *whether* there is an emotion, the `affect=` split against the `control=`
  split, AUROC of the model's own P(emotion), accuracy at 50 and a sign test over matched pairs.

The splits are read by `emobench.battery.aipsy_items`, from the hub or from `--data-dir` in the
dataset's own layout (`data/<split>.parquet`), into the same `Item`s as the shipped battery.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from emobench.audit import Item
from emobench.battery import AIPSY_AFFECT_SPLITS, AIPSY_CONTROL_SPLITS, AIPSY_REPO, aipsy_items
from emobench.errors import ConfigError
from emobench.types import Sample

from ..vignettes.task import Vignettes, VignettesAffect, detect_sample


def _check_split(value: Any, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"--task-arg {key}={value!r}: choose one of {', '.join(allowed)}")
    return str(value)


class AipsyAffect(Vignettes):
    name = "aipsy_affect"
    description = (
        "AIPsy-Affect: 8-way Plutchik labelling of keyword-free clinical vignettes (subset=clinical|moderate)"
    )
    source = f"hf://{AIPSY_REPO} (M. Keeman, arXiv 2604.23719)"
    license = "MIT"
    arg_defaults = {"subset": "clinical"}
    size = 192

    def items(self) -> Sequence[Item]:
        subset = _check_split(self.args["subset"], AIPSY_AFFECT_SPLITS, "subset")
        return aipsy_items(subset, None, self.data_dir)


class AipsyAffectDetect(VignettesAffect):
    name = "aipsy_affect_detect"
    description = (
        "AIPsy-Affect: clinical vs matched neutral controls, AUROC of P(emotion) and paired sign test"
    )
    source = f"hf://{AIPSY_REPO} (M. Keeman, arXiv 2604.23719)"
    license = "MIT"
    arg_defaults = {"affect": "clinical", "control": "neutral"}
    size = 384

    def items(self) -> Sequence[Item]:
        affect = _check_split(self.args["affect"], AIPSY_AFFECT_SPLITS, "affect")
        control = _check_split(self.args["control"], AIPSY_CONTROL_SPLITS, "control")
        return aipsy_items(affect, control, self.data_dir)

    def load_samples(self, split: str = "test") -> Iterable[Sample]:
        """Every affect and control item (the moderate and complex_neutral splits have no one-to-one
        partner, so unlike the shipped battery an unpaired item is kept; the sign test uses pairs)."""
        return [detect_sample(it) for it in self.items()]
