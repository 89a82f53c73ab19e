"""The web page in a real browser: Playwright driving Debian's headless Chromium
(``/usr/bin/chromium``, installed by ``.ci/run``; no browser is downloaded)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import dpkt
import pytest

from conftest import API_KEY, SEED_B_ATTACK, SEED_B_NORMAL, SHARED
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
    verdicts = page.locator("#verdicts tbody td.verdict .label").all_text_contents()
    assert len(verdicts) == 30
    assert set(verdicts) <= {"BENIGN", "DoS"}
    truth = page.locator("#verdicts tbody td.col-true_label").all_text_contents()
    assert truth == [str(x) for x in frame["Label"].iloc[:30]]
    assert page.locator("#chart svg rect.bar").count() == len(set(verdicts))
    assert "flowsentinel-cicids2017-dos version 1" in (page.text_content("#result-model") or "")


def test_upload_a_json_record(page, tmp_path) -> None:
    record = tmp_path / "records.json"
    record.write_text(json.dumps([SEED_B_NORMAL, SEED_B_ATTACK]))
    page.set_input_files("#file-input", str(record))
    page.click("#submit-button")
    page.wait_for_function("document.querySelector('#status').textContent.includes('2 flow')")
    verdicts = page.locator("#verdicts tbody td.verdict .label").all_text_contents()
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


ATTACK_PCAP = SHARED / "pcaps" / "attack" / "slowloris-lab.pcap"
OTHER_PCAP = SHARED / "pcaps" / "attack" / "ppa3-tcp_ports.pcapng"
ATTACKER, VICTIM = "10.0.2.15", "192.168.56.102:80"


def _mixed_capture(target: Path) -> Path:
    """Slowloris (300 flows from one attacker) and a port listing of another host, written as
    one Ethernet pcap with dpkt: flows the test model calls DoS and flows it calls BENIGN."""
    with target.open("wb") as out:
        writer = dpkt.pcap.Writer(out, linktype=dpkt.pcap.DLT_EN10MB, nano=False)
        with ATTACK_PCAP.open("rb") as fh:
            for ts, buf in dpkt.pcap.Reader(fh):
                writer.writepkt(buf, ts)
        with OTHER_PCAP.open("rb") as fh:
            for ts, buf in dpkt.pcapng.Reader(fh):
                writer.writepkt(buf, ts)
    return target


def _column(page, key: str) -> list[str]:
    return page.locator(f"#verdicts tbody td.col-{key}").all_text_contents()


@pytest.mark.skipif(not OTHER_PCAP.exists(), reason="../shared/datasets not here")
def test_upload_a_capture_and_read_it_as_an_analyst(page, tmp_path) -> None:
    page.set_input_files("#file-input", str(_mixed_capture(tmp_path / "mixed.pcap")))
    page.click("#submit-button")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('scored')")
    # identity columns: addresses, ports, start (UTC)
    sources = _column(page, "src_ip")
    assert len(sources) > 300 and ATTACKER in sources and len(set(sources)) >= 2
    assert set(_column(page, "dst_port")) >= {"80"}
    starts = _column(page, "start")
    assert starts[0].startswith("2020-03-31 00:35:49.") and all(s for s in starts)
    # the per-source summary lists the attacker first, with its victim
    first = page.locator("#sources tbody tr").first.locator("td").all_text_contents()
    assert first[0] == ATTACKER and first[1] == "300" and first[3] == VICTIM
    assert int(first[2]) > 0
    # sorting by a column changes the order (descending on a second click)
    rows_before = _column(page, "row")
    page.click("#verdicts th[data-key='src_port'] button")
    ports = [int(p) for p in _column(page, "src_port")]
    assert ports == sorted(ports) and _column(page, "row") != rows_before
    page.click("#verdicts th[data-key='src_port'] button")
    ports = [int(p) for p in _column(page, "src_port")]
    assert ports == sorted(ports, reverse=True)
    assert page.get_attribute("#verdicts th[data-key='src_port']", "aria-sort") == "descending"
    # the verdict filter hides the benign rows
    labels = page.locator("#verdicts tbody td.verdict .label").all_text_contents()
    assert "BENIGN" in labels and any(x != "BENIGN" for x in labels)
    flagged_option = page.locator("#verdict-filter option").nth(1).get_attribute("value")
    page.select_option("#verdict-filter", value=flagged_option)
    shown = page.locator("#verdicts tbody td.verdict .label").all_text_contents()
    assert shown and "BENIGN" not in shown
    assert len(shown) == sum(x != "BENIGN" for x in labels)
    page.select_option("#verdict-filter", value="BENIGN")
    assert set(page.locator("#verdicts tbody td.verdict .label").all_text_contents()) == {"BENIGN"}
    # opening a row shows the whole record
    assert page.is_hidden("#detail")
    row = page.locator("#verdicts tbody tr").first
    port = row.locator("td.col-src_port").text_content()
    row.click()
    page.wait_for_selector("#detail", state="visible")
    fields = dict(
        zip(
            page.locator("#detail-fields th").all_text_contents(),
            page.locator("#detail-fields td").all_text_contents(),
            strict=True,
        )
    )
    assert fields["src_port"] == port and fields["label"] == "BENIGN"
    assert {"flow_id", "start", "fwd_bytes", "bwd_packets", "attack_probability"} <= set(fields)
    # the novelty note and the row's marker follow the record's in_distribution
    novel = fields["in_distribution"] == "false"
    assert page.is_visible("#detail-novel") == novel
    assert (row.locator(".novel").count() == 1) == novel
    page.click("#detail-close")
    assert page.is_hidden("#detail")


def test_reasons_and_novel_traffic_are_shown_when_present(page) -> None:
    """Records with the model's optional answers (novelty, reasons): the page's own renderer
    given one such answer in the /v1/scan shape."""
    identity = {
        "flow_id": "10.0.0.9-10.0.0.1-4000-80-6", "src_ip": "10.0.0.9", "src_port": 4000,
        "dst_ip": "10.0.0.1", "dst_port": 80, "protocol": "tcp",
        "start": "2017-07-05T09:00:01.123456+00:00", "duration_s": 1.5, "fwd_packets": 3,
        "bwd_packets": 2, "fwd_bytes": 100, "bwd_bytes": 40,
    }  # fmt: skip
    reasons = [
        {"feature": "Flow Duration", "value": 1500000, "contribution": 0.31,
         "text": "Flow Duration is long"},
        {"feature": "Bwd Packets/s", "value": None, "contribution": -0.05,
         "text": "Bwd Packets/s is missing"},
    ]  # fmt: skip
    rows = [
        identity | {"row": 0, "label": "DoS", "probability": 0.9, "attack_probability": 0.9,
                    "novelty": 0.97, "in_distribution": False, "confidence": "low",
                    "reasons": reasons},
        identity | {"row": 1, "src_port": 4001, "label": "BENIGN", "probability": 0.8,
                    "attack_probability": 0.2, "novelty": 0.1, "in_distribution": True,
                    "confidence": "high", "reasons": []},
    ]  # fmt: skip
    answer = {
        "model": "flowsentinel-cicids2017-dos", "version": "1", "dataset": "cicids2017",
        "task": "dos", "source": "pcap", "filename": "x.pcap", "n_flows": 2,
        "summary": {"BENIGN": 1, "DoS": 1}, "attack_flows": 1,
        "sources": [{"source": "10.0.0.9", "flows": 2, "flagged": 1,
                     "top_destination": "10.0.0.1:80"}],
        "predictions": rows,
    }  # fmt: skip
    page.evaluate("(out) => render(out)", answer)
    marks = page.locator("#verdicts tbody tr .novel")
    assert marks.count() == 1 and marks.first.text_content() == "novel traffic"
    assert page.locator("#verdicts tbody tr").first.locator(".novel").count() == 1
    page.locator("#verdicts tbody tr").first.click()
    page.wait_for_selector("#detail", state="visible")
    assert page.is_visible("#detail-novel")
    cells = page.locator("#detail-reasons tbody tr").all()
    assert [c.locator("td").all_text_contents() for c in cells] == [
        ["Flow Duration is long", "1500000", "0.3100"],
        ["Bwd Packets/s is missing", "—", "-0.0500"],
    ]
    fields = page.locator("#detail-fields th").all_text_contents()
    assert {"novelty", "in_distribution", "confidence"} <= set(fields)
    assert "reasons" not in fields
    page.locator("#verdicts tbody tr").nth(1).click()
    assert page.is_hidden("#detail-novel") and page.is_hidden("#detail-reasons")


def test_a_flood_capture_shows_its_incident_and_timeline(page, tmp_path) -> None:
    from tests.capture.craft import pcap_bytes
    from tests.capture.test_windows import VICTIM, spoofed_syn_flood

    capture = tmp_path / "flood.pcap"
    capture.write_bytes(pcap_bytes(spoofed_syn_flood()))
    page.reload()  # a fresh page: an earlier test leaves the flow drawer open over the form
    page.wait_for_selector("#model-select option", state="attached")
    page.set_input_files("#file-input", str(capture))
    page.click("#submit-button")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('scored')")
    assert page.locator("#incidents-block").is_visible()
    rows = page.locator("#incidents tbody tr")
    assert rows.count() == 1
    cells = rows.first.locator("td").all_text_contents()
    assert cells[1:4] == ["DDoS", "SYN flood", f"{VICTIM}:80"] and cells[6] == "5000"
    assert page.locator("#incident-timeline svg rect.bar.attack").count() == 1


def test_flows_show_the_incident_they_belong_to(page, tmp_path) -> None:
    """A UDP flood of 50 sources, 40 datagrams each in one second: whatever the flow model
    says of each flow, every one went unanswered during the flood the windows saw, so every
    row of the verdict table names the incident."""
    from tests.capture.craft import Pkt, pcap_bytes
    from tests.capture.test_windows import VICTIM

    sources = [f"203.0.113.{k}" for k in range(1, 51)]
    pkts = [Pkt(i * 500, sources[i % 50], VICTIM, 40_000 + i % 50, 53, proto=17, payload=512)
            for i in range(2_000)]  # fmt: skip
    capture = tmp_path / "udp-flood.pcap"
    capture.write_bytes(pcap_bytes(pkts))
    page.reload()
    page.wait_for_selector("#model-select option", state="attached")
    page.set_input_files("#file-input", str(capture))
    page.click("#submit-button")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('scored')")
    assert page.locator("#incidents tbody tr").count() == 1
    headings = page.locator("#verdicts thead th").all_text_contents()
    assert any(h.startswith("incident") for h in headings)
    cells = page.locator("#verdicts tbody td.col-incident_id").all_text_contents()
    assert len(cells) == 50 and set(cells) == {"inc-1"}


def test_rotated_slices_chosen_together_are_one_capture(page, tmp_path) -> None:
    """Several captures picked at once in the file input: one scan, one incident."""
    import io

    from tests.capture.capture_sets import slice_records
    from tests.capture.craft import pcap_bytes
    from tests.capture.test_windows import VICTIM, spoofed_syn_flood

    data = pcap_bytes(spoofed_syn_flood())
    n = len(list(dpkt.pcap.Reader(io.BytesIO(data))))
    paths = []
    for k, part in enumerate(slice_records(data, [n // 2])):
        paths.append(tmp_path / f"flood-{k}.pcap")
        paths[-1].write_bytes(part)
    page.reload()
    page.wait_for_selector("#model-select option", state="attached")
    page.set_input_files("#file-input", [str(p) for p in paths])
    page.click("#submit-button")
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('scored')")
    assert "from 2 captures" in page.locator("#status").text_content()
    rows = page.locator("#incidents tbody tr")
    assert rows.count() == 1
    cells = rows.first.locator("td").all_text_contents()
    assert cells[1:4] == ["DDoS", "SYN flood", f"{VICTIM}:80"] and cells[6] == "5000"
