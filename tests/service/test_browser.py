"""The web page in a real browser: Playwright driving Debian's headless Chromium
(``/usr/bin/chromium``, installed by ``.ci/run``; no browser is downloaded)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import API_KEY, SEED_B_ATTACK, SEED_B_NORMAL
from flowsentinel.datasets.reader import read_file

pytestmark = pytest.mark.integration

CHROMIUM = (
    os.environ.get("FLOWSENTINEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
)


@pytest.fixture(scope="module")
def page(server):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            context = browser.new_context()
            pg = context.new_page()
            pg.set_default_timeout(20_000)
            pg.goto(server.url + "/")
            pg.fill("#api-key", API_KEY)
            pg.dispatch_event("#api-key", "change")
            pg.wait_for_function(
                "document.querySelector('#model-line').textContent.startsWith('Serving')"
            )
            yield pg
        finally:
            browser.close()


def test_page_shows_the_models(page) -> None:
    line = page.text_content("#model-line") or ""
    assert "flowsentinel-cicids2017-dos version 1" in line
    assert "flowsentinel-unsw-nb15-attack" in line


def test_upload_a_csv_and_see_the_verdicts(page, store, tmp_path) -> None:
    frame = read_file(store.cic_csv)[0].to_pandas()
    small = tmp_path / "flows.csv"
    header, *lines = store.cic_csv.read_text().splitlines()
    small.write_text("\n".join([header, *lines[:30]]) + "\n")
    page.set_input_files("#file-input", str(small))
    page.click("#submit-button")
    page.wait_for_selector("#verdicts tbody tr")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('scored')")
    verdicts = page.locator("#verdicts tbody td.verdict").all_text_contents()
    assert len(verdicts) == 30
    assert set(verdicts) <= {"BENIGN", "DoS"}
    truth = page.locator("#verdicts tbody tr td:nth-child(5)").all_text_contents()
    assert truth == [str(x) for x in frame["Label"].iloc[:30]]
    assert page.locator("#chart svg rect.bar").count() == len(set(verdicts))
    assert "flowsentinel-cicids2017-dos version 1" in (page.text_content("#result-model") or "")


def test_upload_a_json_record(page, tmp_path) -> None:
    record = tmp_path / "records.json"
    record.write_text(json.dumps([SEED_B_NORMAL, SEED_B_ATTACK]))
    page.set_input_files("#file-input", str(record))
    page.click("#submit-button")
    page.wait_for_function("document.querySelector('#status').textContent.includes('2 flow')")
    verdicts = page.locator("#verdicts tbody td.verdict").all_text_contents()
    assert verdicts == ["BENIGN", "Attack"]
    assert page.locator("#chart svg rect.bar.attack").count() == 1
    assert "flowsentinel-unsw-nb15-attack" in (page.text_content("#result-model") or "")


def test_an_error_is_shown_not_thrown(page, tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"flow_duration": 1.0}))
    page.set_input_files("#file-input", str(bad))
    page.click("#submit-button")
    page.wait_for_selector("#status.error")
    assert "field required" in (page.text_content("#status") or "")
