"""The leaderboard's task page shows each result's reliability diagram and, for an 8-way Plutchik task,
its wheel plot (checked in headless Chromium, as tests/test_site_browser.py does): drawn, visible, with
every confidence source in the legend and no console error or outside request."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_site_browser import Watch

from conftest import build_site, loop_run_args
from emobench.cli import main
from emobench.leaderboard.site import slug
from emobench.testing.server import LoopbackServer, ServerConfig
from emobench.wheel import PETALS

TASK = """name: wheel_site
data: items.jsonl
fields: {id: id, input: text, target: label}
labels: %s
template: |
  {{ input }}
  {{ lettered_choices }}
  Reply with {"answer": "<letter>"}.
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibration_site")
    rows = [{"id": f"s{k}", "text": f"<b>Story</b> {k}.", "label": PETALS[k % 8]} for k in range(24)]
    (root / "items.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "task.yaml").write_text(TASK % json.dumps(list(PETALS)))
    with LoopbackServer(ServerConfig()) as srv:
        args = loop_run_args(srv.base_url, root / "task.yaml")
        out = ["--tasks", "wheel_site", "--variant", "direct,confidence", "-q", "--no-cache"]
        assert main([*args, *out, "-o", str(root / "runs" / "loop")]) == 0
    (root / "board.yaml").write_text(
        "name: cal\ntitle: Calibration board\nruns: [runs/*/results.json]\n"
        "tasks:\n  - {task: wheel_site, metric: accuracy, floor: 0.125, ceiling: 1.0}\n"
    )
    return build_site(root)


def test_the_task_page_shows_the_reliability_diagram_and_the_wheel(browser, site):
    w = Watch(browser)
    w.open(site / f"task-{slug('wheel_site')}.html")
    diagrams = w.page.locator("svg.reliability")
    assert diagrams.count() == 2  # direct and confidence
    box = diagrams.first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 300
    assert diagrams.first.is_visible()
    legend = w.page.locator("svg.reliability").nth(1).inner_html()
    assert "top_logprobs (n=24)" in legend and "verbalised (n=24)" in legend
    assert w.page.locator("svg.reliability circle").count() > 6  # the bins are drawn
    assert w.page.locator("svg.wheel").count() == 2 and w.page.locator("svg.wheel").first.is_visible()
    text = w.page.inner_text("body")
    assert "ECE" in text and "Brier (multiclass)" in text
    assert w.errors == [] and [u for u in w.requests if not u.startswith("file://")] == []
