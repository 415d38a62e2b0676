"""Reports: the PDF renders (pdftoppm) with its charts, the CSV sums, the receipt printer, manual sale, pump test."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image

from tests.manager.conftest import Station


def _shift_with_sales(mst: Station) -> tuple[str, dict[str, object]]:
    shift = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station", "float_fen": 10_000})
    fill = mst.fill(1, min_ml=3000)
    order = mst.order([{"kind": "fuel", "fill_id": fill["fill_id"]}, {"kind": "item", "sku": "6920202888883"}])
    payable = mst.payable(order["order_id"])
    mst.pay(order["order_id"], [{"tender": "cash", "amount_fen": payable}])
    return shift["shift_id"], fill


def test_reports_export_pdf_with_charts_csv_that_sums_and_a_printed_receipt(mst: Station, tmp_path: Path) -> None:
    sid, fill = _shift_with_sales(mst)
    report = mst.call("POST", f"/api/v1/manager/shifts/{sid}/close", json={"declared_cash_fen": 10_000})
    # CSV: each section sums to the report's totals
    r = mst.api.get(f"/api/v1/manager/shifts/{sid}/report", params={"format": "csv"})
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    by = {s: [x for x in rows if x["section"] == s] for s in {x["section"] for x in rows}}
    (total,) = by["total"]
    assert sum(int(x["amount_fen"]) for x in by["grade"]) == report["fuel"]["amount_fen"] == fill["amount_fen"]
    assert sum(int(x["volume_ml"]) for x in by["nozzle"]) == int(total["volume_ml"]) == fill["volume_ml"]
    assert sum(int(x["net_fen"]) for x in by["tender"]) == int(total["net_fen"]) == report["totals"]["net_fen"]
    assert sum(int(x["amount_fen"]) for x in by["hour"]) == report["orders"]["payable_fen"]
    assert sum(int(x["variance_ml"]) for x in by["meter"]) == int(total["variance_ml"]) == 0
    assert {x["key"]: int(x["amount_fen"]) for x in by["cash"]}["over_short"] == 10_000 - report["cash"]["expected_fen"]
    # PDF: a real page, rendered by poppler, with the bar charts' colour and text on it
    pdf = mst.api.get(f"/api/v1/manager/shifts/{sid}/report", params={"format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    path = tmp_path / "shift.pdf"
    path.write_bytes(pdf.content)
    if shutil.which("pdftoppm") is None:
        pytest.fail("pdftoppm missing: install Debian's poppler-utils (scripts/setup.sh)")
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                   check=True, timeout=60)
    (png,) = sorted(tmp_path.glob("page*.png"))
    img = Image.open(png).convert("RGB")
    assert img.width > 400 and img.height > 600
    colours = img.getcolors(maxcolors=1_000_000) or []
    bar_blue = sum(n for n, (red, g, b) in colours
                   if abs(red - 0x2F) < 12 and abs(g - 0x6D) < 12 and abs(b - 0xB5) < 12)
    dark = sum(n for n, (red, g, b) in colours if red + g + b < 200)
    assert bar_blue > 200, "no chart bars on page 1"
    assert dark > 800, "no text on page 1"
    shutil.copy(png, Path("/tmp/forecourt-shift-report.png"))  # for a human look
    # the receipt printer: ESC/POS bytes in the printer's Chinese encoding
    assert mst.call("POST", f"/api/v1/manager/shifts/{sid}/report/print")["printed"] is True
    data = mst.printer.read_bytes()
    assert data.startswith(b"\x1b@") and data.endswith(b"\x1dV\x00")
    assert "班结报表".encode("gb18030") in data
    txt = mst.api.get(f"/api/v1/manager/shifts/{sid}/report", params={"format": "txt"}).text
    assert "over/short" in txt
    # day and month reports cover the same sale; the day cannot be closed before it is over
    now = datetime.fromtimestamp(mst.st.agent.clock.now_ms() // 1000, UTC) + timedelta(hours=8)
    day = mst.call("GET", f"/api/v1/manager/reports/day/{now:%Y-%m-%d}")
    assert day["totals"]["net_fen"] == report["totals"]["net_fen"]
    assert day["meter_variance_ml"] == 0 and len(day["shifts"]) == 1
    month = mst.call("GET", f"/api/v1/manager/reports/month/{now:%Y-%m}")
    assert month["orders"]["count"] == 1
    assert mst.api.post(f"/api/v1/manager/days/{now:%Y-%m-%d}/close").json()["error"]["code"] == "day_not_over"


def test_manual_sale_and_pump_test_are_reconciled_against_the_meter(mst: Station) -> None:
    shift = mst.call("POST", "/api/v1/manager/shifts", 201, json={"scope": "station"})
    opened = {int(k): v["volume_total_ml"] for k, v in shift["open_readings"].items()}
    # pump test on nozzle 1: run on the pump, excluded from sales
    test = mst.call("POST", "/api/v1/manager/pump-tests", 201, json={"nozzle": 1, "preset_volume_ml": 2000,
                                                                      "note": "5L can check"})
    mst.st.sim.lift(1, 1)
    fin = mst.st.wait_event(lambda e: e.topic == "fill.finished" and e.data["pump_id"] == 1, 20).data
    mst.st.sim.hang(1)
    assert fin["fill_id"] == test["fill_id"]
    assert fin["state"] == "test"
    assert mst.call("GET", "/api/v1/pumps/1")["unpaid"] == 0
    # a manual sale is only for a pump that is not connected
    refused = mst.api.post("/api/v1/manager/manual-sales", json={"nozzle": 1, "volume_ml": 5000})
    assert refused.json()["error"]["code"] == "pump_connected"
    mst.st.sim.offline(2)
    mst.st.wait_state(2, "offline", 15)
    wrong = mst.api.post("/api/v1/manager/manual-sales", json={"nozzle": 3, "volume_ml": 5000, "amount_fen": 4000})
    assert wrong.json()["error"]["code"] == "amount_mismatch"
    manual = mst.call("POST", "/api/v1/manager/manual-sales", 201, json={
        "nozzle": 3, "volume_ml": 5000, "amount_fen": 3945, "reason": "bus cable cut", "request_key": "manual-0001"})
    assert (manual["kind"], manual["state"], manual["amount_fen"], manual["price_fen"]) == ("manual", "finished",
                                                                                           3945, 789)
    again = mst.call("POST", "/api/v1/manager/manual-sales", 201, json={
        "nozzle": 3, "volume_ml": 5000, "amount_fen": 3945, "reason": "bus cable cut", "request_key": "manual-0001"})
    assert again["fill_id"] == manual["fill_id"]
    order = mst.order([{"kind": "fuel", "fill_id": manual["fill_id"]}])
    mst.pay(order["order_id"], [{"tender": "cash", "amount_fen": mst.payable(order["order_id"])}])
    # close: pump 2 is offline, so its counters are typed in from the dispenser (it sold 5 L stand-alone)
    report = mst.call("POST", f"/api/v1/manager/shifts/{shift['shift_id']}/close",
                      json={"readings": {"3": opened[3] + 5000, "4": opened[4]}})
    meter = {m["nozzle"]: m for m in report["meter"]}
    assert (meter[1]["test_ml"], meter[1]["sold_ml"], meter[1]["variance_ml"]) == (fin["volume_ml"], 0, 0)
    assert meter[1]["meter_ml"] == fin["volume_ml"]
    assert (meter[3]["manual_ml"], meter[3]["sold_ml"], meter[3]["variance_ml"]) == (5000, 5000, 0)
    assert meter[3]["close_source"] == "manual"
    assert report["fuel"]["manual"] == {"fills": 1, "volume_ml": 5000, "amount_fen": 3945}
    assert report["fuel"]["volume_ml"] == 5000  # the pump test is not a sale
    # the audit log: filtered reads only, nothing can edit it
    audit = mst.call("GET", "/api/v1/manager/audit", params={"action": "manual.sale"})
    assert len(audit) == 1
    assert audit[0]["after"]["volume_ml"] == 5000 and audit[0]["actor"] == "station"
    pump_audit = mst.call("GET", "/api/v1/manager/audit", params={"action": "pump.*"})
    assert [(a["action"], a["actor"]) for a in pump_audit] == [("pump.test", "station"),
                                                               ("pump.authorize", "pump-test:station")]
    assert mst.api.delete("/api/v1/manager/audit").status_code == 405
    assert mst.api.get("/api/v1/manager/audit", headers=mst.login("c01", "1234")).status_code == 403
    queued = mst.st.agent.store.query("SELECT payload FROM outbox WHERE kind = 'audit.entry'")
    assert any('"manual.sale"' in q["payload"] for q in queued)
    mst.st.sim.online(2)
