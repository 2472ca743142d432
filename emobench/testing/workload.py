"""A synthetic no-code task of N single-call chat items, for the benchmarks and the reliability tests.

Item texts differ, so no two requests are identical and a cache cannot short-circuit anything.
"""

from __future__ import annotations

import json
from pathlib import Path

LABELS = ["joy", "sadness", "anger", "fear"]
# What follows the item text in the peers' and the floor clients' prompts (emobench renders TASK_YAML's
# template, which says the same).
PROMPT_TAIL = (
    "Which feeling fits best?\n"
    + "\n".join(f"{chr(65 + i)}) {lab}" for i, lab in enumerate(LABELS))
    + '\nReply with a JSON block {"answer": "<letter>"}.'
)
TASK_YAML = """\
name: {name}
description: synthetic single-call chat items (emobench.testing.workload)
data: items.jsonl
fields: {{id: id, input: text, target: label}}
labels: [joy, sadness, anger, fear]
template: |
  {{{{ input }}}}
  Which feeling fits best?
  {{{{ lettered_choices }}}}
  Reply with a JSON block {{"answer": "<letter>"}}.
generation: {{max_tokens: 16}}
metrics: [{metrics}]
"""


def write_workload(
    folder: Path, n: int, name: str = "workload", metrics: tuple[str, ...] = ("accuracy",)
) -> Path:
    """Write `items.jsonl` and `task.yaml` (n items) into `folder`; return the YAML path."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "items.jsonl").open("w", encoding="utf-8") as fh:
        for i in range(n):
            fh.write(
                json.dumps(
                    {
                        "id": f"s{i:06d}",
                        "text": f"Item {i}: Ada read the message twice and "
                        f"smiled at number {i * 7919 % 10007}.",
                        "label": LABELS[i % 4],
                    }
                )
                + "\n"
            )
    (folder / "task.yaml").write_text(
        TASK_YAML.format(name=name, metrics=", ".join(metrics)), encoding="utf-8"
    )
    return folder / "task.yaml"
