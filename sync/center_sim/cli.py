"""``forecourt sim center``: run the trade-center simulator (HTTP + MQTT publisher) for the demo.

Refuses to run unless ``FORECOURT_DEV=1`` or ``--simulate`` is given: it must never be mistaken
for the real center.  Seeds a demo data set (config versions for grades, prices, promotions and
the catalog; two members; coupons), publishes the retained config for each ``--station`` and
serves until SIGINT/SIGTERM or ``--run-for`` seconds.  Fault knobs can be set here or at run
time with ``POST /_sim/faults``.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from typing import Any

from sync.center_sim.server import serve_center
from sync.center_sim.state import CenterState

__all__ = ["add_arguments", "demo_seed", "run"]


def _hostport(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def _delta(text: str) -> tuple[str, int]:
    key, _, fen = text.partition("=")
    try:
        return key, int(fen)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected OUT_TRADE_NO=FEN, got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--simulate", action="store_true", help="confirm this is a simulator (or set FORECOURT_DEV=1)")
    p.add_argument("--http", type=_hostport, default=("127.0.0.1", 8650), metavar="HOST:PORT",
                   help="where the center's HTTP API listens (default 127.0.0.1:8650)")
    p.add_argument("--mqtt-host", default="127.0.0.1", help="broker to publish to (default 127.0.0.1)")
    p.add_argument("--mqtt-port", type=int, default=1883, help="broker port (default 1883)")
    p.add_argument("--no-mqtt", action="store_true", help="HTTP only, publish nothing")
    p.add_argument("--state", type=Path, help="JSON file to load at start and save at exit")
    p.add_argument("--station", action="append", default=[], metavar="ID",
                   help="publish the retained demo config to this station (repeatable)")
    p.add_argument("--no-seed", action="store_true", help="start empty (no demo config, members, coupons)")
    p.add_argument("--run-for", type=float, help="stop after this many seconds")
    f = p.add_argument_group("fault knobs (also POST /_sim/faults)")
    f.add_argument("--delay", type=float, default=0.0, metavar="S", help="answer every write after S seconds")
    f.add_argument("--fail-5xx", type=int, default=0, metavar="N", help="next N writes: 503, nothing committed")
    f.add_argument("--commit-then-500", type=int, default=0, metavar="N", help="next N writes: commit, then 500")
    f.add_argument("--commit-then-drop", type=int, default=0, metavar="N",
                   help="next N writes: commit, then drop the connection")
    f.add_argument("--duplicate-notify", action="store_true", help="publish every payment result twice")
    f.add_argument("--bill-missing", action="append", default=[], metavar="OUT_TRADE_NO",
                   help="leave this trade out of /query/bill (repeatable)")
    f.add_argument("--bill-amount-delta", action="append", type=_delta, default=[], metavar="OUT_TRADE_NO=FEN",
                   help="add FEN to this trade's amount in /query/bill (repeatable)")
    f.add_argument("--settle-delta", type=int, default=0, metavar="FEN", help="bank shortfall in /query/settle")


def demo_seed(state: CenterState) -> dict[str, dict[str, Any]]:
    """Demo data: versioned config, members, coupons.  Returns the config to publish."""
    config: dict[str, dict[str, Any]] = {
        "grades": {"version": 1, "data": {"grades": [
            {"code": "92", "name": "92#汽油"}, {"code": "95", "name": "95#汽油"}, {"code": "0", "name": "0#柴油"}]}},
        "prices": {"version": 2, "data": {"prices_fen": {"92": 789, "95": 839}}},
        "promotions": {"version": 1, "data": {"rules": [
            {"id": "spend-200-get-10", "name": "满200减10", "kind": "spend_and_get", "threshold_fen": 20_000,
             "off_fen": 1000},
            {"id": "gold-95-off-20", "name": "金卡95#每升减2角", "kind": "per_litre", "level": "gold", "grade": "95",
             "off_fen_per_l": 20}]}},
        "catalog": {"version": 1, "data": {"items": [
            {"sku": "6901234567892", "name": "矿泉水 550ml", "price_fen": 200},
            {"sku": "6920202888883", "name": "红牛 250ml", "price_fen": 650}]}},
    }
    with state.lock:
        for name, doc in config.items():
            state.config.setdefault(name, doc)
        state.members.setdefault("M001", {"member_id": "M001", "name": "张三", "level": "gold", "phone": "13800000001",
                                          "card_no": "8800001", "plates": ["京A12345"], "balance_fen": 50_000,
                                          "points": 1200})
        state.members.setdefault("M002", {"member_id": "M002", "name": "李四", "level": "normal",
                                          "phone": "13800000002", "card_no": "8800002", "plates": [],
                                          "balance_fen": 0, "points": 0})
        for i, (kind, value) in enumerate((("cash", 1000), ("cash", 500), ("rate", 500)), start=1):
            state.coupons.setdefault(f"C00{i}", {"coupon_id": f"C00{i}", "member_id": "M001", "kind": kind,
                                                 "value": value, "min_spend_fen": 10_000, "state": "available"})
        return {k: dict(v) for k, v in state.config.items()}


def run(args: argparse.Namespace) -> int:
    if not (args.simulate or os.environ.get("FORECOURT_DEV") == "1"):
        print("forecourt sim center: refusing to start a fake trade center without --simulate or FORECOURT_DEV=1")
        return 2
    state = CenterState(args.state)
    state.faults.update({
        "delay_s": args.delay, "fail_5xx": args.fail_5xx, "commit_then_500": args.commit_then_500,
        "commit_then_drop": args.commit_then_drop, "duplicate_notify": args.duplicate_notify,
        "bill_missing": list(args.bill_missing), "bill_amount_delta": dict(args.bill_amount_delta),
        "settle_delta_fen": args.settle_delta})
    config = {} if args.no_seed else demo_seed(state)
    host, port = args.http
    mqtt = None if args.no_mqtt else (args.mqtt_host, args.mqtt_port)
    try:
        handle = serve_center(host, port, mqtt=mqtt, state=state)
    except OSError as exc:
        print(f"forecourt sim center: cannot listen on {host}:{port}: {exc.strerror}")
        return 1
    where = "off" if mqtt is None else f"{mqtt[0]}:{mqtt[1]}"
    print(f"trade-center simulator on {handle.url} (MQTT {where})", flush=True)
    if handle.publisher is not None and args.station:
        if handle.publisher.connected.wait(10):
            for sid in args.station:
                for name, doc in config.items():
                    handle.publisher.config(sid, name, int(doc["version"]), doc["data"])
        else:
            print("warning: broker not reachable yet; retained config not published", flush=True)
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    stop.wait(args.run_for)
    handle.stop()
    print("trade-center simulator stopped", flush=True)
    return 0
