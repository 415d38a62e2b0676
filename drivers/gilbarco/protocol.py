"""Gilbarco two-wire bus master: exchanges and poll scheduler for the pumps of one loop (sans-IO).

:class:`GilbarcoBus` has the same surface as :class:`drivers.dart.protocol.DartBus`; the driver loop
does::

    data = bus.next_frame(now)        # bytes to write now (one word or one block), or None
    ... write, wait for bytes until bus.deadline ...
    events = bus.receive(data, now)   # or bus.tick(now) when the deadline passed

Link rules (PROTOCOLS.md 2.2, 2.3, 2.7, R9):

1. One exchange at a time: a word, then its reply (whose kind only the request tells), or the quiet
   time of ``Timing.command_gap_s`` after a word without reply.
2. Round robin over pumps: a turn sends the pump's next job step if one is due, else ``0p``; a pump
   whose previous turn sent a job step is polled (``0p``) this turn, so status never starves.
   Steps of one job with ``after_s == 0`` follow at once (``Dp`` -> block); a later step (the 100 ms
   preset wait) lets the other pumps be polled meanwhile.
3. A reply is *bad* when it times out, has the wrong pump nibble, is ``0`` (data error), fails its
   LRC or layout.  A bad reply to a step is retried; after ``Timing.max_bad_replies`` consecutive bad
   replies the job is given up (3 by default, section 2.3).  A silent pump gets
   ``Timing.poll_retries`` immediate re-polls.  After ``LineConfig.max_consecutive_timeouts``
   consecutive bad replies (at least ``max_bad_replies``) the pump is OFFLINE and polled every
   ``Timing.offline_poll_interval_s``.  Counters are per pump: a dead pump never stalls the loop.
4. A status word has no check, so a *changed* status is applied only when read twice in a row (the
   pump is re-polled at once to confirm).
5. Commands without reply (``1p``, ``3p``) are never retried: their effect is confirmed by status
   (R2); read requests are idempotent and retried.  Going OFFLINE fails every queued command.
6. Emergency stop: queued jobs are dropped; ``FC`` (all pumps) and/or ``3p`` go out at the next
   frame boundary; while a stopped pump still reports 8/9, ``3p`` is sent again (up to 3 times).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

from drivers.base import (
    Command,
    CommandRejected,
    ConfigError,
    DriverEvent,
    EmergencyStop,
    LineConfig,
    LinkFault,
    PumpState,
)
from drivers.gilbarco.codec import (
    ALL_STOP,
    BlockError,
    Cmd,
    Status,
    command_byte,
    parse_status,
)
from drivers.gilbarco.link import Job, Reply, ReplyReader, Step
from drivers.gilbarco.point import GilbarcoPoint, Timing
from drivers.gilbarco.replies import (
    parse_money,
    parse_totals,
    parse_transaction,
    parse_volume,
)

__all__ = ["GilbarcoBus", "Timing"]

_ESTOP_CHECKS = 3


@dataclass
class _Link:
    """Link state of one pump."""

    point: GilbarcoPoint
    pump: int
    poll: bytes
    stop: bytes
    online: bool | None = None  #: None = never heard from
    jobs: deque[Job] = field(default_factory=deque)
    job: Job | None = None
    step: int = 0
    tries: int = 0  #: bad replies to the current step
    ready_at: float = 0.0  #: the current job's next step not before
    failures: int = 0  #: consecutive bad replies
    next_poll_at: float = 0.0
    candidate: Status | None = None  #: a changed status seen once
    estop: int = 0  #: 3p words still to send
    estop_checks: int = 0
    job_turn: bool = False  #: its last round-robin turn sent a job step: the next one polls status


@dataclass(frozen=True)
class _Await:
    link: _Link | None  #: None for FC
    step: Step | None  #: None for a status poll
    reader: ReplyReader | None  #: None when no reply is expected
    deadline: float


class GilbarcoBus:
    """Master side of one Gilbarco loop (see module docstring)."""

    def __init__(self, line: LineConfig, timing: Timing | None = None) -> None:
        self.line = line
        self.timing = timing or Timing()
        if not 0 < len(line.pumps) <= 16:
            raise ConfigError(f"a Gilbarco loop has 1-16 pumps, not {len(line.pumps)}")
        self._links: list[_Link] = []
        self._by_pump: dict[int, _Link] = {}
        seen: set[int] = set()
        for pump in line.pumps:
            if not 1 <= pump.address <= 16:
                raise ConfigError(f"pump {pump.pump_id}: Gilbarco pump number {pump.address} outside 1-16")
            if pump.address in seen or pump.pump_id in self._by_pump:
                raise ConfigError(f"pump {pump.pump_id}: duplicate pump id or pump number")
            if not set(pump.nozzles) <= set(range(1, 11)):
                raise ConfigError(f"pump {pump.pump_id}: Gilbarco hoses are 1-10")
            seen.add(pump.address)
            poll = bytes((command_byte(Cmd.STATUS, pump.address),))
            stop = bytes((command_byte(Cmd.STOP, pump.address),))
            link = _Link(GilbarcoPoint(pump, self.timing), pump.address, poll, stop)
            self._links.append(link)
            self._by_pump[pump.pump_id] = link
        self._word_s = 11.0 / line.baudrate
        self._max_failures = max(self.timing.max_bad_replies, line.max_consecutive_timeouts)
        self._await: _Await | None = None
        self._all_stop = False
        self._rr = 0
        self._retry: _Link | None = None
        self._retry_left = 0
        self._out: list[DriverEvent] = []

    # ------------------------------------------------------------ public API

    def state(self, pump_id: int) -> PumpState | None:
        link = self._link(pump_id)
        return PumpState.OFFLINE if link.online is False else link.point.state

    def submit(self, command: Command, now: float) -> list[DriverEvent]:
        if isinstance(command, EmergencyStop):
            return self.emergency_stop(command.pump_id, now)
        self._link(command.pump_id).point.command(command, now)
        return self._collect()

    def emergency_stop(self, pump_id: int, now: float) -> list[DriverEvent]:
        targets = self._links if pump_id == 0 else [self._link(pump_id)]
        self._all_stop = self._all_stop or pump_id == 0
        for link in targets:
            self._collect_jobs(link)
            for job in link.jobs:
                link.point.on_aborted(job, now, "preempted by emergency stop", failed=True)
            link.jobs.clear()
            self._drop_job(link, now, "preempted by emergency stop")
            link.point.on_estop(now)
            link.estop, link.estop_checks = 1, _ESTOP_CHECKS
        return self._collect()

    @property
    def deadline(self) -> float | None:
        """When to call ``tick``: reply deadline, next due step or offline poll; None = now."""
        if self._await is not None:
            return self._await.deadline
        if self._all_stop or any(lk.online is not False or lk.estop for lk in self._links):
            return None
        return min(lk.next_poll_at for lk in self._links)

    def next_frame(self, now: float) -> bytes | None:
        if self._await is not None:
            return None
        if self._all_stop:
            self._all_stop = False
            word = bytes((ALL_STOP,))
            return self._send(None, Step(word, Reply.NONE), word, now)
        picked = self._pick(now)
        if picked is None:
            return None
        link, turn = picked
        if link.estop:
            link.estop -= 1
            return self._send(link, Step(link.stop, Reply.NONE), link.stop, now)
        if link.job is None and link.jobs and link.online:
            link.job, link.step, link.tries = link.jobs.popleft(), 0, 0
        job = link.job
        if job is not None and link.online and now >= link.ready_at and not (turn and link.job_turn):
            link.job_turn = turn or link.job_turn
            step = job.steps[link.step]
            return self._send(link, step, step.data, now)
        if turn:
            link.job_turn = False
        return self._send(link, None, link.poll, now)

    def receive(self, data: bytes, now: float) -> list[DriverEvent]:
        aw = self._await
        if aw is None or aw.reader is None:
            self._fault(None if aw is None else aw.link, now, f"unexpected bytes {data.hex(' ')}")
            return self.tick(now)
        reply, garbage = aw.reader.feed(data)
        if garbage:
            self._fault(aw.link, now, f"garbage {garbage.hex(' ')}")
        if reply is not None:
            self._await = None
            self._on_reply(aw, reply, now)
        elif aw.reader.buffered:
            extended = now + 20 * self._word_s
            if extended > aw.deadline:
                self._await = replace(aw, deadline=extended)
        return self.tick(now)

    def tick(self, now: float) -> list[DriverEvent]:
        aw = self._await
        if aw is not None and now >= aw.deadline:
            self._await = None
            if aw.reader is None:
                if aw.link is not None and aw.step is not None:
                    self._step_done(aw.link, now)
            else:
                assert aw.link is not None
                self._bad(aw.link, aw.step, now, "timeout")
        for link in self._links:
            link.point.tick(now)
        return self._collect()

    # ------------------------------------------------------------ scheduling

    def _link(self, pump_id: int) -> _Link:
        try:
            return self._by_pump[pump_id]
        except KeyError:
            raise CommandRejected(f"no pump {pump_id} on line {self.line.name}") from None

    def _send(self, link: _Link | None, step: Step | None, data: bytes, now: float) -> bytes:
        kind = Reply.STATUS if step is None else step.reply
        reader = None if kind is Reply.NONE else ReplyReader(kind)
        words = kind.max_words
        if kind is Reply.TOTALS and link is not None:  # the deadline extends while words arrive
            words = 4 + 42 * len(link.point.config.nozzles)
        wire = (len(data) + words) * self._word_s
        wait = self.timing.command_gap_s if reader is None else self.line.response_timeout_s
        if kind in (Reply.TRANSACTION, Reply.TOTALS):
            wait *= 5  # 2.7: block replies get a longer no-response timer
        self._await = _Await(link, step, reader, now + wire + wait)
        return data

    def _pick(self, now: float) -> tuple[_Link, bool] | None:
        """(link, taken in its round-robin turn) -- e-stops, retries and held steps come first."""
        stops = [lk for lk in self._links if lk.estop]
        if stops:
            return stops[0], False
        if self._retry is not None:
            link, self._retry = self._retry, None
            return link, False
        held = [
            lk
            for lk in self._links
            if lk.job is not None
            and lk.step > 0
            and lk.online
            and now >= lk.ready_at
            and lk.job.steps[lk.step].after_s == 0
        ]
        if held:
            return held[0], False
        count = len(self._links)
        for i in range(count):
            link = self._links[(self._rr + i) % count]
            if link.online is False and now < link.next_poll_at:
                continue
            self._rr = (self._rr + i + 1) % count
            self._retry_left = self.timing.poll_retries
            return link, True
        return None

    def _collect_jobs(self, link: _Link) -> None:
        if link.point.jobs:
            if link.online:
                link.jobs.extend(link.point.jobs)
            else:
                for job in link.point.jobs:
                    link.point.on_aborted(job, 0.0, "pump offline", failed=True)
            link.point.jobs.clear()

    def _collect(self) -> list[DriverEvent]:
        out, self._out = self._out, []
        for link in self._links:
            self._collect_jobs(link)
            if link.point.events:
                out.extend(link.point.events)
                link.point.events.clear()
        return out

    # ------------------------------------------------------------ replies

    def _on_reply(self, aw: _Await, words: bytes, now: float) -> None:
        link, step = aw.link, aw.step
        assert link is not None
        kind = Reply.STATUS if step is None else step.reply
        try:
            if kind in (Reply.STATUS, Reply.SEND_DATA, Reply.CALL):
                status = parse_status(words[-1], link.pump)
                if status is Status.DATA_ERROR:
                    raise BlockError("data error (0) from the pump")
            elif kind is Reply.TRANSACTION:
                parsed: object = parse_transaction(words)
            elif kind is Reply.TOTALS:
                parsed = parse_totals(words)
            elif kind is Reply.MONEY:
                parsed = parse_money(words)
            else:
                parsed = parse_volume(words)
        except BlockError as exc:
            self._bad(link, step, now, f"{exc}: {words.hex(' ')}")
            return
        self._contact(link, now)
        if kind in (Reply.STATUS, Reply.SEND_DATA, Reply.CALL):
            if step is None or kind is Reply.STATUS:
                self._on_status(link, status, now)
            if kind is Reply.SEND_DATA and status is not Status.SEND_DATA:
                self._bad(link, step, now, f"{status.name} instead of SEND_DATA")
                return
            if kind is Reply.CALL and status is not Status.CALL:
                self._drop_job(link, now, f"pump left CALL ({status.name}) before the authorization", failed=False)
                self._on_status(link, status, now)
                return
        elif link.job is not None:
            link.point.on_reply(link.job, parsed, now)  # type: ignore[arg-type]
        if step is not None:
            self._step_done(link, now)

    def _on_status(self, link: _Link, status: Status, now: float) -> None:
        point = link.point
        if link.estop_checks:
            if status in (Status.AUTHORIZED, Status.BUSY):
                link.estop, link.estop_checks = 1, link.estop_checks - 1
            else:
                link.estop_checks = 0
        if status is point.raw:
            link.candidate = None
            return
        if status is link.candidate:
            link.candidate = None
            point.on_status(status, now)
            self._collect_jobs(link)
        else:
            link.candidate = status
            self._retry = link  # confirm at once

    def _step_done(self, link: _Link, now: float) -> None:
        job = link.job
        if job is None:
            return  # an e-stop 3p
        link.step += 1
        link.tries = 0
        if link.step >= len(job.steps):
            link.job = None
            link.point.on_done(job, now)
            self._collect_jobs(link)
        else:
            link.ready_at = now + job.steps[link.step].after_s

    def _drop_job(self, link: _Link, now: float, reason: str, *, failed: bool = True) -> None:
        job = link.job
        if job is not None:
            link.job = None
            link.point.on_aborted(job, now, reason, failed=failed)
            self._collect_jobs(link)

    def _contact(self, link: _Link, now: float) -> None:
        link.failures = 0
        if not link.online:
            link.online = True
            link.candidate = None
            link.point.on_contact(now)

    def _bad(self, link: _Link, step: Step | None, now: float, reason: str) -> None:
        link.failures += 1
        if link.online is not False:
            self._fault(link, now, reason)
        if step is not None and link.job is not None and step is link.job.steps[link.step]:
            link.tries += 1
            if link.tries >= self.timing.max_bad_replies:
                self._drop_job(link, now, f"{link.tries} bad replies ({reason})")
            elif link.online:
                self._retry = link
        if link.online is not False and link.failures >= self._max_failures:
            self._go_offline(link, now)
        elif link.online is False:
            link.next_poll_at = now + self.timing.offline_poll_interval_s
        elif step is None and self._retry_left > 0:
            self._retry = link
            self._retry_left -= 1

    def _go_offline(self, link: _Link, now: float) -> None:
        link.online = False
        link.candidate = None
        link.next_poll_at = now + self.timing.offline_poll_interval_s
        self._drop_job(link, now, "pump went offline")
        self._collect_jobs(link)
        for job in link.jobs:
            link.point.on_aborted(job, now, "pump offline", failed=True)
        link.jobs.clear()
        link.point.on_offline(now)

    def _fault(self, link: _Link | None, now: float, reason: str) -> None:
        pump_id = 0 if link is None else link.point.config.pump_id
        self._out.append(LinkFault(pump_id, now, reason))
