"""A complete emobench task: the feeling a one-line story shows (12 original items).

    emobench run --task-file examples/tasks/feelings/task.py --model random
Copy the folder to tasks/<benchmark>/ and it is a built-in task (`emobench list tasks`).
"""

from pathlib import Path

from emobench.data import read_jsonl
from emobench.task import ChoiceTask
from emobench.types import GenParams, Sample

HERE = Path(__file__).parent


class Feelings(ChoiceTask):
    name = "example_feelings"
    description = "example: the feeling a one-line story shows (12 original items)"
    source = "examples/tasks/feelings/items.jsonl (written for emobench)"
    license = "Apache-2.0"
    template = str(HERE / "feelings.j2")  # a path; a bare name (`x.j2`) is looked up in prompts/
    instruction = "Which feeling does the person in this story most likely have?"
    gen_params = GenParams(temperature=0.0, max_tokens=32)
    size = 12

    def load_samples(self, split="test"):
        for _, row in read_jsonl(HERE / "items.jsonl"):  # a bad line is an error naming file and line
            answer = row["choices"].index(row["answer"])
            yield Sample(id=row["id"], input=row["text"], choices=row["choices"], target=answer)
