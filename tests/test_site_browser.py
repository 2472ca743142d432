"""The leaderboard site in headless Chromium (playwright driving the system /usr/bin/chromium): pages
load from the file system with no console error and no request leaving file://, sorting works, and
the <script>/onerror= payloads in sample texts, model replies and model names render as text and
execute nothing. Writes the overview screenshot to docs/img/overview.png when
EMOBENCH_WRITE_SCREENSHOT=1 (else to the test's tmp folder).

CI installs: `apt-get install -y chromium chromium-driver` and `pip install playwright` (no
`playwright install`: the Debian Chromium is used).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_leaderboard import EVIL_MODEL, make_runs

from conftest import build_site

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    make_runs(root)
    out = build_site(root)
    return out


class Watch:
    """A page that records console errors, page errors, dialogs and every request's URL."""

    def __init__(self, browser):
        self.page = browser.new_page(viewport={"width": 1280, "height": 720})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def open(self, path: Path) -> None:
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("html[data-ready='1']", timeout=10_000)


def test_every_page_loads_without_errors_or_outside_requests(browser, site):
    w = Watch(browser)
    pages = sorted(site.glob("*.html"))
    assert len(pages) >= 10
    for page in pages:
        w.open(page)
    assert w.errors == []
    outside = [u for u in w.requests if not u.startswith("file://")]
    assert outside == [], outside
    assert any(u.endswith("assets/site.js") for u in w.requests)  # the script did load (and ran: data-ready)
    w.page.close()


def test_sorting_the_overview_by_a_column(browser, site):
    w = Watch(browser)
    w.open(site / "index.html")

    def models() -> list[str]:
        return w.page.eval_on_selector_all(
            "#overview tbody tr td:nth-child(2)", "els => els.map(e => e.textContent.trim())"
        )

    header = w.page.locator("#overview thead th", has_text="model")
    header.click()
    ascending = models()
    assert (
        ascending == sorted(ascending, key=str)
        and w.page.get_attribute("#overview thead th:nth-child(2)", "aria-sort") == "ascending"
    )
    header.click()
    assert models() == ascending[::-1]
    w.page.locator(
        "#overview thead th", has_text="overall"
    ).click()  # ascending: lowest score first, none last
    scores = w.page.eval_on_selector_all(
        "#overview tbody tr td:nth-child(3)", "els => els.map(e => e.dataset.sort)"
    )
    numbers = [float(s) for s in scores if s]
    assert numbers == sorted(numbers) and scores[-1] == ""  # the unranked model has no overall score
    assert w.errors == []
    w.page.close()


def test_payloads_render_as_text_and_execute_nothing(browser, site):
    w = Watch(browser)
    samples = next(site.glob("samples-openai-evil*-*.html"))
    for page in (site / "index.html", next(site.glob("model-openai-evil*.html")), samples):
        w.open(page)
        assert w.page.evaluate("typeof window.__pwned") == "undefined"
        assert w.page.locator("img").count() == 0 and w.page.locator("b[onmouseover]").count() == 0
        assert w.page.locator("script").count() == 2 if page.name == "index.html" else 1
    w.open(samples)
    body = w.page.inner_text("body")
    assert "<script>window.__pwned=1</script>" in body and 'onerror="window.__pwned=2"' in body
    w.open(site / "index.html")
    assert EVIL_MODEL in w.page.inner_text("#overview")
    assert w.dialogs == [] and w.errors == []
    assert [u for u in w.requests if not u.startswith("file://")] == []
    w.page.close()


def test_sample_filter_by_outcome(browser, site):
    w = Watch(browser)
    w.open(next(site.glob("samples-openai-weak*-*.html")))
    w.page.select_option("#outcome-filter", "incorrect")
    assert w.page.inner_text("#shown-count") == "20 shown"
    assert w.page.locator("#samples tbody tr:visible").count() == 20
    w.page.close()


def test_overview_screenshot(browser, site, tmp_path):
    target = (
        ROOT / "docs" / "img" / "overview.png"
        if os.environ.get("EMOBENCH_WRITE_SCREENSHOT") == "1"
        else tmp_path / "overview.png"
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    w = Watch(browser)
    w.open(site / "index.html")
    w.page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 10_000
    w.page.close()
