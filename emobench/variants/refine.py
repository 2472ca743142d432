"""`refine`: APOLO-style multi-agent refinement of a task's instruction on its **dev** split (§3).

APOLO (arXiv 2601.13481) publishes no code; only its roles are known. What follows is emobench's
**inferred** design, stated as such in the artifact (`inferred`):

- state = the current best instruction; observation = its dev score and a few dev error cases;
- Planner (once): a list of aspects to improve;
- each round, for the next aspect: Teacher proposes `n_candidates` edits, Critic reviews them against
  the dev failures, Student rewrites the instruction;
- Target: the model under test answers the dev items with the new instruction; reward = change of the
  task's primary metric. The Target step keeps the candidate only if it beats the best by more than
  `min_delta`, and stops on `patience` rounds without improvement, `max_rounds`, a perfect dev score,
  or the call budget `max_calls` (agent calls + dev answers), checked *before* each step.

Only the dev samples handed to `prepare` are ever shown to an agent. `answer` refuses (the sample
ends as `error`) any test sample whose id is a dev id or whose text appears in an agent transcript.
The best instruction is saved as `prompts/refined/<task>__<model>.json` with its dev score history,
the agents' transcripts and the optimisation's usage, then reused by later runs whose task template,
dev items and settings match. The optimisation's calls are added to the usage of the first test
sample answered in the run that created the artifact (so the task's cost multiple includes them); a
reused artifact costs nothing again and says so in the trace.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import prompts
from ..client import ModelClient, client_for
from ..errors import ConfigError
from ..judge import rubrics_of
from ..parsing import json_field
from ..paths import prompts_dir
from ..schema import ScoredRecord
from ..scoring import score_replies
from ..task import Task
from ..types import GenParams, Message, Sample, Usage, stable_hash
from .base import Variant, VariantOutput, ask

ROLES = ("planner", "teacher", "critic", "student")
INFERRED = (
    "APOLO's code and budgets are not public: the loop (Planner once, then Teacher/Critic/Student "
    "rounds scored by the Target on dev, patience/max-rounds/max-calls stopping) is emobench's "
    "inferred reading of the abstract."
)
_PROBE = "\u0000emobench-instruction-probe\u0000"


class BudgetExhausted(Exception):
    """The next step would exceed `max_calls`."""


def render_with(task: Task, sample: Sample, instruction: str) -> list[Message]:
    """The task's prompt with `instruction`. A template that does not show `{{ instruction }}` gets it
    as (the start of) the system message, so refining is never a silent no-op."""
    messages = task.render(sample, instruction=_PROBE)
    if any(_PROBE in m["content"] for m in messages):
        return [{**m, "content": m["content"].replace(_PROBE, instruction)} for m in messages]
    messages = task.render(sample)
    if not instruction:
        return messages
    if messages and messages[0]["role"] == "system":
        return [{"role": "system", "content": f"{instruction}\n\n{messages[0]['content']}"}, *messages[1:]]
    return [{"role": "system", "content": instruction}, *messages]


def sample_text(sample: Sample) -> str:
    return sample.input if isinstance(sample.input, str) else "\n".join(m["content"] for m in sample.input)


class Refiner:
    """One optimisation: the agents, the Target on the dev items, the budget and the transcripts."""

    def __init__(
        self,
        task: Task,
        target: ModelClient,
        agents: dict[str, ModelClient],
        dev: list[Sample],
        settings: dict[str, Any],
    ):
        self.task, self.target, self.agents, self.dev, self.s = task, target, agents, dev, settings
        self.usage = Usage()
        self.calls = 0
        self.transcripts: list[dict[str, Any]] = []

    def _spend(self, n: int) -> None:
        if self.calls + n > int(self.s["max_calls"]):
            raise BudgetExhausted
        self.calls += n

    async def agent(self, role: str, **variables: Any) -> str:
        self._spend(1)
        prompt = prompts.render(f"variants/refine_{role}.j2", **variables)
        params = GenParams(temperature=0.0, max_tokens=int(self.s["agent_max_tokens"]))
        reply = (await self.agents[role].chat([{"role": "user", "content": prompt}], params, self.usage)).text
        self.transcripts.append({"role": role, "prompt": prompt, "reply": reply})
        return reply

    async def evaluate(self, instruction: str) -> tuple[float, list[dict[str, str]]]:
        """Target: the dev score of `instruction` (task's primary metric) and its error cases."""
        self._spend(len(self.dev) * max(1, int(self.task.draws)))
        records: list[ScoredRecord] = []
        errors: list[dict[str, str]] = []
        for s in self.dev:
            out = await ask(self.task, s, render_with(self.task, s, instruction), self.target, self.usage)
            scored = score_replies(self.task, s, out.responses)  # as `emobench run` will score the test items
            records.append(
                {
                    "sample_id": s.id,
                    "outcome": scored.outcome,
                    "score": scored.score,
                    "parsed": scored.parsed,
                    "target": s.target,
                    "metadata": scored.annotate(s.metadata),
                    "trace": out.trace,
                    "mode": out.trace.get("mode"),
                }
            )
            if scored.outcome != "correct":
                errors.append(
                    {
                        "input": sample_text(s)[-800:],
                        "expected": _expected(self.task, s),
                        "reply": (out.responses[0] if out.responses else "")[:300],
                    }
                )
        metrics, _ = self.task.aggregate(records)
        metric = metrics.get(self.task.primary_metric) or next(iter(metrics.values()), None)
        value = (
            metric.value
            if metric is not None
            else sum(r["score"] or 0.0 for r in records) / max(1, len(records))
        )
        return float(value), errors[: int(self.s["n_errors"])]

    async def run(self) -> dict[str, Any]:
        initial = self.task.instruction or ""
        best, best_score = initial, None
        errors: list[dict[str, str]] = []
        history: list[dict[str, Any]] = []
        stop, aspects = None, []
        try:
            best_score, errors = await self.evaluate(initial)
            history.append(
                {"round": 0, "instruction": initial, "dev_score": best_score, "decision": "baseline"}
            )
            reply = await self.agent(
                "planner",
                task_description=self.task.description or self.task.name,
                instruction=initial,
                score=round(best_score, 4),
                errors=errors,
                n_aspects=int(self.s["max_rounds"]),
            )
            aspects = _as_list(json_field(reply, "aspects"), reply) or [
                "clarity and the cues that decide the answer"
            ]
            stall = 0
            for rnd in range(1, int(self.s["max_rounds"]) + 1):
                if best_score >= 1.0:
                    stop = "perfect dev score"
                    break
                aspect = aspects[(rnd - 1) % len(aspects)]
                reply = await self.agent(
                    "teacher",
                    aspect=aspect,
                    instruction=best,
                    errors=errors,
                    n_candidates=int(self.s["n_candidates"]),
                )
                edits = _as_list(json_field(reply, "edits"), reply)[: int(self.s["n_candidates"])] or [
                    reply.strip()
                ]
                critique = await self.agent("critic", instruction=best, edits=edits, errors=errors)
                reply = await self.agent("student", instruction=best, edits=edits, critique=critique)
                candidate = _instruction(reply)
                score, cand_errors = await self.evaluate(candidate) if candidate else (float("-inf"), errors)
                improved = candidate and score > best_score + float(self.s["min_delta"])
                history.append(
                    {
                        "round": rnd,
                        "aspect": aspect,
                        "instruction": candidate,
                        "dev_score": score if candidate else None,
                        "decision": "improved" if improved else "stalled",
                    }
                )
                if improved:
                    best, best_score, errors, stall = candidate, score, cand_errors, 0
                else:
                    stall += 1
                    if stall >= int(self.s["patience"]):
                        stop = "patience"
                        break
            else:
                stop = "max_rounds"
        except BudgetExhausted:
            stop = "budget"
        return {
            "best_instruction": best,
            "best_dev_score": best_score,
            "initial_instruction": initial,
            "history": history,
            "aspects": aspects,
            "stop_reason": stop,
            "agent_calls_and_dev_answers": self.calls,
            "usage": asdict(self.usage),
            "transcripts": self.transcripts,
        }


class Refine(Variant):
    name = "refine"
    description = "APOLO-style multi-agent instruction refinement on dev"
    uses_dev = True
    arg_defaults = {
        "planner": None,
        "teacher": None,
        "critic": None,
        "student": None,
        "max_rounds": 3,
        "patience": 2,
        "max_calls": 300,
        "n_candidates": 2,
        "n_errors": 4,
        "dev_limit": 40,
        "min_delta": 0.0,
        "agent_max_tokens": 600,
        "artifact_dir": None,
        "reuse": True,
    }

    def __init__(self, **args: Any):
        super().__init__(**args)
        self._state: dict[str, dict[str, Any]] = {}

    def check_task(self, task: Task, samples: list[Sample]) -> None:
        """Refinement scores dev replies itself and asks no judge: a judge-scored task is refused."""
        if rubrics_of(task, samples):
            raise ConfigError(
                f"variant refine: task {task.name} is scored by a judge model, which refine cannot ask"
            )

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.args.items() if k not in ("artifact_dir", "reuse")}

    def artifact_path(self, task: Task, client: ModelClient) -> Path:
        root = (
            self.args["artifact_dir"] or os.environ.get("EMOBENCH_REFINED_DIR") or prompts_dir() / "refined"
        )
        model = re.sub(r"[^A-Za-z0-9._-]+", "-", str(client.identity.get("model", "model"))).strip("-")
        return Path(root) / f"{task.name}__{model}.json"

    async def optimise(
        self, task: Task, client: ModelClient, dev_samples: list[Sample]
    ) -> tuple[dict[str, Any], Path]:
        """Load a matching artifact or run the optimisation and save it. Returns (artifact, path)."""
        dev = (
            list(dev_samples)[: int(self.args["dev_limit"])] if self.args["dev_limit"] else list(dev_samples)
        )
        if not dev:
            raise ConfigError(f"task {task.name} has no dev split: refine only ever optimises on dev items")
        key = {
            "task": task.name,
            "template_hash": task.template_hash(),
            "model": client.identity,
            "dev_fingerprint": stable_hash([s.fingerprint_payload() for s in dev])[:16],
            "settings": self.settings(),
        }
        path = self.artifact_path(task, client)
        if self.args["reuse"] and path.is_file():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                saved = {}
            if saved.get("key") == json.loads(json.dumps(key, default=str)):
                saved["reused"] = True
                return saved, path
        agents = {role: client_for(self.args[role], client) for role in ROLES}
        t0 = time.perf_counter()
        result = await Refiner(task, client, agents, dev, self.settings()).run()
        artifact = {
            "schema_version": 1,
            "key": key,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "inferred": INFERRED,
            "metric": task.primary_metric,
            "dev_ids": [s.id for s in dev],
            "agents": {r: (self.args[r] or "model under test") for r in ROLES},
            "seconds": round(time.perf_counter() - t0, 3),
            **result,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(artifact, indent=2, ensure_ascii=False, default=str), encoding="utf-8")
        artifact = json.loads(path.read_text(encoding="utf-8"))
        artifact["reused"] = False
        return artifact, path

    async def prepare(self, task: Task, client: ModelClient, dev_samples: list[Sample]) -> None:
        if not dev_samples:
            self._state[task.name] = {
                "instruction": task.instruction,
                "note": "no dev split: instruction not refined",
            }
            return
        artifact, path = await self.optimise(task, client, dev_samples)
        seen = "\n".join(t["prompt"] for t in artifact.get("transcripts", []))
        self._state[task.name] = {
            "instruction": artifact["best_instruction"],
            "path": str(path),
            "seen": seen,
            "dev_ids": set(artifact.get("dev_ids", [])),
            "artifact": artifact,
            "charged": bool(artifact.get("reused")),
        }

    def check_unseen(self, task: Task, sample: Sample) -> None:
        """Dev/test separation: a test item must never have reached an agent."""
        state = self._state.get(task.name, {})
        text = sample_text(sample).strip()
        if sample.id in state.get("dev_ids", ()) or (len(text) >= 30 and text in state.get("seen", "")):
            raise RuntimeError(
                f"refine: test sample {sample.id} of {task.name} was seen by the refine agents "
                "(it is also a dev item); dev and test must not overlap"
            )

    async def answer(self, task: Task, sample: Sample, client: ModelClient, usage: Usage) -> VariantOutput:
        if task.name not in self._state:
            await self.prepare(task, client, [])
        self.check_unseen(task, sample)
        state = self._state[task.name]
        trace: dict[str, Any] = {"refine": {"artifact": state.get("path"), "note": state.get("note")}}
        artifact = state.get("artifact")
        if artifact:
            trace["refine"].update(
                dev_score=artifact.get("best_dev_score"),
                stop_reason=artifact.get("stop_reason"),
                reused=artifact.get("reused"),
            )
            if not state["charged"]:  # charge the optimisation once, to the first test sample
                state["charged"] = True
                usage.add(Usage(**artifact["usage"]))
                trace["refine"]["optimisation_usage"] = artifact["usage"]
        return await ask(
            task, sample, render_with(task, sample, state["instruction"] or ""), client, usage, trace
        )


def _expected(task: Task, sample: Sample) -> str:
    if sample.choices and isinstance(sample.target, int) and 0 <= sample.target < len(sample.choices):
        return f"{chr(65 + sample.target)}) {sample.choices[sample.target]}"
    return str(sample.target)[:300]


def _as_list(value: Any, reply: str) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    lines = [re.sub(r"^\s*(?:[-*]|\d+[.)])\s*", "", ln).strip() for ln in reply.splitlines()]
    return [ln for ln in lines if ln and not ln.startswith(("{", "}"))]


def _instruction(reply: str) -> str:
    value = json_field(reply, "instruction")
    text = value if isinstance(value, str) else reply
    return text.strip().strip('"').strip()
