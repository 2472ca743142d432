"""The leaderboard's robustness column (issue 13): the spreads of each model's `permute` and `paraphrase`
runs beside its ranked score, on the task page and the overview, flagged when a run's k differs from
the others'; checked in the HTML and the JSON, and in headless Chromium (as tests/test_site_browser.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_robustness import options_shown, vignette_golds
from test_site_browser import Watch

from conftest import build_site
from emobench.cli import main
from emobench.testing.server import LoopbackServer, ServerConfig


def gold_picker():
    """Right on every vignette, in every order and wording: no spread at all."""
    golds = vignette_golds()

    def answer(messages):
        text = messages[-1]["content"]
        gold = golds[text.split("Story: ", 1)[1].strip()].capitalize()
        return json.dumps({"answer": next(k for k, v in options_shown(text).items() if v == gold)})

    return answer


def letter_a(messages):
    return json.dumps({"answer": "A"})


def make_board(root: Path) -> Path:
    """Three models on the vignettes with direct, permute and paraphrase; the third asks 2 orders."""

    def run(name: str, answer, k: int = 4) -> None:
        args = ["run", "--model", f"openai/{name}", "-t", "vignettes", "-v", "direct,permute,paraphrase"]
        args += ["--variant-arg", f"permute.k={k}", "-o", str(root / "runs" / name), "-q", "--no-cache"]
        with LoopbackServer(ServerConfig(answer_fn=answer)) as srv:
            assert main([*args, "--base-url", srv.base_url]) == 0

    run("steady-model", gold_picker())
    run("letter-model", letter_a)
    run("two-orders-model", letter_a, k=2)
    (root / "board.yaml").write_text(
        "name: robust\nruns: [runs/*/results.json]\n"
        "tasks:\n  - {task: vignettes, metric: accuracy, floor: 0.125, ceiling: 1.0}\n"
    )
    out = build_site(root)
    return out


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return make_board(tmp_path_factory.mktemp("robust"))


def results(site: Path, model: str) -> dict:
    return json.loads((site.parent / "runs" / model / "results.json").read_text())


def test_each_ranked_result_carries_the_spreads_of_its_model_s_robustness_runs(site):
    data = json.loads((site / "leaderboard.json").read_text())
    ranked = {e["model"]: e for e in data["entries"] if e["variant"] == "direct"}
    for model in ("steady-model", "letter-model", "two-orders-model"):
        own = {e["variant"]: e for e in results(site, model)["results"]}
        for variant in ("permute", "paraphrase"):
            shown = ranked[f"openai/{model}"]["robustness"][variant]
            vm = own[variant]["variant_metrics"]
            assert (shown["value"], shown["ci_low"], shown["ci_high"]) == tuple(
                vm["spread"][x] for x in ("value", "ci_low", "ci_high")
            )
    steady = ranked["openai/steady-model"]["robustness"]
    assert steady["permute"]["value"] == 0 and steady["paraphrase"]["value"] == 0
    assert steady["permute"]["over"] == "4 orders" and steady["paraphrase"]["over"] == "4 templates"
    two = ranked["openai/two-orders-model"]["robustness"]["permute"]
    assert two["over"] == "2 orders" and not two["comparable"] and "variant config differs" in two["flag"]
    assert ranked["openai/letter-model"]["robustness"]["permute"]["comparable"]


def test_the_task_page_shows_the_spreads_and_says_when_they_compare(site):
    page = next(site.glob("task-vignettes-*.html")).read_text()
    assert "order spread" in page and "wording spread" in page
    assert "comparable only between runs with the same k and the same templates" in page
    assert page.count('class="spread"') == 6  # 3 models x (order, wording)
    assert "2 orders" in page and page.count("⚠") >= 1
    index = (site / "index.html").read_text()
    assert index.count("↕") >= 6 and "same k and templates" in index


def test_the_robustness_column_renders_and_sorts_in_chromium(browser, site):
    w = Watch(browser)
    w.open(next(site.glob("task-vignettes-*.html")))
    table = w.page.locator("table.sortable").first  # the ranking (the deltas table follows)
    headers = table.locator("thead th").evaluate_all("els => els.map(e => e.textContent.trim())")
    column = headers.index("order spread") + 1
    table.locator("thead th", has_text="order spread").click()
    cells = table.locator(f"tbody tr td:nth-child({column})").evaluate_all(
        "els => els.map(e => [e.dataset.sort, e.innerText])"
    )
    values = [float(v) for v, _ in cells]
    assert values == sorted(values) and len(values) == 3
    assert any("4 orders" in text for _, text in cells) and any("2 orders" in text for _, text in cells)
    assert table.locator("td.spread .flag").count() == 1  # the 2-order run, shown but marked
    w.open(site / "index.html")
    assert w.page.locator("#overview .spread").count() == 6
    assert w.errors == [] and [u for u in w.requests if not u.startswith("file://")] == []
    w.page.close()
