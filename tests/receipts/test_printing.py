"""The print queue: a real TCP printer on localhost, a missing printer, file printers, reprints, the API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent.api import ApiServer, create_app
from agent.api.receipts import router
from agent.config import PrinterConf
from agent.errors import Conflict
from agent.printing import PrintQueue
from tests.conftest import free_port
from tests.receipts.conftest import Listener, Till, wait_event
from tests.receipts.escpos_decode import decode

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.close()


def _jobs(till: Till) -> list[dict[str, object]]:
    return till.agent.store.query("SELECT * FROM print_jobs ORDER BY id")


def test_tcp_printer_receives_the_receipt(till: Till, listener: Listener) -> None:
    queue = PrintQueue(till.agent, PrinterConf(url=f"tcp://127.0.0.1:{listener.port}"))
    sub = till.agent.bus.subscribe()
    queue.start()
    try:
        order = till.sell([{"kind": "amount", "amount_fen": 1000}], given_fen=2000)
        assert listener.received.wait(10)
        wait_event(sub, lambda e: e.topic == "print.done" and e.data["state"] == "printed")
    finally:
        queue.close()
    out = decode(listener.jobs[0])
    assert str(order["receipt_no"]) in out.text and "找零 Change" in out.text and out.drawer_kicks == 1
    assert _jobs(till)[0]["state"] == "printed" and _jobs(till)[0]["attempts"] == 1
    assert queue.status()["state"] == "ok"


def test_missing_printer_never_blocks_the_sale_and_prints_when_it_appears(till: Till) -> None:
    port = free_port()  # nothing listens here yet
    queue = PrintQueue(till.agent, PrinterConf(url=f"tcp://127.0.0.1:{port}"))
    sub = till.agent.bus.subscribe()
    queue.start()
    try:
        ev = wait_event(sub, lambda e: e.topic == "printer.status" and e.data["state"] == "error")
        assert ev.data["message"].startswith(f"打印机未连接 / printer not reachable at tcp://127.0.0.1:{port}")
        assert ev.data["pending"] == 0  # reported at start, before any sale
        order = till.sell([{"kind": "amount", "amount_fen": 1000}])
        assert order["state"] == "paid"  # committed before any printing
        ev = wait_event(sub, lambda e: e.topic == "print.retry")
        assert ev.data["attempts"] == 1 and "Connection refused" in ev.data["error"]
        assert queue.status()["pending"] == 1
        job = _jobs(till)[0]
        assert job["state"] == "pending" and job["attempts"] == 1 and "not reachable" in str(job["last_error"])
        assert till.agent.orders.get(str(order["order_id"]))["state"] == "paid"

        printer = Listener(port)  # the printer is switched on
        try:
            till.clock.advance(5)  # past the backoff step
            assert printer.received.wait(10)
            wait_event(sub, lambda e: e.topic == "printer.status" and e.data["state"] == "ok")
        finally:
            printer.close()
    finally:
        queue.close()
    job = _jobs(till)[0]
    assert job["state"] == "printed" and job["attempts"] == 2
    assert str(order["receipt_no"]) in decode(printer.jobs[0]).text


def test_backoff_then_give_up_after_ten_minutes(till: Till) -> None:
    queue = PrintQueue(till.agent, PrinterConf(url=f"tcp://127.0.0.1:{free_port()}"))
    till.sell([{"kind": "amount", "amount_fen": 1000}])
    assert queue.run_once() == 1.0
    assert queue.run_once() == 1.0  # not due yet: no new attempt
    till.clock.advance(1)
    assert queue.run_once() == 2.0
    assert _jobs(till)[0]["attempts"] == 2
    till.clock.advance(601)
    assert queue.run_once() == 5.0  # the job is given up; the printer is still checked
    job = _jobs(till)[0]
    assert job["state"] == "failed" and "reprint" in str(job["last_error"]) and job["attempts"] == 2


def test_file_printer_gets_sale_then_marked_reprint_with_audit(till: Till, tmp_path: Path) -> None:
    out = tmp_path / "lp0"
    queue = PrintQueue(till.agent, PrinterConf(url=f"file://{out}", width_chars=48))
    order = till.sell([{"kind": "amount", "amount_fen": 1000}], given_fen=1000)
    assert queue.run_once() is None
    first = out.read_bytes()
    job = queue.reprint(str(order["order_id"]), actor="c01")
    assert queue.run_once() is None
    second = out.read_bytes()[len(first):]
    a, b = decode(first), decode(second)
    assert "重印" not in a.text and a.drawer_kicks == 1
    assert "** 重印 DUPLICATE **" in [ln.strip() for ln in b.lines] and b.drawer_kicks == 0
    assert str(order["receipt_no"]) in b.text
    audit = till.agent.store.query("SELECT actor, action, target, after FROM audit WHERE action = 'receipt.reprint'")
    assert len(audit) == 1 and audit[0]["actor"] == "c01" and audit[0]["target"] == f"order:{order['order_id']}"
    assert json.loads(audit[0]["after"])["job_id"] == job["job_id"]
    assert [j["reprint"] for j in queue.jobs(str(order["order_id"]))] == [0, 1]


def test_reprint_needs_a_paid_order(till: Till) -> None:
    queue = PrintQueue(till.agent, PrinterConf())
    order = till.checkout.create_order([{"kind": "amount", "amount_fen": 1000}], cashier="c01")
    with pytest.raises(Conflict, match="only a paid order"):
        queue.reprint(str(order["order_id"]), actor="c01")


def test_no_printer_keeps_a_preview_and_a_broken_job_blocks_nothing(till: Till, tmp_path: Path) -> None:
    queue = PrintQueue(till.agent, PrinterConf(url=""), preview_dir=tmp_path / "receipts")
    till.agent.store.write(lambda db: db.execute(
        "INSERT INTO print_jobs(order_id, created_at_ms) VALUES ('no-such-order', 0)"))
    order = till.sell([{"kind": "amount", "amount_fen": 1000}])
    assert queue.run_once() is None
    broken, good = _jobs(till)
    assert broken["state"] == "failed" and "cannot be built" in str(broken["last_error"])
    assert good["state"] == "printed" and "preview" in str(good["last_error"])
    preview = (tmp_path / "receipts" / f"{order['receipt_no']}.txt").read_text(encoding="utf-8")
    assert "测试加油站" in preview and "应付 PAYABLE" in preview
    assert queue.status()["state"] == "none" and queue.status()["failed"] == 1


def test_unsupported_url_is_reported(till: Till) -> None:
    queue = PrintQueue(till.agent, PrinterConf(url="usb://0x0416:0x5011"))
    till.sell([{"kind": "amount", "amount_fen": 1000}])
    queue.run_once()
    assert "unsupported printer url" in queue.status()["message"]


def test_api_preview_reprint_and_status(till: Till, tmp_path: Path) -> None:
    queue = PrintQueue(till.agent, PrinterConf(url=f"file://{tmp_path / 'lp0'}"))
    app = create_app(till.agent, TOKEN, extra_routes=lambda app, _agent: app.include_router(router))
    app.state.printer = queue
    server = ApiServer(app, port=0)
    server.start()
    order = till.sell([{"kind": "amount", "amount_fen": 1000}])
    oid = order["order_id"]
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as c:
            r = c.get(f"/api/v1/orders/{oid}/receipt")
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["printable"] and body["receipt_no"] in body["text"] and body["qr"].startswith("https://")
            assert [j["state"] for j in body["jobs"]] == ["pending"]
            png = c.get(f"/api/v1/orders/{oid}/receipt.png", params={"width": 48})
            assert png.headers["content-type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
            r = c.post(f"/api/v1/orders/{oid}/reprint")
            assert r.status_code == 201 and r.json()["reprint"] is True
            assert c.get("/api/v1/printer").json()["pending"] == 2
            assert c.get("/api/v1/orders/nope/receipt").status_code == 404
            assert c.post("/api/v1/orders/nope/reprint").status_code == 404
            assert c.get("/api/v1/printer", headers={"Authorization": ""}).status_code == 401
            queue.run_once()
            assert c.get("/api/v1/printer").json() | {"last_ok_ms": 0} == {
                "state": "ok", "message": f"打印机正常 / printer ok at file://{tmp_path / 'lp0'}", "last_ok_ms": 0,
                "url": f"file://{tmp_path / 'lp0'}", "encoding": "gb18030", "width_chars": 32, "pending": 0,
                "failed": 0}
    finally:
        server.stop()


def test_missing_usb_device_is_reported_before_any_sale(till: Till) -> None:
    queue = PrintQueue(till.agent, PrinterConf(url="file:///dev/usb/lp9"))
    assert queue.run_once() == 1.0
    status = queue.status()
    assert status["state"] == "error"
    assert status["message"] == "打印机未连接 / printer not reachable at file:///dev/usb/lp9: no such device"
