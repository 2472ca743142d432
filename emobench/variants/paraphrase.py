"""`paraphrase`: every sample asked under the task's own wording and under each rewording of its
instructions shipped with emobench, to measure what the wording does to the score.

The rewordings of a template live in `prompts/paraphrases/<template file name>.yaml` (or the file a
task names in `Task.paraphrase_file`), shared by the tasks that use that template:

    keep:                       # texts every wording must show unchanged where the original shows them
      - 'Reply with the letter of one option only, as JSON: {"answer": "<letter>"}'
    paraphrases:
      - id: feeling
        instruction: ...        # replaces {{ instruction }} (the vignette templates show it)
      - id: plain
        template: |             # replaces the user template (same variables, same answer format)
          ...
        system_template: ...    # replaces the system template

Before any call (`check_task`), every wording is rendered for every sample: each must render, differ
from the original prompt and keep the `keep` texts (the answer format the task's parser and its
log-likelihood continuations rely on), else the run stops with one line naming the wording and sample.
The hash of each task's wordings goes into the variant's config, hence the manifest: runs are
comparable only with the same templates.

Each wording is asked as the task asks (`ask`) and scored by the task; the sample's record holds every
wording's replies, so the task's own vote (`Task.combine`) gives the headline answer (a prompt
ensemble), and each wording's verdict is in the trace (`paraphrase.conditions`). `summarize` reports the
primary metric per template, their mean and spread, and consistency (emobench/robustness.py).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..client import ModelClient
from ..data import read_yaml_mapping
from ..errors import ConfigError
from ..paths import prompts_dir
from ..robustness import summarize_conditions
from ..schema import ScoredRecord
from ..scoring import score_replies
from ..task import Task
from ..types import Message, Sample, Usage, stable_hash
from .base import REPLY_CHARS_KEPT, Variant, VariantOutput, ask

KEY = "paraphrase"
ORIGINAL = "original"
MIN_PARAPHRASES = 3
_ENTRY_KEYS = {"id", "instruction", "template", "system_template"}


@dataclass(frozen=True)
class Wording:
    """One way of asking: the task's own (`original`, nothing replaced) or a paraphrase."""

    id: str
    instruction: str | None = None
    template: str | None = None
    system_template: str | None = None

    def view(self, task: Task) -> Task:
        """`task` with this wording's templates (a shallow copy; the task itself is untouched)."""
        if self.template is None and self.system_template is None:
            return task
        view = copy.copy(task)
        if self.template is not None:
            view.template = self.template  # type: ignore[misc]
        if self.system_template is not None:
            view.system_template = self.system_template  # type: ignore[misc]
        return view

    def render(self, task: Task, sample: Sample) -> list[Message]:
        return self.view(task).render(sample, instruction=self.instruction)


@dataclass(frozen=True)
class ParaphraseSet:
    path: Path
    keep: tuple[str, ...]
    wordings: tuple[Wording, ...]  # the original first

    @property
    def hash(self) -> str:
        return stable_hash([self.keep, [vars(w) for w in self.wordings]])[:16]


def paraphrase_path(task: Task) -> Path:
    """Where `task`'s rewordings are: its `paraphrase_file`, else the file named after its template."""
    name = task.paraphrase_file or (
        Path(task.template).stem + ".yaml" if task.template.endswith(".j2") else ""
    )
    if not name:
        raise ConfigError(
            f"variant paraphrase: task {task.name} has an inline template and no `paraphrase_file`: "
            "write its rewordings in a YAML file (see prompts/paraphrases/) and name it there"
        )
    path = Path(name).expanduser()
    return path if path.is_file() else prompts_dir() / "paraphrases" / name


def load_paraphrases(task: Task) -> ParaphraseSet:
    path = paraphrase_path(task)
    if not path.is_file():
        raise ConfigError(
            f"variant paraphrase: task {task.name} has no rewordings ({path} not found); write at least "
            f"{MIN_PARAPHRASES} in that file (see prompts/paraphrases/ for the layout)"
        )
    spec = read_yaml_mapping(path, {"keep", "paraphrases"}, "paraphrase file")
    keep = spec.get("keep") or []
    entries = spec.get("paraphrases") or []
    if not isinstance(keep, list) or not all(isinstance(k, str) for k in keep):
        raise ConfigError(f"{path}: `keep` must be a list of texts")
    if not isinstance(entries, list) or len(entries) < MIN_PARAPHRASES:
        raise ConfigError(f"{path}: `paraphrases` must list at least {MIN_PARAPHRASES} rewordings")
    wordings = [Wording(ORIGINAL)]
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or set(entry) - _ENTRY_KEYS:
            raise ConfigError(
                f"{path}: paraphrases[{i}] must be a mapping with an `id` and any of "
                "instruction, template, system_template"
            )
        if len(entry) < 2 or not all(isinstance(v, str) and v.strip() for v in entry.values()):
            raise ConfigError(f"{path}: paraphrases[{i}] ({entry['id']}) must reword something, as text")
        wordings.append(Wording(**entry))
    ids = [w.id for w in wordings]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"{path}: paraphrase ids must be unique and not {ORIGINAL!r}")
    return ParaphraseSet(path, tuple(keep), tuple(wordings))


def check_wordings(task: Task, paraphrases: ParaphraseSet, sample: Sample) -> None:
    """Every wording renders for `sample`, differs from the original and keeps the `keep` texts."""
    original = paraphrases.wordings[0].render(task, sample)
    kept = [k for k in paraphrases.keep if any(k in m["content"] for m in original)]
    for wording in paraphrases.wordings[1:]:
        where = f"{paraphrases.path}: paraphrase {wording.id!r} on sample {sample.id!r} of task {task.name}"
        try:
            messages = wording.render(task, sample)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        if messages == original:
            raise ConfigError(
                f"{where}: the prompt is the original's (the template does not show the rewording)"
            )
        text = "\n".join(m["content"] for m in messages)
        missing = [k for k in kept if k not in text]
        if missing:
            raise ConfigError(f"{where}: the answer format changed; it must still show {missing[0]!r}")


class Paraphrase(Variant):
    name = "paraphrase"
    description = "the task's wording and 3+ rewordings of its instructions: per-template scores and spread"

    def __init__(self, **args: Any):
        super().__init__(**args)
        self._sets: dict[str, ParaphraseSet] = {}

    def config(self) -> dict[str, Any]:
        """With the hash of each checked task's wordings (under `tasks`, which `compare` narrows to the
        task compared): runs are comparable only with the same templates."""
        tasks = {name: {"templates": s.hash} for name, s in sorted(self._sets.items())}
        return {**super().config(), "tasks": tasks}

    def check_task(self, task: Task, samples: list[Sample]) -> None:
        if any(task.rubric(s) is not None for s in samples):
            raise ConfigError(
                f"variant paraphrase: task {task.name} is scored by judge models, which judge one reply a "
                "sample; a score per wording would need them to judge every wording's reply"
            )
        paraphrases = load_paraphrases(task)
        for sample in samples:
            check_wordings(task, paraphrases, sample)
        self._sets[task.name] = paraphrases

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        if task.name not in self._sets:
            self.check_task(task, [sample])
        conditions: list[dict[str, Any]] = []
        replies: list[str] = []
        outs: list[VariantOutput] = []
        for wording in self._sets[task.name].wordings:
            view = wording.view(task)
            out = await ask(view, sample, view.render(sample, instruction=wording.instruction), client, usage)
            outs.append(out)
            verdict = score_replies(task, sample, out.responses)
            replies += out.responses
            conditions.append(
                {
                    "name": wording.id,
                    "parsed": verdict.parsed,
                    "score": verdict.score,
                    "outcome": verdict.outcome,
                    "strict": verdict.strict,
                    "replies": [r[-REPLY_CHARS_KEPT:] for r in out.responses],
                    "trace": out.trace,
                }
            )
        trace = {"mode": outs[0].trace.get("mode"), KEY: {"conditions": conditions}}
        return VariantOutput(replies, outs[0].prompt, trace)  # the prompt shown: the original's

    def summarize(self, task: Task, records: list[ScoredRecord]) -> dict[str, Any]:
        out = summarize_conditions(task, records, KEY, "per_template")
        return {"variant": self.name, **out} if out else {}
