"""Each checkout terminal prints on its own printer (and kicks its own drawer); the rest goes to the station's."""

from __future__ import annotations

from pathlib import Path

from agent.config import PrinterConf
from agent.printing import PrintQueue
from tests.receipts.conftest import Till
from tests.receipts.escpos_decode import decode


def test_receipts_are_routed_to_the_selling_terminals_printer(till: Till, tmp_path: Path) -> None:
    station_file, t2_file = tmp_path / "station.bin", tmp_path / "t2.bin"
    sold = {}
    for terminal in (None, "T2", "T3"):
        order = till.sell([{"kind": "amount", "amount_fen": 1000}])
        till.agent.store.write(lambda db, o=order["order_id"], t=terminal: db.execute(
            "UPDATE orders SET terminal_id = ? WHERE order_id = ?", [t, o]))
        sold[terminal] = order["receipt_no"]
    station = PrintQueue(till.agent, PrinterConf(url=f"file://{station_file}"), own_printers=frozenset({"T2"}))
    t2 = PrintQueue(till.agent, PrinterConf(url=f"file://{t2_file}"), terminal="T2")
    assert station.run_once() is None
    assert t2.run_once() is None
    on_station = decode(station_file.read_bytes()).text
    on_t2 = decode(t2_file.read_bytes()).text
    assert sold["T2"] in on_t2
    assert sold["T2"] not in on_station
    assert sold[None] in on_station and sold["T3"] in on_station  # T3 has no printer of its own
    assert sold[None] not in on_t2
    jobs = till.agent.store.query("SELECT state FROM print_jobs")
    assert [j["state"] for j in jobs] == ["printed"] * 3
