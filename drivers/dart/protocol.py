"""DART bus master: link layer and poll scheduler for the pumps of one line (sans-IO).

:class:`DartBus` takes bytes and ``now`` and returns driver events and bytes to send; it never reads
a clock, sleeps, or touches a port.  The driver loop does::

    frame = bus.next_frame(now)          # bytes to write now, or None
    ... write frame, wait for bytes until bus.deadline ...
    events = bus.receive(data, now)      # or bus.tick(now) when the deadline passed

Link rules (PROTOCOLS.md 1.5, 1.6, R9):

1. One exchange at a time (half duplex): POLL -> DATA | EOT, our DATA -> ACK | NAK, ACK -> nothing.
2. Round robin over addresses; a silent address gets ``Timing.poll_retries`` immediate re-polls,
   then the line moves on.  Failures are counted per address; after
   ``LineConfig.max_consecutive_timeouts`` the pump is OFFLINE and polled only every
   ``Timing.offline_poll_interval_s``, so a dead pump never stalls the line.
3. Our TX# advances only on the matching ACK (wrap to ``PumpConfig.tx_wrap_to``).  NAK -> the same
   frame again; after ``max_naks`` the block is dropped and TX# restarts at 0.  No ACK after
   ``max_data_retries`` -> dropped as *unresolved* (the pump may have executed it): the next block is
   the idempotent CD1 RETURN_STATUS, so that a later command never reuses a TX# the pump saw.
4. Pump DATA is ACKed; a repeat of the last accepted frame (same TX#, same content) is ACKed again
   and not re-applied.  A frame failing its CRC is never applied; it only produces a ``LinkFault``.
5. Dropped commands are reported as ``CommandFailed`` and never resent (R2); going OFFLINE drops
   every queued command.
6. Emergency stop: queued commands of the pump(s) are dropped and CD1 STOP goes first at the next
   frame boundary (twice, with consecutive TX#, when an earlier block is unresolved, so that one of
   them is executed whichever TX# the pump saw last).
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
from drivers.dart.blocks import CdCommand, Dcc, Direction
from drivers.dart.codec import ADDRESS_MAX, ADDRESS_MIN, DecodeError, Decoder, Frame, Kind, encode
from drivers.dart.fuelling import FuellingPoint, Job, Timing

__all__ = ["DartBus", "Timing"]

_MAX_PUMPS = ADDRESS_MAX - ADDRESS_MIN + 1


@dataclass
class _Link:
    """Link-layer state of one address."""

    fp: FuellingPoint
    address: int
    online: bool | None = None  #: None = never heard from
    tx: int = 0  #: TX# of our next DATA block
    rx_last: Frame | None = None  #: last accepted pump DATA frame (duplicate check)
    jobs: deque[Job] = field(default_factory=deque)
    inflight: Job | None = None
    inflight_frame: bytes = b""
    inflight_tx: int = 0
    tries: int = 0
    naks: int = 0
    failures: int = 0  #: consecutive failed exchanges
    estop: bool = False
    unresolved: bool = False  #: a block was dropped without ACK
    next_poll_at: float = 0.0
    poll_frame: bytes = b""

    def next_tx(self) -> int:
        return self.fp.config.tx_wrap_to if self.tx >= 0xF else self.tx + 1


@dataclass(frozen=True)
class _Await:
    link: _Link
    kind: Kind  #: POLL or DATA
    deadline: float


def _resync() -> Job:
    return Job((CdCommand(Dcc.RETURN_STATUS),), purpose="resync")


class DartBus:
    """Master side of one DART line (see module docstring)."""

    def __init__(self, line: LineConfig, timing: Timing | None = None) -> None:
        self.line = line
        self.timing = timing or Timing()
        if not 0 < len(line.pumps) <= _MAX_PUMPS:
            raise ConfigError(f"a DART line has 1-{_MAX_PUMPS} pumps, not {len(line.pumps)}")
        self._links: list[_Link] = []
        self._by_address: dict[int, _Link] = {}
        self._by_pump: dict[int, _Link] = {}
        for pump in line.pumps:
            if not ADDRESS_MIN <= pump.address <= ADDRESS_MAX:
                raise ConfigError(f"pump {pump.pump_id}: address {pump.address:#x} outside 0x50-0x6F")
            if pump.address in self._by_address or pump.pump_id in self._by_pump:
                raise ConfigError(f"pump {pump.pump_id}: duplicate pump id or address")
            if pump.tx_wrap_to not in (0, 1):
                raise ConfigError(f"pump {pump.pump_id}: tx_wrap_to must be 0 or 1")
            link = _Link(FuellingPoint(pump, self.timing), pump.address)
            link.poll_frame = encode(Frame(pump.address, Kind.POLL))
            self._links.append(link)
            self._by_address[pump.address] = link
            self._by_pump[pump.pump_id] = link
        self._decoder = Decoder(Direction.FROM_PUMP)
        self._byte_s = 11.0 / line.baudrate
        self._await: _Await | None = None
        self._garbled = False
        self._acks: deque[bytes] = deque()
        self._rr = 0
        self._retry: _Link | None = None
        self._retry_left = 0
        self._last_sent = b""
        self._out: list[DriverEvent] = []

    # ------------------------------------------------------------ public API

    def state(self, pump_id: int) -> PumpState | None:
        """Last reported state of a pump (None before first contact)."""
        link = self._link(pump_id)
        return PumpState.OFFLINE if link.online is False else link.fp.state

    def submit(self, command: Command, now: float) -> list[DriverEvent]:
        """Queue a command; an impossible one comes back as CommandFailed."""
        if isinstance(command, EmergencyStop):
            return self.emergency_stop(command.pump_id, now)
        self._link(command.pump_id).fp.command(command, now)
        return self._collect()

    def emergency_stop(self, pump_id: int, now: float) -> list[DriverEvent]:
        """Drop queued commands and send CD1 STOP first (pump_id 0 = every pump)."""
        targets = self._links if pump_id == 0 else [self._link(pump_id)]
        for link in targets:
            for job in link.jobs:
                if job.purpose != "estop":
                    link.fp.on_abandoned(job, now, "preempted by emergency stop")
            link.jobs = deque(j for j in link.jobs if j.purpose == "estop")
            busy = self._await is not None and self._await.link is link
            if link.inflight is not None and not busy:
                self._abandon(link, now, "preempted by emergency stop", unresolved=link.tries > 0)
            stop = (CdCommand(Dcc.STOP),)
            link.jobs.append(Job(stop, EmergencyStop(link.fp.config.pump_id), "estop"))
            if link.unresolved or busy:
                link.jobs.append(Job(stop, None, "estop"))
            link.estop = True
        return self._collect()

    @property
    def deadline(self) -> float | None:
        """When to call ``tick``: reply deadline, next offline poll; None = call next_frame now."""
        if self._await is not None:
            return self._await.deadline
        if self._acks or any(lk.online is not False or lk.estop for lk in self._links):
            return None
        return min(lk.next_poll_at for lk in self._links)

    def next_frame(self, now: float) -> bytes | None:
        """The next bytes to write, or None while a reply is awaited / nothing is due."""
        if self._await is not None:
            return None
        if self._acks:
            self._last_sent = self._acks.popleft()
            return self._last_sent
        link = self._pick(now)
        if link is None:
            return None
        may_send = link.online or link.estop
        if link.inflight is None and link.jobs and may_send:
            job = link.jobs.popleft()
            link.inflight, link.inflight_tx, link.tries, link.naks = job, link.tx, 0, 0
            link.inflight_frame = encode(Frame(link.address, Kind.DATA, link.tx, job.blocks))
        if link.inflight is not None and may_send:
            data, kind = link.inflight_frame, Kind.DATA
        else:
            data, kind = link.poll_frame, Kind.POLL
        self._await = _Await(link, kind, now + len(data) * self._byte_s + self.line.response_timeout_s)
        self._garbled = False
        self._last_sent = data
        return data

    def receive(self, data: bytes, now: float) -> list[DriverEvent]:
        """Bytes from the line."""
        for item in self._decoder.feed(data):
            if isinstance(item, DecodeError):
                self._fault(self._await.link if self._await else None, now, f"{item.reason}: {item.raw.hex(' ')}")
                # garbage alone may precede the reply: only a broken frame ends the exchange early
                self._garbled = self._garbled or item.reason != "garbage"
            else:
                self._on_frame(item, now)
        if self._await is not None:
            if self._garbled:
                self._failed_exchange(now, "garbled reply")
            elif self._decoder.buffered:  # a reply is arriving: allow it to finish
                extended = now + 20 * self._byte_s
                if extended > self._await.deadline:
                    self._await = replace(self._await, deadline=extended)
        return self.tick(now)

    def tick(self, now: float) -> list[DriverEvent]:
        """Run timers: reply timeout, per-pump timers."""
        if self._await is not None and now >= self._await.deadline:
            self._failed_exchange(now, "timeout")
        for link in self._links:
            link.fp.tick(now)
        return self._collect()

    # ------------------------------------------------------------ scheduling

    def _link(self, pump_id: int) -> _Link:
        try:
            return self._by_pump[pump_id]
        except KeyError:
            raise CommandRejected(f"no pump {pump_id} on line {self.line.name}") from None

    def _pick(self, now: float) -> _Link | None:
        stops = [lk for lk in self._links if lk.estop]
        if stops:
            return min(stops, key=lambda lk: lk.tries)
        if self._retry is not None:
            link, self._retry = self._retry, None
            return link
        count = len(self._links)
        for i in range(count):
            link = self._links[(self._rr + i) % count]
            if link.online is False and now < link.next_poll_at:
                continue
            self._rr = (self._rr + i + 1) % count
            self._retry_left = self.timing.poll_retries
            return link
        return None

    def _collect(self) -> list[DriverEvent]:
        out, self._out = self._out, []
        for link in self._links:
            fp = link.fp
            if fp.jobs:
                link.jobs.extend(fp.jobs)
                fp.jobs.clear()
            if fp.events:
                out.extend(fp.events)
                fp.events.clear()
        return out

    # ------------------------------------------------------------ replies

    def _on_frame(self, frame: Frame, now: float) -> None:
        if frame.kind is Kind.POLL or (frame.kind is Kind.DATA and encode(frame) == self._last_sent):
            return  # our own echo
        link = self._by_address.get(frame.address)
        aw = self._await
        if link is None or aw is None or aw.link is not link:
            if link is not None and link.online and frame.kind is Kind.DATA:
                self._accept(link, frame, now)  # late or repeated pump data: ACK, apply once
            else:
                self._fault(link, now, f"unexpected {frame.kind.name} from {frame.address:#x}")
            return
        self._await = None
        self._contact(link, now)
        if frame.kind is Kind.ACK and aw.kind is Kind.DATA and frame.tx == link.inflight_tx:
            self._acked(link, now)
            return
        if frame.kind is Kind.NAK and aw.kind is Kind.DATA:
            self._nak(link, now)
            return
        if frame.kind is Kind.DATA:
            self._accept(link, frame, now)
        elif frame.kind is not Kind.EOT or aw.kind is Kind.DATA:
            self._fault(link, now, f"{frame.kind.name} {frame.tx} in reply to {aw.kind.name}")
        if aw.kind is Kind.DATA:
            self._unacked(link, now, "no acknowledgement; execution unknown")

    def _contact(self, link: _Link, now: float) -> None:
        link.failures = 0
        if not link.online:
            link.online = True
            link.rx_last = None
            link.fp.on_contact(now)
            self._collect_jobs(link)

    def _collect_jobs(self, link: _Link) -> None:
        link.jobs.extend(link.fp.jobs)
        link.fp.jobs.clear()

    def _accept(self, link: _Link, frame: Frame, now: float) -> None:
        self._acks.append(encode(Frame(link.address, Kind.ACK, frame.tx)))
        if frame == link.rx_last:
            return
        link.rx_last = frame
        link.fp.on_blocks(frame.blocks, now)
        self._collect_jobs(link)

    def _acked(self, link: _Link, now: float) -> None:
        job = link.inflight
        assert job is not None
        link.inflight = None
        link.tx = link.next_tx()
        link.unresolved = False
        link.fp.on_acked(job, now)
        self._collect_jobs(link)
        self._update_estop(link)

    def _nak(self, link: _Link, now: float) -> None:
        link.naks += 1
        if link.naks >= self.timing.max_naks:
            self._abandon(link, now, "refused by the pump (NAK)", unresolved=False)
            link.tx = 0
            if not link.estop:
                link.jobs.appendleft(_resync())
        elif not link.estop:
            self._retry = link

    def _unacked(self, link: _Link, now: float, reason: str) -> None:
        job = link.inflight
        assert job is not None
        link.tries += 1
        if link.estop and job.purpose != "estop":
            self._abandon(link, now, "preempted by emergency stop", unresolved=True)
        elif link.tries > self.timing.max_data_retries:
            self._abandon(link, now, reason, unresolved=True)

    def _abandon(self, link: _Link, now: float, reason: str, *, unresolved: bool) -> None:
        job = link.inflight
        assert job is not None
        link.inflight = None
        link.fp.on_abandoned(job, now, reason)
        if unresolved:
            link.unresolved = True
            if link.estop:
                if sum(j.purpose == "estop" for j in link.jobs) < 2:
                    link.jobs.append(Job((CdCommand(Dcc.STOP),), None, "estop"))
            elif link.online:
                link.jobs.appendleft(_resync())
        self._update_estop(link)

    def _update_estop(self, link: _Link) -> None:
        pending = link.inflight is not None and link.inflight.purpose == "estop"
        link.estop = pending or any(j.purpose == "estop" for j in link.jobs)

    def _failed_exchange(self, now: float, reason: str) -> None:
        aw = self._await
        assert aw is not None
        self._await = None
        link = aw.link
        link.failures += 1
        if link.online:
            self._fault(link, now, reason)
        if aw.kind is Kind.DATA:
            self._unacked(link, now, f"no acknowledgement ({reason}); execution unknown")
        if link.online is not False and link.failures >= self.line.max_consecutive_timeouts:
            self._go_offline(link, now)
        elif link.online is False:
            link.next_poll_at = now + self.timing.offline_poll_interval_s
        elif self._retry_left > 0 and not link.estop:
            self._retry = link
            self._retry_left -= 1

    def _go_offline(self, link: _Link, now: float) -> None:
        link.online = False
        link.next_poll_at = now + self.timing.offline_poll_interval_s
        link.rx_last = None
        if link.inflight is not None and link.inflight.purpose != "estop":
            self._abandon(link, now, "pump went offline; execution unknown", unresolved=True)
        for job in link.jobs:
            if job.purpose != "estop":
                link.fp.on_abandoned(job, now, "pump offline")
        link.jobs = deque(j for j in link.jobs if j.purpose == "estop")
        link.fp.on_offline(now)

    def _fault(self, link: _Link | None, now: float, reason: str) -> None:
        pump_id = 0 if link is None else link.fp.config.pump_id
        self._out.append(LinkFault(pump_id, now, reason))
