"""Representation probing (`emobench probe`): validity checks with known answers on synthetic hidden
states (planted signal, shuffled labels, grouped folds), the solver against scikit-learn, the CIs
against emobench.metrics, extraction and its cache on a tiny random Llama, the command, `show`, the
leaderboard page, and one real SmolLM2-135M run (slow)."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from emobench import metrics as M
from emobench.audit import EMOTIONS
from emobench.battery import load_battery
from emobench.cli import main
from emobench.errors import ConfigError
from emobench.probe import cv, geometry, logreg, probes
from emobench.probe import stats as S

SHIPPED = load_battery("vignettes")
SETTINGS = probes.Settings(cv.Settings(), permutations=5)


def design(settings: probes.Settings = SETTINGS) -> probes.Design:
    return probes.Design.of(list(SHIPPED.items), [], settings.cv.folds, settings.cv.seed)


def synthetic_states(
    d: probes.Design,
    layers: int = 4,
    hidden: int = 48,
    seed: int = 0,
    affect_at: int | None = None,
    emotion_at: int | None = None,
) -> np.ndarray:
    """Noise [layers, items, hidden] with per-story content shared by a story's items; `affect_at` adds
    one direction to every affect-side item at that layer, `emotion_at` one direction per emotion."""
    rng = np.random.default_rng(seed)
    stories = {p: rng.normal(size=hidden) for p in dict.fromkeys(d.pair)}
    X = rng.normal(size=(layers, len(d.kind), hidden)) + np.array([stories[p] for p in d.pair])[None]
    affect_side = d.emotion >= 0
    if affect_at is not None:
        X[affect_at, affect_side] += rng.normal(size=hidden)
    if emotion_at is not None:
        X[emotion_at, affect_side] += 3.0 * rng.normal(size=(len(EMOTIONS), hidden))[d.emotion[affect_side]]
    return X


# ---- the solver -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_classes", [2, 8])
def test_batched_logistic_regression_is_scikit_learns_solution(n_classes):
    """Same objective as LogisticRegression(C): predicted probabilities agree, for several C, with
    problems of unequal size padded into one batch (padding rows have weight 0, padding columns are 0)."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(1)
    sizes, d = (40, 33), 12
    X = np.zeros((2, max(sizes), d))
    y = np.zeros((2, 3, max(sizes)), dtype=int)
    w = np.zeros((2, 3, max(sizes)))
    Cs = np.array([[0.01, 0.3, 3.0], [0.05, 1.0, 10.0]])
    for g, n in enumerate(sizes):
        labels = np.arange(n) % n_classes
        X[g, :n, : d - g] = rng.normal(size=(n, d - g)) + 0.8 * rng.normal(size=(n_classes, d - g))[labels]
        y[g, :, :n], w[g, :, :n] = labels, 1.0
    fitted = logreg.fit(logreg.Problems(X, y, w, Cs, n_classes), tol=1e-9)
    scores = fitted.scores(X)
    for g, n in enumerate(sizes):
        for m in range(3):
            ref = sklearn.LogisticRegression(C=Cs[g, m], tol=1e-10, max_iter=100_000).fit(
                X[g, :n], y[g, m, :n]
            )
            s = scores[g, m, :n]
            ours = (
                np.c_[1 / (1 + np.exp(s[:, 0])), 1 / (1 + np.exp(-s[:, 0]))]
                if n_classes == 2
                else np.exp(s - s.max(1, keepdims=True))
                / np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True)
            )
            np.testing.assert_allclose(ours, ref.predict_proba(X[g, :n]), atol=1e-5)


def test_class_balanced_weights_give_each_class_the_same_total():
    y = np.array([[0, 0, 0, 1, 1, 2]])
    w = cv.balanced(y, np.array([[True, True, True, True, False, True]]), 3)
    assert np.allclose(w, [[5 / 9, 5 / 9, 5 / 9, 5 / 3, 0, 5 / 3]]) and np.isclose(w.sum(), 5)


# ---- folds --------------------------------------------------------------------------------------------
def test_grouped_folds_never_split_a_pair_outer_or_inner_and_hold_every_emotion():
    d = design()
    for pid in set(d.pair):
        assert len(set(d.fold[d.pair == pid])) == 1
    for f in range(SETTINGS.cv.folds):
        assert {EMOTIONS[e] for e in d.emotion[(d.fold == f) & (d.kind == "affect")]} == set(EMOTIONS)
    task = probes.tasks(d, SETTINGS)["reception"]
    folds = cv._outer_folds(np.zeros((1, len(d.kind), 3)), task, d.fold, d.pair, d.strata, SETTINGS.cv)
    for f, (train, test) in enumerate(zip(folds.train_rows, folds.test_rows, strict=True)):
        assert not set(d.pair[train]) & set(d.pair[test])
        inner = folds.inner[f, : len(train)]
        for j in range(SETTINGS.cv.inner_folds):
            assert not set(d.pair[train][inner == j]) & set(d.pair[train][inner != j])


# ---- validity checks with known answers ----------------------------------------------------------------
def test_planted_affect_direction_gives_auroc_near_one_at_that_layer_and_chance_elsewhere():
    d = design()
    result = probes.analyse(synthetic_states(d, affect_at=2), d, SETTINGS)
    auroc = result.curves["reception"]["auroc"]
    assert auroc[2].value > 0.97 and auroc[2].ci_low > 0.9
    for layer in (0, 1, 3):
        assert auroc[layer].ci_low < 0.5 < auroc[layer].ci_high, (layer, auroc[layer])
    assert result.curves["reception"]["null"][2]["p"] == pytest.approx(1 / 6)  # above all 5 shuffles
    assert result.curves["reception"]["selectivity"][2].ci_low > 0.3


def test_planted_emotion_directions_are_categorized_and_chance_elsewhere():
    d = design()
    result = probes.analyse(synthetic_states(d, emotion_at=1), d, SETTINGS)
    accuracy = result.curves["categorization"]["accuracy"]
    assert accuracy[1].value > 0.9 and accuracy[1].n == 64
    for layer in (0, 2, 3):
        assert accuracy[layer].ci_low < 1 / 8 < accuracy[layer].ci_high, (layer, accuracy[layer])
    keyword = result.curves["keyword"]
    assert keyword["free_to_rich"][1].value > 0.9 and keyword["free_to_rich"][1].n == 16
    assert keyword["gap_free_trained"][1].ci_low <= 0 <= keyword["gap_free_trained"][1].ci_high


def test_shuffled_labels_give_chance_within_the_ci():
    """A strong planted signal, but the labels shuffled (stories kept together): both probes at chance."""
    d = design()
    rng = np.random.default_rng(7)
    stories = sorted(set(d.pair))
    emotion_of = dict(
        zip(stories, rng.permutation([EMOTIONS.index(s.split("-")[0]) for s in stories]), strict=True)
    )
    flip = {p: bool(rng.integers(2)) for p in stories}
    kind = np.array(
        [
            ("neutral" if k == "affect" else "affect") if flip[p] and k != "keyword_rich" else k
            for k, p in zip(d.kind, d.pair, strict=True)
        ]
    )
    emotion = np.array([emotion_of[p] if k != "neutral" else -1 for k, p in zip(kind, d.pair, strict=True)])
    shuffled = probes.Design(kind, emotion, d.pair, d.transfer, d.texts, d.fold)
    result = probes.analyse(synthetic_states(d, affect_at=0, emotion_at=1, layers=2), shuffled, SETTINGS)
    for m in (result.curves["reception"]["auroc"][0], result.curves["categorization"]["accuracy"][1]):
        chance = 0.5 if m.n == 128 else 1 / 8
        assert m.ci_low < chance < m.ci_high, m


def test_layer_curve_intervals_are_emobench_metrics_intervals():
    rng = np.random.default_rng(3)
    scores, labels = rng.normal(size=(3, 40)), rng.integers(0, 2, 40)
    values = rng.normal(size=(2, 25))
    for curve, row in zip(S.auroc_curve(scores, labels, np.zeros(40)), scores, strict=True):
        ref = M.auroc_metric(row, labels)
        assert np.allclose([curve.value, curve.ci_low, curve.ci_high], [ref.value, ref.ci_low, ref.ci_high])
    for curve, row in zip(S.mean_curve(values), values, strict=True):
        ref = M.mean(list(row))
        assert np.allclose([curve.value, curve.ci_low, curve.ci_high], [ref.value, ref.ci_low, ref.ci_high])


def test_within_fold_auroc_compares_only_items_of_the_same_fold():
    # fold 0 ranks perfectly, fold 1 perfectly, but fold 1's scores are all lower: pooled 0.75, within 1.0
    scores, labels, folds = np.array([[3, 2, 1, 0]], float), np.array([1, 0, 1, 0]), np.array([0, 0, 1, 1])
    assert S.auroc_values(scores, labels, folds)[0] == 1.0 and M.auroc(scores[0], labels) == 0.75


def test_rsa_is_high_when_states_lie_on_plutchiks_wheel_and_near_zero_for_noise():
    rng = np.random.default_rng(0)
    emotions = [e for e in EMOTIONS for _ in range(4)]
    angle = np.array([EMOTIONS.index(e) for e in emotions]) * 2 * np.pi / 8
    wheel = np.stack([np.cos(angle), np.sin(angle)], axis=1) @ rng.normal(size=(2, 20))
    X = np.stack([wheel + 0.05 * rng.normal(size=wheel.shape), rng.normal(size=wheel.shape)])
    rsa = geometry.rsa_curve(X, emotions)
    assert rsa[0].value > 0.8 and rsa[0].ci_low > 0.6 and rsa[0].n == 32
    assert rsa[1].ci_low < 0 < rsa[1].ci_high
    assert [geometry.wheel_distance("joy", e) for e in EMOTIONS] == [0, 1, 2, 3, 4, 3, 2, 1]


def test_control_task_labels_follow_word_types_not_items():
    texts = ["the storm broke the window", "the storm broke the window again", "a quiet garden"]
    a = probes.word_type_labels(texts, 8, seed=1)
    assert a[0] == probes.word_type_labels(texts[:1], 8, seed=1)[0]  # independent of the other items
    assert (a == probes.word_type_labels(texts, 8, seed=1)).all()


# ---- extraction and the command (tiny random Llama) ------------------------------------------------------
@pytest.fixture
def tiny(tiny_model_dir):
    return f"hf/{tiny_model_dir}"


def test_batched_extraction_equals_one_item_at_a_time_and_pools_only_the_items_tokens(tiny, tmp_path):
    from emobench.probe.extract import _Encoder, extract, load_model

    backend = load_model(tiny, {"device": "cpu"})
    texts = [it.text for it in SHIPPED.items[:6]]
    batched = extract(backend, texts, tmp_path / "a", batch_size=6)
    alone = extract(backend, texts, tmp_path / "b", batch_size=1)
    assert batched.extracted == 6 and batched.layers == 3  # embeddings + 2 blocks
    for pool in ("mean", "last"):
        np.testing.assert_allclose(batched.states[pool], alone.states[pool], atol=1e-5)
    ids, own = _Encoder(backend, chat_template=True)(texts[0])
    assert backend.tokenizer.decode([i for i, o in zip(ids, own, strict=True) if o]).strip() == texts[0]
    assert not all(own)  # the template's tokens are not the item's


def test_probe_command_writes_probe_json_and_svgs_and_show_prints_the_summary(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "probe",
                "--model",
                tiny,
                "--model-arg",
                "device=cpu",
                "-o",
                str(out),
                "-q",
                "--permutations",
                "3",
                "--pool",
                "mean,last",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert (
        "affect reception" in printed and "categorization" in printed and f"run directory: {out}" in printed
    )
    report = json.loads((out / "probe.json").read_text())
    assert report["manifest"]["battery"]["items"] == 144 and report["manifest"]["input"]["layers"] == [
        0,
        1,
        2,
    ]
    assert report["extraction"]["extracted"] == 144
    for pool in ("mean", "last"):
        body = report["pools"][pool]
        assert set(body["curves"]) == {"reception", "categorization", "keyword", "geometry"}
        assert all(len(c) == 3 for a in body["curves"].values() for c in a.values())
        assert {"value", "ci_low", "ci_high", "n"} <= set(body["curves"]["reception"]["auroc"][0])
        assert body["summary"]["dissociation"]["difference"]["n"] == 64
        for chart in ("probes", "geometry"):
            ET.parse(out / f"{chart}-{pool}.svg")  # well-formed SVG
    assert main(["show", str(out)]) == 0
    assert "best layer" in capsys.readouterr().out
    assert main(["show", str(out), "-f", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    nulls = [r for r in rows if r["metric"] == "null_p"]
    assert len(nulls) == 2 * 2 * 3 and all(0 < float(r["value"]) <= 1 and r["n"] == "3" for r in nulls)


def test_new_probe_settings_read_the_cache_without_loading_the_model(tiny, tmp_path, monkeypatch):
    from emobench.probe import extract as E
    from emobench.probe.run import ProbeConfig, run_probe

    config = ProbeConfig(
        model=tiny, model_args={"device": "cpu"}, output=str(tmp_path / "run"), permutations=2
    )
    run_probe(config)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded although every item is cached")

    monkeypatch.setattr(E, "load_model", no_model)
    config.layers, config.pools, config.folds = "1-2", ("last",), 4
    _, report = run_probe(config)
    assert report["extraction"] == {**report["extraction"], "extracted": 0, "cached": 144}
    assert report["pools"]["last"]["layers"] == [1, 2] and report["manifest"]["probe"]["folds"] == 4


def test_a_killed_extraction_resumes_with_the_items_it_had_not_finished(tiny, tmp_path):
    from emobench.probe.run import ProbeConfig, run_probe

    config = ProbeConfig(
        model=tiny, model_args={"device": "cpu"}, output=str(tmp_path / "run"), permutations=2, batch_size=16
    )

    def kill_after_two_batches(done: int, total: int) -> None:
        if done >= 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_probe(config, kill_after_two_batches)
    assert len(list((tmp_path / "run" / "hidden").glob("*.npy"))) == 32
    _, report = run_probe(config)
    assert (report["extraction"]["extracted"], report["extraction"]["cached"]) == (112, 32)


def test_a_user_battery_file_and_aipsy_affect_with_its_transfer_split(tiny, tmp_path):
    from test_vignettes import write_aipsy

    from emobench.probe.run import ProbeConfig, run_probe

    rows = [
        {"id": it.id, "pair_id": it.pair_id, "kind": it.kind, "emotion": it.emotion, "text": it.text}
        for it in SHIPPED.items
        if it.kind != "keyword_rich"
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    _, report = run_probe(
        ProbeConfig(
            model=tiny,
            model_args={"device": "cpu"},
            battery=str(path),
            output=str(tmp_path / "user"),
            permutations=2,
        )
    )
    assert report["manifest"]["battery"]["kinds"] == {"affect": 64, "neutral": 64}
    assert "keyword" not in report["pools"]["mean"]["curves"]  # no keyword-rich items: no keyword probe
    root = write_aipsy(tmp_path / "aipsy")
    _, report = run_probe(
        ProbeConfig(
            model=tiny,
            model_args={"device": "cpu"},
            battery="aipsy_affect",
            data_dir=str(root),
            output=str(tmp_path / "aipsy-run"),
            folds=2,
            permutations=2,
        )
    )
    transfer = report["pools"]["mean"]["curves"]["transfer"]
    assert transfer["categorization_accuracy"][0]["n"] == report["manifest"]["battery"]["transfer_items"] > 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "openai/gpt-4o-mini"], "only in-process transformers models"),
        (["--layers", "0,99"], "the model has layers 0-2"),
        (["--pool", "max"], "choose from mean, last"),
        (["--battery", "nope.jsonl"], "no such file"),
    ],
)
def test_probe_command_errors_are_one_line(tiny, tmp_path, capsys, argv, message):
    args = ["probe", "-q", "-o", str(tmp_path / "r"), "--model", tiny, "--model-arg", "device=cpu", *argv]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emobench: error: ") and message in err and "\n" not in err


def test_a_battery_too_small_for_the_folds_is_a_clear_error(tmp_path):
    from emobench.probe.run import check_battery

    small = load_battery(str(_write(tmp_path / "small.jsonl", list(SHIPPED.items)[:12])))
    with pytest.raises(ConfigError, match=r"needs at least 10 of each \(or fewer --folds\)"):
        check_battery(small, 5)


def _write(path: Path, items) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {"id": it.id, "pair_id": it.pair_id, "kind": it.kind, "emotion": it.emotion, "text": it.text}
            )
            + "\n"
            for it in items
        )
    )
    return path


# ---- the leaderboard's probing page --------------------------------------------------------------------
def test_leaderboard_gets_a_probing_page_grouped_by_battery_with_escaped_names(tiny, tmp_path, monkeypatch):
    from emobench.leaderboard import build_site, collect, load_config
    from emobench.paths import leaderboards_dir
    from emobench.probe.report import read_report
    from emobench.probe.run import ProbeConfig, run_probe

    monkeypatch.chdir(tmp_path)  # the leaderboard file's own `runs` patterns are relative to the cwd
    runs = tmp_path / "runs"
    assert main(["run", "--model", "random", "--tasks", "vignettes", "-o", str(runs / "a"), "-q"]) == 0
    run_dir, _ = run_probe(
        ProbeConfig(model=tiny, model_args={"device": "cpu"}, output=str(runs / "p"), permutations=2)
    )
    report = read_report(run_dir)
    report["manifest"]["model"]["spec"] = "<script>alert(1)</script>"
    report["manifest"]["battery"]["fingerprint"] = "another-one"
    (runs / "q").mkdir()
    (runs / "q" / "probe.json").write_text(json.dumps(report))
    board = collect(load_config(leaderboards_dir() / "core.yaml"), [str(runs / "a")])
    counts = build_site(board, tmp_path / "site")
    html = (tmp_path / "site" / "probing.html").read_text()
    assert counts["probing_pages"] == 1 and html.count("<h2>") == 2  # two batteries, two groups
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    assert tiny.split("/")[-1] in html and html.count("<svg") == 4
    assert 'href="probing.html"' in (tmp_path / "site" / "index.html").read_text()  # linked from the nav


# ---- the real model ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_smollm2_probe_on_the_stories_with_keyword_rich_versions(tmp_path):
    """The embedded SmolLM2-135M (GGUF, de-quantised by transformers) on 16 stories x 3 versions:
    every layer gets every number, and affect reception is above chance (0.96 on the whole battery)."""
    pytest.importorskip("transformers")
    from emobench.probe.run import ProbeConfig, run_probe

    try:
        from emobench.models.llamacpp import embedded_model_path

        embedded_model_path()
    except ConfigError as exc:
        pytest.skip(str(exc))
    stories = {it.pair_id for it in SHIPPED.items if it.kind == "keyword_rich"}
    path = _write(tmp_path / "stories.jsonl", [it for it in SHIPPED.items if it.pair_id in stories])
    _, report = run_probe(
        ProbeConfig(battery=str(path), output=str(tmp_path / "run"), folds=4, permutations=5)
    )
    body = report["pools"]["mean"]
    assert report["manifest"]["model"]["gguf_file"].endswith(".gguf") and len(body["layers"]) == 31
    assert report["extraction"]["extracted"] == 48
    best = body["summary"]["reception"]
    assert best["auroc"]["n"] == 32 and best["auroc"]["ci_low"] > 0.5
