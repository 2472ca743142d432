"""Calibration metrics with known answers (emobench/calibration.py): synthetic predictors whose ECE is
known, hand-computed ECE / AURC / coverage / top-k figures, and Brier and NLL against scikit-learn on the
same data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emobench import calibration as C
from emobench.calibration import Predictions


def _records(rows):
    """ScoredRecords whose traces hold `rows` = [(source, entry, outcome)]."""
    return [
        {
            "sample_id": str(i),
            "outcome": outcome,
            "score": float(outcome == "correct"),
            "parsed": 0,
            "target": 0,
            "metadata": {},
            "trace": {"confidence": {source: entry}},
            "mode": None,
        }
        for i, (source, entry, outcome) in enumerate(rows)
    ]


def test_a_perfectly_calibrated_predictor_has_an_ece_of_about_zero_within_its_calibrated_range():
    rng = np.random.default_rng(7)
    conf = rng.uniform(0.2, 1.0, 4000)
    correct = (rng.random(4000) < conf).astype(float)  # right exactly as often as it is confident
    block = C.summary("verbalised", Predictions(conf, correct))
    ece, reference = block["ece"], block["ece_if_calibrated"]
    assert ece["value"] < 0.03  # about zero: only sampling noise is left
    assert reference["ci_low"] <= ece["value"] <= reference["ci_high"]
    assert block["calibration_p"] > 0.05
    assert block["bins"] == 15


def test_an_overconfident_predictor_is_told_apart_from_a_calibrated_one():
    rng = np.random.default_rng(8)
    truth = rng.uniform(0.2, 0.8, 2000)
    correct = (rng.random(2000) < truth).astype(float)
    block = C.summary("verbalised", Predictions(np.minimum(truth + 0.2, 1.0), correct))
    assert block["ece"]["ci_low"] > block["ece_if_calibrated"]["ci_high"]
    assert block["calibration_p"] < 0.01
    assert block["ece"]["value"] == pytest.approx(0.2, abs=0.03)


def test_a_constant_confidence_has_ece_equal_to_the_gap_between_accuracy_and_confidence():
    conf = np.full(50, 0.7)
    correct = np.array([1.0] * 30 + [0.0] * 20)  # accuracy 0.6
    block = C.summary("verbalised", Predictions(conf, correct))
    assert block["bins"] == 5  # ...but ties share one bin
    assert block["ece"]["value"] == pytest.approx(abs(0.6 - 0.7), abs=1e-12)
    assert block["reliability"] == [{"confidence": pytest.approx(0.7), "accuracy": 0.6, "n": 50}]
    # tied confidences give no ranking: risk is the error rate at every coverage
    assert block["aurc"]["value"] == pytest.approx(0.4)
    assert block["accuracy_at_80_coverage"]["value"] == pytest.approx(0.6)
    assert block["brier_form"] == "top_label"
    assert block["brier"]["value"] == pytest.approx(0.6 * 0.3**2 + 0.4 * 0.7**2)


def test_ece_over_equal_mass_bins_by_hand():
    conf = np.array([0.9, 0.9, 0.8, 0.6, 0.3, 0.2])
    correct = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0])
    # bins of 3: {0.2, 0.3, 0.6} accuracy 1/3, confidence 11/30; {0.8, 0.9, 0.9} accuracy 2/3, confidence 26/30
    assert C.ece(conf, correct, 2) == pytest.approx(0.5 * (1 / 30) + 0.5 * (6 / 30))
    bins = C.reliability(conf, correct, 2)
    assert [b["n"] for b in bins] == [3, 3]
    assert bins[1]["confidence"] == pytest.approx(26 / 30) and bins[1]["accuracy"] == pytest.approx(2 / 3)


def test_risk_coverage_by_hand():
    conf = np.array([0.9, 0.8, 0.7, 0.6])
    correct = np.array([1.0, 0.0, 1.0, 0.0])
    # error rate of the i most confident: 0, 1/2, 1/3, 2/4
    assert C.aurc(conf, correct) == pytest.approx((0 + 1 / 2 + 1 / 3 + 1 / 2) / 4)
    assert C.accuracy_at_coverage(conf, correct) == pytest.approx(0.5)  # ceil(0.8 * 4) = 4 kept
    five = np.array([0.9, 0.8, 0.7, 0.6, 0.5])
    assert C.accuracy_at_coverage(five, np.array([1.0, 1.0, 0.0, 1.0, 0.0])) == pytest.approx(0.75)
    # a tie: the two 0.9 answers (one wrong) count half an error each at coverage 1
    tied = C.aurc(np.array([0.9, 0.9, 0.5]), np.array([1.0, 0.0, 1.0]))
    assert tied == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)


def test_brier_and_nll_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(4) * 0.7, size=120)
    gold = rng.integers(0, 4, size=120)
    rows = [
        ("top_logprobs", {"probs": p.tolist(), "gold": int(g)}, "correct")
        for p, g in zip(probs, gold, strict=True)
    ]
    block = C.summarize(_records(rows))["top_logprobs"]
    assert block["brier_form"] == "multiclass"
    expected = metrics.brier_score_loss(gold, probs, labels=[0, 1, 2, 3], scale_by_half=False)
    assert block["brier"]["value"] == pytest.approx(expected, rel=1e-9)
    assert block["nll"]["value"] == pytest.approx(
        metrics.log_loss(gold, probs, labels=[0, 1, 2, 3]), rel=1e-9
    )
    predicted = probs.argmax(axis=1)
    assert block["accuracy"]["value"] == pytest.approx(metrics.accuracy_score(gold, predicted))
    assert block["top_k_accuracy"]["2"]["value"] == pytest.approx(
        metrics.top_k_accuracy_score(gold, probs, k=2, labels=[0, 1, 2, 3])
    )
    # top-label Brier on a stated confidence: scikit-learn's binary Brier on (correct, confidence)
    conf = rng.uniform(0, 1, 80)
    correct = (rng.random(80) < 0.5).astype(float)
    stated = C.summary("verbalised", Predictions(conf, correct))
    assert stated["brier"]["value"] == pytest.approx(metrics.brier_score_loss(correct, conf), rel=1e-9)


def test_top_k_counts_a_tie_against_the_gold_option():
    rows = [
        ("loglikelihood", {"probs": [0.5, 0.3, 0.2], "gold": 1}, "incorrect"),  # rank 1: top-2 hit
        ("loglikelihood", {"probs": [0.5, 0.3, 0.2], "gold": 2}, "incorrect"),  # rank 2: miss
        ("loglikelihood", {"probs": [0.4, 0.4, 0.2], "gold": 1}, "incorrect"),  # tied with option 0: hit
        ("loglikelihood", {"probs": [0.4, 0.3, 0.3], "gold": 2}, "incorrect"),  # tied with option 1: miss
    ]
    block = C.summarize(_records(rows))["loglikelihood"]
    assert block["top_k_accuracy"]["2"]["value"] == pytest.approx(0.5)
    assert "3" not in block["top_k_accuracy"]  # three options: top-3 says nothing
    assert block["accuracy"]["value"] == 0.0  # argmax is option 0 everywhere, never the gold one
    assert block["nll"]["value"] == pytest.approx(
        -(math.log(0.3) + math.log(0.2) + math.log(0.4) + math.log(0.3)) / 4
    )


def test_stated_confidences_that_cannot_be_read_are_counted_not_scored():
    rows = [
        ("verbalised", {"value": 0.9}, "correct"),
        ("verbalised", {"value": 0.6}, "incorrect"),
        ("verbalised", {"value": None}, "correct"),
        ("verbalised", {"value": 0.8}, "unparseable"),  # an unreadable answer is wrong
    ]
    block = C.summarize(_records(rows))["verbalised"]
    assert block["n"] == 3 and block["n_unreadable"] == 1
    assert block["accuracy"]["value"] == pytest.approx(1 / 3)
    assert block["mean_confidence"]["value"] == pytest.approx((0.9 + 0.6 + 0.8) / 3)
    assert "nll" not in block and block["brier_form"] == "top_label"


def test_no_confidence_no_block():
    assert C.summarize(_records([])) == {}
    only_unreadable = C.summarize(_records([("verbalised", {"value": None}, "correct")]))
    assert only_unreadable == {"verbalised": {"source": "verbalised", "n": 0, "n_unreadable": 1}}


def test_the_bin_count_grows_with_n_up_to_fifteen():
    assert [C.n_bins(n) for n in (5, 64, 100, 150, 10_000)] == [1, 6, 10, 15, 15]
