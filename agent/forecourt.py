"""Forecourt controller: the agent's side of the pumps, on the vendor-neutral model.

Owns the in-memory view of every fuelling point, turns driver events into
stored fills and stream events, and turns cashier requests into driver
commands.  It sees only ``drivers.base``; the concrete line drivers are built
by ``main.py`` through the factory passed in.

Rules enforced here (PROTOCOLS.md section 4):

* **R1 persist before clear** — a finished fill is committed with its
  totalizers, price-set version and a unique completion key, and only then is
  ``ClearTransaction`` sent.  A retried save (same key) is a no-op.
* **R2 no replay** — at start every fill left open by the previous run becomes
  ``needs_reconciliation``; the pump's own state decides what happened to it.
  Authorizations are never re-sent.
* **R3** no authorization on nozzle lift unless ``policy.auto_authorize``.
* **R5 emergency stop** goes straight to the line drivers: no database, no
  network, no controller queue.
* **R6 stacking** — authorize only with no fill in progress and at most
  ``policy.max_unpaid_per_pump`` unpaid fills; checked inside the write
  transaction that mints the fill id, so two cashiers cannot both win.
* **R7** start and end totalizers are stored with each fill; a meter
  variance (end − start ≠ volume) is flagged in the fill's note.

Threads: driver threads only enqueue (``sink``); one controller thread applies
events; API threads call the command methods, which write through the store's
writer and hand commands to the drivers (non-blocking).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlite_utils

from agent.config import StationConfig
from agent.errors import Conflict, InvalidRequest, NotFound, Unavailable
from agent.prices import PriceBook
from agent.service import Agent
from agent.store.records import add_audit, enqueue
from drivers.base import (
    Authorize,
    ClearTransaction,
    CommandFailed,
    Decimals,
    DriverError,
    DriverEvent,
    EventSink,
    FillFinished,
    FillProgress,
    LineConfig,
    LineDriver,
    LinkFault,
    PricesRead,
    PumpAlarm,
    PumpConfig,
    PumpState,
    PumpStatus,
    ReadPrices,
    ReadTotals,
    Resume,
    SetPrices,
    Stop,
    Suspend,
    TotalsRead,
)

log = logging.getLogger(__name__)

__all__ = ["Forecourt", "LineFactory", "line_configs"]

LineFactory = Callable[[LineConfig, EventSink], LineDriver]

LINE_RETRY_S = 5.0
#: an authorized fill whose pump still shows idle this long after the authorization was not taken
AUTHORIZE_TAKE_S = 10.0
OPEN_STATES = ("authorized", "fuelling", "needs_reconciliation")
BUSY_STATES = frozenset({PumpState.AUTHORIZED, PumpState.STARTED, PumpState.FUELLING, PumpState.SUSPENDED,
                         PumpState.END_OF_TRANSACTION})


def line_configs(config: StationConfig) -> list[LineConfig]:
    """Translate the station config into the drivers' line configs."""
    out = []
    for line in config.lines:
        pumps = tuple(
            PumpConfig(pump_id=p.pump_id, address=p.address, nozzles=tuple(n.logical for n in p.nozzles),
                       decimals=Decimals(p.decimals.volume, p.decimals.amount, p.decimals.price),
                       writes_enabled=p.writes_enabled, tx_wrap_to=p.tx_wrap_to)
            for p in line.pumps)
        out.append(LineConfig(name=line.name, protocol=line.protocol, url=line.url, pumps=pumps,
                              baudrate=line.baudrate, response_timeout_s=line.response_timeout_s,
                              max_consecutive_timeouts=line.max_consecutive_timeouts))
    return out


@dataclass
class PumpView:
    """What the agent knows of one fuelling point right now (controller thread writes, others copy)."""

    pump_id: int
    line: str
    nozzles: dict[int, tuple[int, str]]  #: logical nozzle -> (gun number, grade code)
    state: PumpState = PumpState.OFFLINE
    nozzle: int | None = None  #: logical nozzle lifted / in use
    volume_ml: int = 0
    amount_fen: int = 0
    price_fen: int | None = None
    locked: bool = False
    lock_reason: str = ""
    alarm: str = ""
    fill_id: str | None = None  #: the open fill, if any
    fill_seen_busy: bool = False  #: the open fill reached AUTHORIZED or later on the pump
    totals: dict[int, tuple[int, int]] = field(default_factory=dict)  #: logical -> (mL, fen)
    #: totals as they were when the open fill was authorized (R7 start readings)
    start_totals: dict[int, tuple[int, int]] = field(default_factory=dict)
    prices_ok: bool | None = None  #: last price read-back matched the price book
    #: an open fill whose pump went idle without reporting it: its totals are being read (R7)
    recovering: str | None = None
    recovery_pending: set[int] = field(default_factory=set)
    #: monotonic time the open fill's authorization was sent (or found at start); None = none open
    authorized_at: float | None = None
    expiring: bool = False  #: a STOP for an unused authorization was sent
    #: monotonic time the pump last turned idle/calling (None while busy or offline)
    idle_since: float | None = None
    settle_tried_at: float | None = None  #: last time a stalled open fill was sent to the totalizers
    recovery_started_at: float | None = None  #: when the totals of ``recovering`` were asked for
    alerted_fill: str | None = None  #: the open fill the cashier was already alerted about

    def gun(self, logical: int | None) -> int | None:
        return self.nozzles[logical][0] if logical in self.nozzles else None

    def grade(self, logical: int | None) -> str | None:
        return self.nozzles[logical][1] if logical in self.nozzles else None

    def snapshot(self, unpaid: int = 0) -> dict[str, Any]:
        return {
            "pump_id": self.pump_id, "line": self.line, "state": self.state.value,
            "nozzle": self.gun(self.nozzle), "grade": self.grade(self.nozzle),
            "volume_ml": self.volume_ml, "amount_fen": self.amount_fen, "price_fen": self.price_fen,
            "locked": self.locked, "lock_reason": self.lock_reason, "alarm": self.alarm,
            "fill_id": self.fill_id, "unpaid": unpaid, "prices_ok": self.prices_ok,
            "nozzles": [{"number": g, "logical": lg, "grade": gr} for lg, (g, gr) in sorted(self.nozzles.items())],
        }


class Forecourt:
    """See the module docstring."""

    def __init__(self, agent: Agent, factory: LineFactory) -> None:
        self.agent = agent
        agent.forecourt = self
        self._store = agent.store
        self._bus = agent.bus
        self._clock = agent.clock
        self._policy = agent.config.policy
        self.prices = PriceBook(agent)
        self._lines = line_configs(agent.config)
        self._factory = factory
        self._drivers: dict[int, LineDriver] = {}
        self._all_drivers: list[LineDriver] = []
        self._views: dict[int, PumpView] = {}
        for line, conf in zip(self._lines, agent.config.lines, strict=True):
            for p in conf.pumps:
                self._views[p.pump_id] = PumpView(
                    p.pump_id, line.name, {n.logical: (n.number, n.grade) for n in p.nozzles})
        self._lock = threading.RLock()
        self._events: queue.Queue[DriverEvent | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.handled = 0  #: driver events applied (tests wait on it through ``drain``)
        self._idle = threading.Condition()
        self._closing = threading.Event()

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.prices.ensure_initial()
        self._restore()
        self._thread = threading.Thread(target=self._run, name="forecourt", daemon=True)
        self._thread.start()
        threading.Thread(target=self._expire_run, name="forecourt-auth-expiry", daemon=True).start()
        for line in self._lines:
            driver = self._factory(line, self.sink)
            self._all_drivers.append(driver)
            for pid in driver.pump_ids():
                self._drivers[pid] = driver
            self._start_line(driver)

    def _start_line(self, driver: LineDriver) -> None:
        """Open a line; if the port is missing the agent still runs and retries every few seconds."""
        try:
            driver.start()
        except DriverError as exc:
            log.error("line %s: %s (retrying every %.0f s)", driver.config.name, exc, LINE_RETRY_S)
            self._bus.publish("line.error", {"line": driver.config.name, "error": str(exc)})
            self.agent.set_health(f"line:{driver.config.name}", f"down: {exc}")
            threading.Thread(target=self._retry_line, args=(driver,), daemon=True,
                             name=f"line-retry {driver.config.name}").start()
            return
        self.agent.set_health(f"line:{driver.config.name}", "up")

    def _retry_line(self, driver: LineDriver) -> None:
        if not self._closing.wait(LINE_RETRY_S):
            self._start_line(driver)

    def close(self) -> None:
        self._closing.set()
        for d in self._all_drivers:
            try:
                d.close()
            except DriverError as exc:
                log.warning("closing line %s: %s", d.config.name, exc)
        self._events.put(None)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _expire_run(self) -> None:
        """Once a second: authorizations the pump never took, and ones unused after the policy timeout."""
        while not self._closing.wait(1.0):
            try:
                now = time.monotonic()
                self.settle_stalled_fills(now)
                self.expire_authorizations(now)
            except Exception:  # never let the timer die
                log.exception("authorization expiry check failed")

    def settle_stalled_fills(self, now: float) -> list[int]:
        """An open fill whose pump has been idle for ``AUTHORIZE_TAKE_S`` — since the authorization, or
        since it turned idle, whichever is later — has nothing more coming from the pump: either the pump
        never took the authorization (frame acknowledged but not executed, line dropped inside the
        driver's confirmation window, ...), or the fill ended and reading its totals failed.  Left alone
        it would block the pump for good ("a fill is in progress"), so the totalizers are read (R7) and
        the fill is settled: a sale if a meter moved, else zero.  Tried again every ``AUTHORIZE_TAKE_S``
        while unanswered.  Returns the pumps being settled."""
        due = []
        with self._lock:
            for view in self._views.values():
                if view.fill_id is None or view.authorized_at is None:
                    continue
                if view.state not in (PumpState.IDLE, PumpState.CALLING) or view.idle_since is None:
                    continue
                if view.recovering is not None:  # totals asked for: unanswered for too long -> ask again
                    since = view.recovery_started_at or now
                else:
                    since = max(view.authorized_at, view.idle_since, view.settle_tried_at or 0.0)
                if now - since >= AUTHORIZE_TAKE_S:
                    due.append((view, view.fill_id, view.fill_seen_busy, view.alerted_fill != view.fill_id))
                    view.settle_tried_at, view.alerted_fill = now, view.fill_id
        for view, fill_id, seen_busy, first in due:
            code = "fill_not_reported" if seen_busy else "authorization_not_taken"
            log.warning("pump %s: idle %.0f s with fill %s open (%s); settling from the totalizers",
                        view.pump_id, AUTHORIZE_TAKE_S, fill_id, code)
            if first:  # said once per fill; the retries are in the log
                self._bus.publish("pump.alert", {"pump_id": view.pump_id, "fill_id": fill_id, "code": code,
                                                 "reason": "authorization not taken by the pump" if not seen_busy
                                                 else "the pump went idle without reporting the sale"})
            self._start_recovery(view, fill_id)
        return [v.pump_id for v, _, _, _ in due]

    def expire_authorizations(self, now: float) -> list[int]:
        """STOP every pump whose open fill is still only AUTHORIZED (no nozzle lifted, no flow) after the
        timeout; the fill then ends as a zero sale through the normal path.  Returns the pumps stopped."""
        limit = self._policy.authorization_timeout_s
        due = []
        with self._lock:
            for view in self._views.values():
                if (limit > 0 and view.fill_id is not None and view.state == PumpState.AUTHORIZED
                        and not view.expiring and view.authorized_at is not None
                        and now - view.authorized_at >= limit):
                    view.expiring = True
                    due.append((view.pump_id, view.fill_id))
        for pump_id, fill_id in due:
            try:
                self._submit(Stop(pump_id))
            except Unavailable:
                with self._lock:
                    self._views[pump_id].expiring = False  # tried again at the next check
                continue
            log.warning("pump %s: authorization of fill %s unused for %s s: cancelled", pump_id, fill_id, limit)
            self._audit("agent", "pump.authorization_expired", pump_id)
            self._bus.publish("pump.authorization_expired", {"pump_id": pump_id, "fill_id": fill_id,
                                                            "after_s": limit})
        return [p for p, _ in due]

    def _restore(self) -> None:
        """R2: fills left open by an earlier run wait for the pump's word; nothing is re-sent."""
        def tx(db: sqlite_utils.Database) -> list[tuple[int, str]]:
            rows = db.execute("SELECT pump_id, fill_id FROM fills WHERE state IN ('authorized', 'fuelling', "
                              "'needs_reconciliation')").fetchall()
            db.execute("UPDATE fills SET state = 'needs_reconciliation' WHERE state IN ('authorized', 'fuelling')")
            for r in db.execute("SELECT pump_id, locked, reason FROM pump_settings").fetchall():
                if r[0] in self._views:
                    self._views[r[0]].locked = bool(r[1])
                    self._views[r[0]].lock_reason = r[2]
            return [(int(r[0]), str(r[1])) for r in rows]

        for pump_id, fill_id in self._store.write(tx):
            if pump_id in self._views:
                self._views[pump_id].fill_id = fill_id
                self._views[pump_id].authorized_at = time.monotonic()  # the timeout counts from now
                log.warning("pump %s: fill %s was open at the last stop; waiting for the pump", pump_id, fill_id)

    # ------------------------------------------------------------ driver side
    def sink(self, event: DriverEvent) -> None:
        """Called on driver threads: only enqueue."""
        self._events.put(event)

    def drain(self, timeout: float = 5.0) -> bool:
        """Wait until every event queued so far has been applied (tests, shutdown)."""
        marker = self.handled + self._events.qsize()
        with self._idle:
            return self._idle.wait_for(lambda: self.handled >= marker, timeout)

    def _run(self) -> None:
        while True:
            ev = self._events.get()
            if ev is None:
                return
            try:
                self._apply(ev)
            except Exception:  # one bad event must never stop the forecourt
                log.exception("applying %r failed", ev)
            with self._idle:
                self.handled += 1
                self._idle.notify_all()

    def _apply(self, ev: DriverEvent) -> None:
        view = self._views.get(ev.pump_id)
        if isinstance(ev, LinkFault):
            log.debug("link fault on pump %s: %s", ev.pump_id, ev.reason)
            return
        if view is None:
            log.warning("event for unknown pump %s: %r", ev.pump_id, ev)
            return
        if isinstance(ev, PumpStatus):
            self._on_status(view, ev)
        elif isinstance(ev, FillProgress):
            with self._lock:
                view.volume_ml, view.amount_fen = ev.volume_ml, ev.amount_fen
                if ev.price_fen is not None:
                    view.price_fen = ev.price_fen
                if ev.nozzle is not None:
                    view.nozzle = ev.nozzle
            self._bus.publish("pump.progress", {"pump_id": view.pump_id, "nozzle": view.gun(view.nozzle),
                                                "volume_ml": ev.volume_ml, "amount_fen": ev.amount_fen,
                                                "price_fen": view.price_fen, "fill_id": view.fill_id})
        elif isinstance(ev, FillFinished):
            self._on_finished(view, ev)
        elif isinstance(ev, TotalsRead):
            with self._lock:
                before = view.totals.get(ev.nozzle)
                view.totals[ev.nozzle] = (ev.volume_total_ml, ev.amount_total_fen)
                view.recovery_pending.discard(ev.nozzle)
                done = view.recovering is not None and not view.recovery_pending
            if before is not None and ev.volume_total_ml < before[0]:
                self._totalizer_went_back(view, ev, before)
            if done:
                self._finish_recovery(view)
            self._bus.publish("pump.totals", {"pump_id": view.pump_id, "nozzle": view.gun(ev.nozzle),
                                              "volume_total_ml": ev.volume_total_ml,
                                              "amount_total_fen": ev.amount_total_fen})
        elif isinstance(ev, PricesRead):
            self.prices.on_read_back(view, ev, self._submit)
        elif isinstance(ev, PumpAlarm):
            with self._lock:
                view.alarm = f"{ev.code}: {ev.text}"
            self._bus.publish("pump.alarm", {"pump_id": view.pump_id, "code": ev.code, "text": ev.text})
        elif isinstance(ev, CommandFailed):
            self._on_command_failed(view, ev)

    def _totalizer_went_back(self, view: PumpView, ev: TotalsRead, before: tuple[int, int]) -> None:
        """A meter never runs backwards in service: a replaced or reset pump board, or a counter that
        wrapped.  Sales are not touched (each fill has its own figures), but every reconciliation
        across this point is wrong until a manager notes it: alarm on the pump, audit entry, alert."""
        gun = view.gun(ev.nozzle)
        text = (f"nozzle {gun}: totalizer went back from {before[0]} mL to {ev.volume_total_ml} mL "
                "(pump board replaced or reset?): check the meter and note it at the shift close")
        log.error("pump %s %s", view.pump_id, text)
        with self._lock:
            view.alarm = f"totalizer: {text}"
        self._audit("agent", "pump.totalizer_back", view.pump_id,
                    {"nozzle": gun, "before_ml": before[0], "after_ml": ev.volume_total_ml,
                     "before_fen": before[1], "after_fen": ev.amount_total_fen})
        self._bus.publish("pump.alarm", {"pump_id": view.pump_id, "code": "totalizer", "text": text})

    def _on_status(self, view: PumpView, ev: PumpStatus) -> None:
        with self._lock:
            before = view.state
            view.state = ev.state
            idle = ev.state in (PumpState.IDLE, PumpState.CALLING)
            if not idle:
                view.idle_since = None
            elif view.idle_since is None:
                view.idle_since = time.monotonic()
            if ev.nozzle is not None:
                view.nozzle = ev.nozzle
            if ev.state in (PumpState.IDLE, PumpState.CALLING, PumpState.AUTHORIZED):
                view.volume_ml = view.amount_fen = 0 if ev.state != PumpState.AUTHORIZED else view.volume_ml
            if ev.state in BUSY_STATES and view.fill_id is not None:
                view.fill_seen_busy = True
        if ev.state != before or ev.state == PumpState.CALLING:
            self._publish_status(view)
        fill_id = view.fill_id
        if fill_id is not None:
            self._reconcile_open_fill(view, fill_id, before, ev.state)
        if ev.state == PumpState.CLOSED and ev.raw_status == 0:
            self.prices.program(view, self._submit)  # 1.9: a zeroized pump needs prices first
        elif ev.state == PumpState.IDLE and before != PumpState.IDLE:
            self.prices.apply_pending(view, self._submit)
            if before in (PumpState.OFFLINE, PumpState.END_OF_TRANSACTION) or not view.totals:
                self._submit(ReadTotals(view.pump_id))
        if (ev.state == PumpState.CALLING and before != PumpState.CALLING and self._policy.auto_authorize
                and view.fill_id is None):
            try:
                self.authorize(view.pump_id, actor="auto-authorize")
            except Exception as exc:
                self._bus.publish("pump.refused", {"pump_id": view.pump_id, "reason": str(exc)})

    def _reconcile_open_fill(self, view: PumpView, fill_id: str, before: PumpState, state: PumpState) -> None:
        row = self._store.query_one("SELECT state, volume_ml FROM fills WHERE fill_id = ?", (fill_id,))
        if row is None or row["state"] not in OPEN_STATES:
            return
        if state in (PumpState.FUELLING, PumpState.SUSPENDED) and row["state"] != "fuelling":
            self._set_fill_state(fill_id, "fuelling")
        elif state in (PumpState.AUTHORIZED, PumpState.STARTED) and row["state"] == "needs_reconciliation":
            self._set_fill_state(fill_id, "authorized")
        elif state in (PumpState.IDLE, PumpState.CALLING, PumpState.STOPPED) and (
                view.fill_seen_busy or row["state"] == "needs_reconciliation" or before == PumpState.OFFLINE
        ) and view.recovering != fill_id:
            # Back to idle without a reported sale.  Never assume nothing was sold: read the
            # totalizers first (a fill that ended while the agent was down shows only there, R7).
            self._start_recovery(view, fill_id)

    def _start_recovery(self, view: PumpView, fill_id: str) -> None:
        with self._lock:
            view.recovering = fill_id
            view.recovery_pending = set(view.nozzles)
            view.recovery_started_at = time.monotonic()
        try:
            self._submit(ReadTotals(view.pump_id))
        except Unavailable:
            with self._lock:
                view.recovering = None  # retried at the next status from the pump

    def _finish_recovery(self, view: PumpView) -> None:
        """All totals of a pump with an unreported fill are in: a sale if a totalizer moved, else zero."""
        fill_id = view.recovering
        with self._lock:
            view.recovering = None
            totals = dict(view.totals)
        if fill_id is None:
            return
        row = self._store.query_one("SELECT state FROM fills WHERE fill_id = ?", (fill_id,))
        if row is None or row["state"] not in OPEN_STATES:
            return  # the driver reported the sale meanwhile
        moved: list[tuple[int, int, int, int, int]] = []
        unknown = False
        snap = self._store.query_one("SELECT start_totals FROM fills WHERE fill_id = ?", (fill_id,))
        at_authorize = {int(k): (int(v[0]), int(v[1])) for k, v in json.loads(
            (snap or {}).get("start_totals") or "{}").items()}
        for logical, (vol_total, amt_total) in sorted(totals.items()):
            base_vol, base_amt = at_authorize.get(logical, (None, None))
            if base_vol is None:
                prev = self._store.query_one(
                    "SELECT end_total_ml, end_total_fen FROM fills WHERE pump_id = ? AND nozzle = ? AND fill_id != ?"
                    " AND end_total_ml IS NOT NULL ORDER BY finished_at_ms DESC LIMIT 1",
                    (view.pump_id, view.gun(logical), fill_id))
                if prev is not None:
                    base_vol, base_amt = int(prev["end_total_ml"]), int(prev["end_total_fen"] or 0)
            if base_vol is None or base_amt is None:
                unknown = True
            elif vol_total > base_vol:
                moved.append((logical, vol_total - base_vol, amt_total - base_amt, vol_total, amt_total))
        if view.state == PumpState.END_OF_TRANSACTION:
            try:  # R1: settled from the totalizers first, released now
                self._submit(ClearTransaction(view.pump_id))
            except Unavailable:
                log.warning("pump %s: could not release after recovery", view.pump_id)
        if moved:
            logical, volume, amount, vol_total, amt_total = moved[0]
            price = amount * 1000 // volume if volume else None
            log.warning("pump %s: fill %s recovered from the totalizers (%d mL, %d fen)", view.pump_id, fill_id,
                        volume, amount)
            self._on_finished(view, FillFinished(view.pump_id, self._clock.monotonic(), logical, volume, amount,
                                                 price, 0, 0, volume_total_ml=vol_total,
                                                 amount_total_fen=amt_total), clear=False,
                              note="recovered from the totalizers: the pump did not report this sale")
            return
        note = "no delivery (totalizers unchanged)" if not unknown else \
            "no delivery reported; no earlier totalizer reading to compare: check the meter"
        if unknown:
            self._bus.publish("pump.alert", {"pump_id": view.pump_id, "fill_id": fill_id, "code": "no_meter_baseline",
                                             "reason": note})
        self._close_fill_zero(view, fill_id, note)

    def _on_finished(self, view: PumpView, ev: FillFinished, *, clear: bool = True, note: str = "") -> None:
        if ev.volume_ml == 0 and ev.amount_fen == 0 and ev.volume_total_ml is None and clear:
            # "nothing sold" without totalizers to prove it (e.g. a stale status replayed after a
            # restart): an open fill is settled from the totalizers instead (R7), never zeroed blindly
            open_row = self._store.query_one(
                "SELECT fill_id FROM fills WHERE pump_id = ? AND state IN ('authorized', 'fuelling',"
                " 'needs_reconciliation') ORDER BY created_at_ms DESC LIMIT 1", (view.pump_id,))
            if open_row is not None:
                if view.recovering != open_row["fill_id"]:
                    self._start_recovery(view, str(open_row["fill_id"]))
                return
        now = self._clock.now_ms()
        gun, grade = view.gun(ev.nozzle), view.grade(ev.nozzle)
        start = view.start_totals.get(ev.nozzle) if ev.nozzle is not None else None
        price_version = self.prices.current_version()

        def tx(db: sqlite_utils.Database) -> tuple[str, bool]:
            if ev.volume_total_ml is not None:
                key = f"{view.pump_id}:{ev.nozzle}:{ev.volume_total_ml}"
                dup = db.execute("SELECT fill_id FROM fills WHERE completion_key = ?", [key]).fetchone()
                if dup is not None:
                    return str(dup[0]), False
            else:
                key = None
            row = db.execute("SELECT fill_id, state FROM fills WHERE pump_id = ? AND state IN "
                             "('authorized', 'fuelling', 'needs_reconciliation') ORDER BY created_at_ms DESC "
                             "LIMIT 1", [view.pump_id]).fetchone()
            nonlocal start
            if start is None and row is not None and ev.nozzle is not None:  # the reading stored at authorize
                snap = db.execute("SELECT start_totals FROM fills WHERE fill_id = ?", [row[0]]).fetchone()
                saved = json.loads(snap[0] or "{}") if snap is not None else {}
                if str(ev.nozzle) in saved:
                    start = (int(saved[str(ev.nozzle)][0]), int(saved[str(ev.nozzle)][1]))
            if start is None and gun is not None:  # no reading from this run: the previous fill's end
                prev = db.execute("SELECT end_total_ml, end_total_fen FROM fills WHERE pump_id = ? AND nozzle = ?"
                                  " AND end_total_ml IS NOT NULL ORDER BY finished_at_ms DESC LIMIT 1",
                                  [view.pump_id, gun]).fetchone()
                start = (int(prev[0]), int(prev[1])) if prev is not None else None
            if row is None and key is None:
                last = db.execute("SELECT fill_id, nozzle, volume_ml, amount_fen FROM fills WHERE pump_id = ? "
                                  "ORDER BY created_at_ms DESC LIMIT 1", [view.pump_id]).fetchone()
                if last is not None and (last[1], last[2], last[3]) == (gun, ev.volume_ml, ev.amount_fen):
                    return str(last[0]), False  # the same unread sale reported again after a reconnect
            notes = [note] if note else []
            if start is not None and ev.volume_total_ml is not None and \
                    ev.volume_total_ml - start[0] != ev.volume_ml:
                notes.append(f"meter variance {ev.volume_total_ml - start[0] - ev.volume_ml} mL")
            if row is None:
                fill_id = self.agent.ids.new_id()
                notes.append("unattributed: no authorization on record")
                db.execute("INSERT INTO fills(fill_id, pump_id, state, created_at_ms) VALUES (?, ?, 'authorized', ?)",
                           [fill_id, view.pump_id, now])
            else:
                fill_id = str(row[0])
            state = "finished" if ev.volume_ml > 0 or ev.amount_fen > 0 else "zero"
            prepaid = db.execute("SELECT order_id FROM fills WHERE fill_id = ?", [fill_id]).fetchone()[0]
            if prepaid is not None and state == "finished":
                state = "paid"  # paid before it started (prepay / mobile order); any underrun is refunded
            db.execute(
                "UPDATE fills SET state = ?, nozzle = ?, grade = ?, volume_ml = ?, amount_fen = ?, price_fen = ?,"
                " price_set_version = COALESCE(price_set_version, ?), start_total_ml = ?, end_total_ml = ?,"
                " start_total_fen = ?, end_total_fen = ?, completion_key = ?, finished_at_ms = ?, note = ?"
                " WHERE fill_id = ?",
                [state, gun, grade, ev.volume_ml, ev.amount_fen, ev.price_fen, price_version,
                 start[0] if start else None, ev.volume_total_ml, start[1] if start else None,
                 ev.amount_total_fen, key or f"{view.pump_id}:{fill_id}", now, "; ".join(notes) or None, fill_id])
            enqueue(db, event_id=f"fill:{fill_id}:finished", aggregate="fill", aggregate_id=fill_id,
                    kind="fill.finished", payload=_fill_payload(db, fill_id), now_ms=now)
            return fill_id, True

        fill_id, new = self._store.write(tx)
        # R1: durable now; only now is the pump released.
        if clear:
            self._submit(ClearTransaction(view.pump_id))
        with self._lock:
            if view.fill_id == fill_id or new:
                # a replayed report of an earlier sale (new is False, another id) must not detach the
                # fill the pump was authorized for since
                view.fill_id = None
                view.fill_seen_busy = False
            if new:  # the tile shows the sale's final figures, not the last flow reading before them
                view.volume_ml, view.amount_fen = ev.volume_ml, ev.amount_fen
            if ev.nozzle is not None and ev.volume_total_ml is not None and ev.amount_total_fen is not None:
                view.totals[ev.nozzle] = (ev.volume_total_ml, ev.amount_total_fen)
        if new:
            self._bus.publish("fill.finished", self.fill(fill_id))
        self._publish_status(view)

    def _on_command_failed(self, view: PumpView, ev: CommandFailed) -> None:
        self._bus.publish("pump.command_failed", {"pump_id": view.pump_id, "command": type(ev.command).__name__,
                                                  "reason": ev.reason})
        if isinstance(ev.command, ReadTotals) and view.recovering is not None:
            with self._lock:
                view.recovering = None  # asked again at the pump's next status
        if isinstance(ev.command, Authorize) and view.fill_id is not None:
            self._close_fill_zero(view, view.fill_id, f"authorize failed: {ev.reason}")
        elif isinstance(ev.command, SetPrices):
            self.prices.on_failed(view, ev.reason, self._submit)

    # ------------------------------------------------------------ helpers
    def _submit(self, cmd: Any) -> None:
        driver = self._drivers.get(cmd.pump_id)
        if driver is None:
            return
        try:
            driver.submit(cmd)
        except DriverError as exc:
            log.warning("pump %s: %s refused by the driver: %s", cmd.pump_id, type(cmd).__name__, exc)
            raise Unavailable(f"pump {cmd.pump_id}: {exc}", code="pump_unavailable") from exc

    def _set_fill_state(self, fill_id: str, state: str) -> None:
        self._store.write(lambda db: db.execute("UPDATE fills SET state = ? WHERE fill_id = ?", [state, fill_id]))

    def _close_fill_zero(self, view: PumpView, fill_id: str, note: str) -> None:
        now = self._clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            db.execute("UPDATE fills SET state = 'zero', finished_at_ms = ?, note = ?, completion_key = "
                       "COALESCE(completion_key, ?) WHERE fill_id = ? AND state IN "
                       "('authorized', 'fuelling', 'needs_reconciliation')",
                       [now, note, f"{view.pump_id}:{fill_id}", fill_id])
            enqueue(db, event_id=f"fill:{fill_id}:zero", aggregate="fill", aggregate_id=fill_id,
                    kind="fill.zero", payload={"fill_id": fill_id, "pump_id": view.pump_id, "note": note},
                    now_ms=now)

        self._store.write(tx)
        with self._lock:
            view.fill_id = None
            view.fill_seen_busy = False
        self._bus.publish("fill.zero", {"fill_id": fill_id, "pump_id": view.pump_id, "note": note})
        self._publish_status(view)

    def _unpaid(self, pump_id: int) -> int:
        row = self._store.query_one("SELECT COUNT(*) AS n FROM fills WHERE pump_id = ? AND state IN "
                                    "('finished', 'claimed')", (pump_id,))
        return int(row["n"]) if row else 0

    def _publish_status(self, view: PumpView) -> None:
        with self._lock:
            snap = view.snapshot(self._unpaid(view.pump_id))
        self._bus.publish("pump.status", snap)

    def publish_pump(self, pump_id: int) -> None:
        """Re-announce a pump (its unpaid count changed because a sale was claimed, paid or released)."""
        view = self._views.get(pump_id)
        if view is not None:
            self._publish_status(view)

    def _view(self, pump_id: int) -> PumpView:
        view = self._views.get(pump_id)
        if view is None:
            raise NotFound(f"no pump {pump_id}", code="unknown_pump", pump_id=pump_id)
        return view

    # ------------------------------------------------------------ queries
    def pumps(self) -> list[dict[str, Any]]:
        return [self.pump(pid) for pid in sorted(self._views)]

    def pump(self, pump_id: int) -> dict[str, Any]:
        view = self._view(pump_id)
        with self._lock:
            return view.snapshot(self._unpaid(pump_id))

    def fill(self, fill_id: str) -> dict[str, Any]:
        row = self._store.query_one("SELECT * FROM fills WHERE fill_id = ?", (fill_id,))
        if row is None:
            raise NotFound(f"no fill {fill_id}", fill_id=fill_id)
        return row

    def fills(self, pump_id: int | None = None, state: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql, args = "SELECT * FROM fills WHERE 1 = 1", list[Any]()
        if pump_id is not None:
            sql += " AND pump_id = ?"
            args.append(pump_id)
        if state is not None:
            sql += " AND state = ?"
            args.append(state)
        sql += " ORDER BY created_at_ms DESC LIMIT ?"
        args.append(limit)
        return self._store.query(sql, tuple(args))

    # ------------------------------------------------------------ commands
    def authorize(self, pump_id: int, *, nozzles: tuple[int, ...] = (), preset_amount_fen: int | None = None,
                  preset_volume_ml: int | None = None, actor: str = "cashier",
                  order_id: str | None = None) -> dict[str, Any]:
        """Authorize a fill; the fill id is committed before the first bus command (R1/R2)."""
        view = self._view(pump_id)
        if preset_amount_fen is not None and preset_volume_ml is not None:
            raise InvalidRequest("give a preset amount or a preset volume, not both", code="two_presets")
        for name, v in (("preset_amount_fen", preset_amount_fen), ("preset_volume_ml", preset_volume_ml)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0 or v > 10_000_000):
                raise InvalidRequest(f"{name}: expected a positive integer", code="bad_preset")
        by_gun = {gun: lg for lg, (gun, _) in view.nozzles.items()}
        unknown = [n for n in nozzles if n not in by_gun]
        if unknown:
            raise InvalidRequest(f"pump {pump_id} has no nozzle {unknown[0]}", code="unknown_nozzle",
                                 nozzles=sorted(by_gun))
        logicals = tuple(by_gun[n] for n in nozzles)
        with self._lock:
            state, locked = view.state, view.locked
        if locked:
            raise Conflict(f"pump {pump_id} is locked ({view.lock_reason or 'by the manager'})", code="pump_locked")
        if state == PumpState.OFFLINE:
            raise Unavailable(f"pump {pump_id} is offline", code="pump_offline")
        if state not in (PumpState.IDLE, PumpState.CALLING):
            raise Conflict(f"pump {pump_id} is {state.value}: it can be authorized only when idle or calling",
                           code="pump_busy", state=state.value)
        now = self._clock.now_ms()
        fill_id = self.agent.ids.new_id()
        with self._lock:
            baseline = dict(view.totals)  # R7: the totalizers before this fill
        limit = self._policy.max_unpaid_per_pump
        # the version the pump itself verified (a change sent but not yet read back is not sold yet)
        version = self.prices.version_on(pump_id) or self.prices.current_version()

        def tx(db: sqlite_utils.Database) -> None:
            open_row = db.execute("SELECT fill_id FROM fills WHERE pump_id = ? AND state IN "
                                  "('authorized', 'fuelling', 'needs_reconciliation')", [pump_id]).fetchone()
            if open_row is not None:
                raise Conflict(f"pump {pump_id} already has a fill in progress", code="fill_in_progress",
                               fill_id=open_row[0])
            unpaid = db.execute("SELECT COUNT(*) FROM fills WHERE pump_id = ? AND state IN ('finished', 'claimed')",
                                [pump_id]).fetchone()[0]
            if unpaid > limit:
                raise Conflict(f"pump {pump_id} has {unpaid} unpaid sales: pay the previous sale first",
                               code="pay_previous_sale", unpaid=unpaid)
            db.execute("INSERT INTO fills(fill_id, pump_id, state, preset_amount_fen, preset_volume_ml,"
                       " price_set_version, authorized_at_ms, created_at_ms, order_id, start_totals)"
                       " VALUES (?, ?, 'authorized', ?, ?, ?, ?, ?, ?, ?)",
                       [fill_id, pump_id, preset_amount_fen, preset_volume_ml, version, now, now, order_id,
                        json.dumps({str(lg): list(t) for lg, t in baseline.items()})])
            add_audit(db, at_ms=now, actor=actor, action="pump.authorize", target=f"pump:{pump_id}",
                      after={"fill_id": fill_id, "nozzles": list(nozzles), "preset_amount_fen": preset_amount_fen,
                             "preset_volume_ml": preset_volume_ml})

        self._store.write(tx)
        with self._lock:
            view.fill_id = fill_id
            view.fill_seen_busy = False
            view.start_totals = dict(view.totals)
            view.authorized_at, view.expiring, view.settle_tried_at = time.monotonic(), False, None
        try:
            self._submit(Authorize(pump_id, nozzles=logicals, preset_volume_ml=preset_volume_ml,
                                   preset_amount_fen=preset_amount_fen))
        except Unavailable:
            self._close_fill_zero(view, fill_id, "driver refused the authorization")
            raise
        self._bus.publish("pump.authorized", {"pump_id": pump_id, "fill_id": fill_id, "by": actor,
                                              "preset_amount_fen": preset_amount_fen,
                                              "preset_volume_ml": preset_volume_ml})
        return self.fill(fill_id)

    def stop(self, pump_id: int, actor: str = "cashier") -> None:
        self._view(pump_id)
        self._submit(Stop(pump_id))
        self._audit(actor, "pump.stop", pump_id)

    def suspend(self, pump_id: int, actor: str = "cashier") -> None:
        self._view(pump_id)
        self._submit(Suspend(pump_id))

    def resume(self, pump_id: int, actor: str = "cashier") -> None:
        self._view(pump_id)
        self._submit(Resume(pump_id))

    def emergency_stop(self, pump_id: int = 0, actor: str = "cashier") -> list[int]:
        """R5: straight to every line's next frame boundary; logged afterwards, off the hot path."""
        targets = list(self._all_drivers) if pump_id == 0 else [self._drivers[self._view(pump_id).pump_id]]
        for driver in targets:
            driver.emergency_stop(pump_id)
        stopped = sorted(self._views) if pump_id == 0 else [pump_id]
        threading.Thread(target=self._log_estop, args=(stopped, actor), daemon=True).start()
        return stopped

    def _log_estop(self, pumps: list[int], actor: str) -> None:
        self._bus.publish("pump.emergency_stop", {"pumps": pumps, "by": actor})
        try:
            self._audit(actor, "pump.emergency_stop", 0, {"pumps": pumps})
        except Exception:  # the stop already happened; a failing disk must not hide it
            log.exception("could not audit the emergency stop")

    def read_totals(self, pump_id: int) -> None:
        self._view(pump_id)
        self._submit(ReadTotals(pump_id))

    def read_prices(self, pump_id: int) -> None:
        self._view(pump_id)
        self._submit(ReadPrices(pump_id))

    def set_locked(self, pump_id: int, locked: bool, *, reason: str = "", actor: str = "manager") -> dict[str, Any]:
        view = self._view(pump_id)
        now = self._clock.now_ms()

        def tx(db: sqlite_utils.Database) -> None:
            db.execute("INSERT INTO pump_settings(pump_id, locked, reason, updated_at_ms) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT(pump_id) DO UPDATE SET locked = excluded.locked, reason = excluded.reason, "
                       "updated_at_ms = excluded.updated_at_ms", [pump_id, int(locked), reason, now])
            add_audit(db, at_ms=now, actor=actor, action="pump.lock" if locked else "pump.unlock",
                      target=f"pump:{pump_id}", before={"locked": view.locked}, after={"locked": locked,
                                                                                        "reason": reason})

        self._store.write(tx)
        with self._lock:
            view.locked, view.lock_reason = locked, reason
        self._publish_status(view)
        return self.pump(pump_id)

    def apply_prices_to_idle(self) -> None:
        """Push the current price set to every idle pump without an open fill; busy ones get it when idle."""
        for view in self._views.values():
            with self._lock:
                ready = view.state == PumpState.IDLE and view.fill_id is None
            if ready:
                self.prices.apply_pending(view, self._submit)

    def _audit(self, actor: str, action: str, pump_id: int, after: dict[str, Any] | None = None) -> None:
        now = self._clock.now_ms()
        self._store.write(lambda db: add_audit(db, at_ms=now, actor=actor, action=action,
                                               target=f"pump:{pump_id}", after=after or {}))


def _fill_payload(db: sqlite_utils.Database, fill_id: str) -> dict[str, Any]:
    cur = db.execute("SELECT * FROM fills WHERE fill_id = ?", [fill_id])
    cols = [d[0] for d in cur.description]
    return dict(zip(cols, cur.fetchone(), strict=True))
