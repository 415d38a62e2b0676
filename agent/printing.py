"""The print queue: receipts printed from committed sales, retried until the printer answers.

A sale never waits for the printer.  The payment saga inserts a ``print_jobs``
row in the same transaction that marks the order paid; this queue's thread
later takes pending jobs **in id order**, builds the receipt from the
committed order (``agent.receipts``), sends the ESC/POS bytes and marks the job.

Printer URL (``[printer] url``)::

    ""                      no printer: the job is marked printed and its text preview written to
                            ``preview_dir`` (a configuration choice; the receipt stays available
                            through the API preview and reprint)
    file:///dev/usb/lp0     appends the bytes to a file or device — USB printers through the
                            kernel's usblp driver, or a plain file in tests and demos
    tcp://192.168.1.50:9100 raw TCP (JetDirect / port 9100), short connect and send timeout

Failure handling:

* printer unreachable (connect refused, timeout, no device) → the job stays ``pending`` with
  ``attempts`` and ``last_error``; the queue waits 1, 2, 5, 10, 30, 30 … s between tries (reset by a
  success; a new sale or a reprint tries at once), publishes ``print.retry`` and ``printer.status``
  ``error`` with a Chinese + English message, and later jobs wait behind the first (receipts come
  out in sale order);
* with nothing to print, the queue checks that the printer answers (TCP connect, device present),
  so a missing printer is reported at start, not at the first sale;
* a job still unprinted ``give_up_after_s`` (10 min) after its sale is marked ``failed`` —
  a receipt printed half an hour later would confuse the next customer; the cashier reprints;
* a job whose receipt cannot be built (unknown order) is marked ``failed`` at once and never
  blocks the jobs behind it.

Limits: a TCP printer that accepts the connection but is out of paper is reported as printed (no
DLE EOT status read-back yet); a ``file://`` device is opened per job.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlite_utils

from agent.config import PrinterConf
from agent.errors import Conflict
from agent.receipts import CHINA_TZ, Receipt, build_receipt, to_escpos
from agent.service import Agent
from agent.store.records import add_audit

log = logging.getLogger(__name__)

__all__ = ["BACKOFF_S", "PrintQueue", "PrinterUnavailable", "load_receipt"]

BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


class PrinterUnavailable(Exception):
    """The printer did not take the bytes (not connected, refused, timed out, bad URL)."""


def load_receipt(agent: Agent, order_id: str, *, reprint: bool = False, reprint_no: int = 0) -> Receipt:
    """Build the receipt of a committed order from the database (no printer needed)."""
    order = agent.orders.get(order_id)
    payments = agent.store.query(
        "SELECT p.tender, p.amount_fen, p.detail FROM payments p JOIN payment_sagas s ON s.saga_id = p.saga_id"
        " WHERE p.order_id = ? AND s.state = 'paid' ORDER BY p.leg_no", (order_id,))
    for p in payments:
        p["detail"] = json.loads(p["detail"] or "{}")
    cashier = agent.store.query_one("SELECT name FROM cashiers WHERE cashier_id = ?", (order.get("cashier") or "",))
    member = None
    if order.get("member_id"):
        member = agent.store.query_one("SELECT phone, card_no FROM members WHERE member_id = ?",
                                       (order["member_id"],))
    station = {"id": agent.config.station.id, "name": agent.config.station.name}
    return build_receipt(order, payments, station, now_ms=agent.clock.now_ms(), reprint=reprint,
                         reprint_no=reprint_no, cashier_name=cashier["name"] if cashier else None, member=member,
                         tz=CHINA_TZ)


class PrintQueue:
    """See the module docstring.  ``start()`` runs the worker thread; ``run_once()`` is one pass (tests)."""

    def __init__(self, agent: Agent, conf: PrinterConf, *, preview_dir: Path | None = None,
                 backoff_s: tuple[float, ...] = BACKOFF_S, give_up_after_s: float = 600.0,
                 timeout_s: float = 3.0, poll_s: float = 5.0, terminal: str | None = None,
                 own_printers: frozenset[str] = frozenset()) -> None:
        self.agent = agent
        self.conf = conf
        #: A terminal's own queue prints only that terminal's receipts; the station queue prints the
        #: rest (orders from the device itself, or from terminals without a printer of their own).
        self.terminal = terminal
        self.own_printers = own_printers
        self.preview_dir = preview_dir
        self.backoff_s = backoff_s
        self.give_up_after_s = give_up_after_s
        self.timeout_s = timeout_s
        self.poll_s = poll_s
        self._failures = 0
        self._next_try = 0.0  #: monotonic time before which the printer is not tried again
        self._lock = threading.Lock()  #: one pass at a time (worker thread, tests, API)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._status: dict[str, Any] = {"state": "unknown", "message": "", "last_ok_ms": None}

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._sub = self.agent.bus.subscribe(maxsize=1000)
        name = "print-queue" if self.terminal is None else f"print-queue {self.terminal}"
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._sub.close()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                delay = self.run_once()
            except Exception:  # the queue must survive anything (a store error is retried next pass)
                log.exception("print queue pass failed")
                delay = self.poll_s
            wait = self.poll_s if delay is None else min(max(delay, 0.01), self.poll_s)
            deadline = self.agent.clock.monotonic() + wait
            while not self._stop.is_set():  # woken early by a new sale or reprint
                left = deadline - self.agent.clock.monotonic()
                ev = self._sub.get(timeout=min(max(left, 0.0), 0.25))
                if ev is not None and ev.topic in ("order.paid", "print.queued"):
                    self._next_try = 0.0  # a new receipt: try the printer now, whatever the backoff
                    break
                if left <= 0:
                    break

    # ------------------------------------------------------------ one pass
    def run_once(self) -> float | None:
        """Print what is due; return seconds until the next retry, or None when the queue is empty."""
        with self._lock:
            for job in self._pending():
                now_mono = self.agent.clock.monotonic()
                if now_mono < self._next_try:
                    return self._next_try - now_mono
                age_s = (self.agent.clock.now_ms() - int(job["created_at_ms"])) / 1000
                if job["attempts"] and age_s > self.give_up_after_s:
                    why = (f"not printed within {self.give_up_after_s:.0f} s of the sale "
                           f"(last error: {job['last_error']}); reprint it from the order")
                    self._mark(job, "failed", why, attempt=False)
                    continue
                try:
                    receipt = self._receipt(job)
                    data = to_escpos(receipt, self.conf.encoding, self.conf.width_chars)
                except Exception as exc:  # a job that can never print must not block the others
                    log.exception("print job %s: receipt cannot be built", job["id"])
                    self._mark(job, "failed", f"receipt cannot be built: {exc}")
                    continue
                try:
                    note = self._send(data, receipt, job)
                except PrinterUnavailable as exc:
                    self._failures += 1
                    delay = self.backoff_s[min(self._failures, len(self.backoff_s)) - 1]
                    self._next_try = self.agent.clock.monotonic() + delay
                    self._mark(job, "pending", str(exc))
                    self._set_status("error", str(exc))
                    self.agent.bus.publish("print.retry", {"job_id": job["id"], "order_id": job["order_id"],
                                                           "attempts": int(job["attempts"]) + 1, "error": str(exc),
                                                           "retry_in_s": delay})
                    return delay
                self._failures = 0
                self._mark(job, "printed", note)
                if self.conf.url:
                    self._set_status("ok", f"打印机正常 / printer ok at {self.conf.url}",
                                     last_ok_ms=self.agent.clock.now_ms())
            if not self.conf.url:
                self._set_status("none", "未配置打印机 / no printer configured: receipts are kept as previews")
            elif self._status["state"] in ("unknown", "error"):
                return self._probe()
            return None

    def _pending(self) -> list[dict[str, Any]]:
        sql = ("SELECT j.* FROM print_jobs j LEFT JOIN orders o ON o.order_id = j.order_id"
               " WHERE j.state = 'pending'")
        if self.terminal is not None:
            return self.agent.store.query(sql + " AND o.terminal_id = ? ORDER BY j.id", (self.terminal,))
        others = sorted(self.own_printers)
        marks = ",".join("?" * len(others))
        if others:
            sql += f" AND (o.terminal_id IS NULL OR o.terminal_id NOT IN ({marks}))"
        return self.agent.store.query(sql + " ORDER BY j.id", tuple(others))

    def _probe(self) -> float | None:
        """With nothing to print, check that the printer answers, so a missing one shows before a sale."""
        now_mono = self.agent.clock.monotonic()
        if now_mono < self._next_try:
            return self._next_try - now_mono
        url = self.conf.url
        parts = urlsplit(url)
        try:
            if parts.scheme == "file":
                path = Path(unquote(parts.path))
                if not path.exists() and (str(path).startswith("/dev/") or not path.parent.is_dir()):
                    raise PrinterUnavailable(f"打印机未连接 / printer not reachable at {url}: no such device")
            else:
                self._send(b"", None, None)  # tcp: connect and close; a bad url raises
        except PrinterUnavailable as exc:
            self._failures += 1
            delay = self.backoff_s[min(self._failures, len(self.backoff_s)) - 1]
            self._next_try = now_mono + delay
            self._set_status("error", str(exc))
            return delay
        self._failures = 0
        self._set_status("ok", f"打印机正常 / printer ok at {url}")
        return None

    def _receipt(self, job: dict[str, Any]) -> Receipt:
        reprint_no = 0
        if job["reprint"]:
            row = self.agent.store.query_one("SELECT COUNT(*) AS n FROM print_jobs WHERE order_id = ? AND reprint = 1"
                                             " AND id <= ?", (job["order_id"], job["id"]))
            reprint_no = int(row["n"]) if row else 1
        receipt = load_receipt(self.agent, str(job["order_id"]), reprint=bool(job["reprint"]),
                               reprint_no=reprint_no)
        if not job["reprint"] and self.agent.orders.get(str(job["order_id"]))["state"] != "paid":
            raise Conflict(f"order {job['order_id']} is not paid")
        return receipt

    def _mark(self, job: dict[str, Any], state: str, error: str | None, *, attempt: bool = True) -> None:
        attempts = int(job["attempts"]) + (1 if attempt else 0)
        self.agent.store.write(lambda db: db.execute(
            "UPDATE print_jobs SET state = ?, attempts = ?, last_error = ? WHERE id = ?",
            [state, attempts, error, job["id"]]))
        if state != "pending":
            self.agent.bus.publish("print.done", {"job_id": job["id"], "order_id": job["order_id"], "state": state,
                                                  "reprint": bool(job["reprint"]), "detail": error})

    # ------------------------------------------------------------ transports
    def _send(self, data: bytes, receipt: Receipt | None, job: dict[str, Any] | None) -> str | None:
        """Deliver the bytes; return a note for ``last_error`` (None on a plain success)."""
        url = self.conf.url
        if not url:
            if self.preview_dir is None or receipt is None or job is None:
                return "no printer configured"
            self.preview_dir.mkdir(parents=True, exist_ok=True)
            suffix = f"-reprint-{job['id']}" if job["reprint"] else ""
            name = f"{receipt.receipt_no}{suffix}.txt"
            path = self.preview_dir / name
            path.write_text(receipt.text(self.conf.width_chars), encoding="utf-8")
            return f"no printer configured: preview in {path}"
        parts = urlsplit(url)
        where = f"打印机未连接 / printer not reachable at {url}"
        if parts.scheme == "file":
            try:
                with open(unquote(parts.path), "ab") as f:
                    f.write(data)
                    f.flush()
            except OSError as exc:
                raise PrinterUnavailable(f"{where}: {exc.strerror or exc}") from exc
            return None
        if parts.scheme == "tcp":
            try:
                host, port = parts.hostname, parts.port or 9100
            except ValueError as exc:
                raise PrinterUnavailable(f"打印机地址错误 / bad printer url {url!r}: {exc}") from exc
            if not host:
                raise PrinterUnavailable(f"打印机地址错误 / bad printer url {url!r}: no host")
            try:
                with socket.create_connection((host, port), timeout=self.timeout_s) as s:
                    s.settimeout(self.timeout_s)
                    if data:
                        s.sendall(data)
                    s.shutdown(socket.SHUT_WR)
            except OSError as exc:
                reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
                raise PrinterUnavailable(f"{where}: {reason}") from exc
            return None
        raise PrinterUnavailable(f"打印机地址错误 / unsupported printer url {url!r}: use file:///path or "
                                 "tcp://host:9100")

    # ------------------------------------------------------------ status and reprint
    def _set_status(self, state: str, message: str, **extra: Any) -> None:
        changed = (self._status["state"], self._status["message"]) != (state, message)
        self._status.update(state=state, message=message, **extra)
        if changed:
            (log.warning if state == "error" else log.info)("printer: %s", message)
            self.agent.bus.publish("printer.status", self.status())

    def status(self) -> dict[str, Any]:
        """State (unknown | ok | error | none), a message for the cashier, queue depth, failed jobs."""
        counts = {r["state"]: int(r["n"]) for r in self.agent.store.query(
            "SELECT state, COUNT(*) AS n FROM print_jobs WHERE state IN ('pending', 'failed') GROUP BY state")}
        return {**self._status, "url": self.conf.url, "encoding": self.conf.encoding,
                "width_chars": self.conf.width_chars, "pending": counts.get("pending", 0),
                "failed": counts.get("failed", 0)}

    def jobs(self, order_id: str) -> list[dict[str, Any]]:
        return self.agent.store.query("SELECT id, reprint, state, attempts, last_error, created_at_ms FROM print_jobs"
                                      " WHERE order_id = ? ORDER BY id", (order_id,))

    def reprint(self, order_id: str, actor: str) -> dict[str, Any]:
        """Queue a copy marked 重印/DUPLICATE, with an audit entry; only a paid order has a receipt to copy."""
        order = self.agent.orders.get(order_id)
        if order["state"] != "paid":
            raise Conflict(f"order {order_id} is {order['state']}: only a paid order has a receipt",
                           code="not_paid", state=order["state"])
        now = self.agent.clock.now_ms()

        def tx(db: sqlite_utils.Database) -> int:
            cur = db.execute("INSERT INTO print_jobs(order_id, reprint, created_at_ms) VALUES (?, 1, ?)",
                             [order_id, now])
            job_id = int(cur.lastrowid or 0)
            add_audit(db, at_ms=now, actor=actor, action="receipt.reprint", target=f"order:{order_id}",
                      after={"job_id": job_id, "receipt_no": order["receipt_no"]})
            return job_id

        job_id = self.agent.store.write(tx)
        # a cashier asking for a copy means the printer may be back: try at once
        self._next_try = 0.0
        self.agent.bus.publish("print.queued", {"job_id": job_id, "order_id": order_id, "reprint": True})
        return {"job_id": job_id, "order_id": order_id, "receipt_no": order["receipt_no"], "reprint": True,
                "state": "pending"}
