"""After every (re)connect, pull the center's open commands over HTTP (RELIABILITY §2).

A PUBACK is not a business ack: a broker that crashed without saving, or a session that
expired, can lose a queued command.  So whenever the broker link comes up, this asks the
center for its open mobile-order releases and feeds each through the same inbox as MQTT, with
the same command id (``release:{order_id}``) and its deadline: whatever already arrived is a
duplicate and changes nothing; whatever was lost is applied now; an expired one never acts.

Runs on its own short-lived thread (never on paho's); failures are logged and retried at the
next connect.
"""

from __future__ import annotations

import json
import logging
import threading

from sync.http import CenterClient, CenterError
from sync.inbox import InboxProcessor
from sync.topics import SCHEMA_VERSION, command_topic

log = logging.getLogger(__name__)

__all__ = ["Resync"]


class Resync:
    def __init__(self, center: CenterClient, inbox: InboxProcessor) -> None:
        self._center = center
        self._inbox = inbox
        self._busy = threading.Lock()
        self.runs = 0

    def trigger(self) -> None:
        """Start one pull in the background unless one is already running."""
        if self._busy.acquire(blocking=False):
            threading.Thread(target=self._run, name="center-resync", daemon=True).start()

    def run_once(self) -> int:
        """Pull and feed; returns how many releases were newly applied."""
        applied = 0
        topic = command_topic(self._center.station_id, "mobile_order.release")
        for o in self._center.open_mobile_orders():
            order_id = o.get("order_id")
            if not isinstance(order_id, str):
                continue
            msg = {"schema": SCHEMA_VERSION, "id": f"release:{order_id}", "kind": "mobile_order.release",
                   "data": {k: o.get(k) for k in ("order_id", "nozzle", "grade", "max_amount_fen", "paid_fen")}}
            if isinstance(o.get("expires_at_ms"), int):
                msg["expires_at_ms"] = o["expires_at_ms"]
            res = self._inbox.handle(topic, json.dumps(msg).encode())
            applied += res.status == "applied"
        return applied

    def _run(self) -> None:
        try:
            n = self.run_once()
            self.runs += 1
            if n:
                log.warning("resync: %d mobile-order release(s) missed over MQTT were applied from HTTP", n)
        except CenterError as exc:
            log.info("resync skipped, center not reachable: %s", exc)
        except Exception:
            log.exception("resync failed")
        finally:
            self._busy.release()
