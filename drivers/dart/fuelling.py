"""DART fuelling point: pump status to vendor-neutral state, sale tracking and commands (sans-IO).

One :class:`FuellingPoint` per bus address.  It sees only *accepted* pump transactions (CRC good, not
a duplicate) and the outcome of its own jobs; the link layer (:mod:`drivers.dart.protocol`) moves
the bytes.  Time is passed in.  Design rules:

1. **State from DC1 + NOZIO** (PROTOCOLS.md 3.1): 0 CLOSED, 1 IDLE/CALLING, 2 AUTHORIZED/STARTED,
   4 FUELLING, 5/6 END_OF_TRANSACTION, 7 OFFLINE, 8 SUSPENDED.
2. **One FillFinished per sale** (R8): entering 5/6 starts a *finish*: the final DC2 (CD1 04) and
   the nozzle's totals (CD101 -> DC101) are read, then FillFinished is emitted once.  The pump is not
   reset here; ``ClearTransaction`` (after the agent persisted the sale) sends CD1 RESET.  A sale that
   vanishes unread (4/8 -> 1, a volume drop inside a fill, 5 -> 1 before the read) is flushed with
   the best figures known, never dropped.
3. **Distrust on contact**: after first contact or a reconnection everything is unknown; the status
   is read again and a pump sitting in 5/6 has its fill re-read and re-reported (the agent dedups on
   the end totalizer).  Nothing queued before the loss is resent (R2).
4. **Sequencing** (1.9): authorize = CD2 [+CD3|CD4] + CD1 AUTHORIZE, only from status 1; confirmed
   by status 2/4 within ``authorize_confirm_s`` or cancelled with STOP.  A pump that leaves 0 for 5
   after its first prices is not a sale: it gets a RESET of its own.

Limits: totals counter = logical nozzle (unverified semantics); DC7 decimals are not read, the
configured ``Decimals`` are used.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from drivers.base import (
    Authorize,
    ClearTransaction,
    Command,
    CommandFailed,
    DriverEvent,
    FillFinished,
    FillProgress,
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
from drivers.dart.blocks import (
    Block,
    CdAllowedNozzles,
    CdCommand,
    CdPresetAmount,
    CdPresetVolume,
    CdPrices,
    CdTotalsRequest,
    DcAlarm,
    Dcc,
    DcFilling,
    DcNozzle,
    DcPrices,
    DcStatus,
    DcTotals,
)

__all__ = ["ALARM_TEXT", "FuellingPoint", "Job", "Timing"]

ALARM_TEXT = {
    0x01: "CPU reset",
    0x06: "pulser error",
    0x09: "emergency stop",
    0x0A: "power failure",
    0x0B: "pressure lost",
}

_STATE = {
    0: PumpState.CLOSED,
    1: PumpState.IDLE,
    2: PumpState.AUTHORIZED,
    4: PumpState.FUELLING,
    5: PumpState.END_OF_TRANSACTION,
    6: PumpState.END_OF_TRANSACTION,
    7: PumpState.OFFLINE,
    8: PumpState.SUSPENDED,
}
_END = (5, 6)
_IN_SALE = (2, 4, 8)


@dataclass(frozen=True)
class Timing:
    """Protocol timers and retry bounds (seconds / counts)."""

    poll_retries: int = 1  #: immediate re-polls of a silent address before moving on
    max_data_retries: int = 3  #: retransmissions of an unacknowledged DATA block
    max_naks: int = 3  #: NAKs of one block before giving up on it
    offline_poll_interval_s: float = 1.0  #: how often an OFFLINE address is polled
    authorize_confirm_s: float = 3.0  #: AUTHORIZED must be seen within this
    read_retry_s: float = 1.0  #: re-ask final fill / totals after this
    read_tries: int = 3  #: then report the fill with what is known


@dataclass(frozen=True)
class Job:
    """One DATA block to deliver; ``command`` is the agent's command behind it, if any."""

    blocks: tuple[Block, ...]
    command: Command | None = None
    #: "command", "read", "resync", "estop", "program"
    purpose: str = "command"


@dataclass
class _Finish:
    """A fill being read out after DC1 5/6."""

    nozzle: int | None
    preset_reached: bool
    fill: tuple[int, int] | None = None  #: final (volume, amount) raw
    totals: tuple[int, int] | None = None  #: (volume, amount) raw totalizers
    asked_at: float | None = None
    tries: int = 0


@dataclass
class FuellingPoint:
    """Application state of one DART fuelling point (see module docstring)."""

    config: PumpConfig
    timing: Timing = field(default_factory=Timing)
    events: list[DriverEvent] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    raw_status: int | None = None
    nozzle: int | None = None
    nozzle_out: bool = False
    price_raw: int | None = None
    _reported: tuple[object, ...] | None = None
    _reported_state: PumpState = PumpState.OFFLINE
    _progress: tuple[int, int] | None = None
    _sale_open: bool = False
    _finish: _Finish | None = None
    _finished: bool = False  #: FillFinished sent for the fill the pump now holds in 5/6
    _confirm: tuple[Authorize, float] | None = None
    _programming: bool = False

    @property
    def state(self) -> PumpState | None:
        """The state last reported in a PumpStatus event (None = not known yet)."""
        return None if self._reported is None else self._reported_state

    # ------------------------------------------------------------ link callbacks

    def on_contact(self, now: float) -> None:
        """First contact or reconnection: forget everything and read the status."""
        self.raw_status = None
        self.nozzle, self.nozzle_out, self.price_raw = None, False, None
        self._reported = None
        self._progress = None
        self._finish, self._finished, self._confirm = None, False, None
        self.jobs.append(Job((CdCommand(Dcc.RETURN_STATUS),), purpose="resync"))

    def on_offline(self, now: float) -> None:
        self.raw_status = None
        self._confirm = None
        self._emit_status(now, PumpState.OFFLINE)

    def on_blocks(self, blocks: Iterable[Block], now: float) -> None:
        """Apply the transactions of one accepted pump DATA frame."""
        blocks = tuple(blocks)
        status: int | None = None
        fill: DcFilling | None = None
        for block in blocks:
            if isinstance(block, DcNozzle):
                self.nozzle, self.nozzle_out, self.price_raw = block.nozzle, block.nozzle_out, block.price
            elif isinstance(block, DcStatus):
                status = block.status
            elif isinstance(block, DcFilling):
                fill = block
        if status is not None:
            self._on_status(status, fill, now)
        for block in blocks:
            if isinstance(block, DcFilling):
                self._on_filling(block, now)
            elif isinstance(block, DcTotals):
                self._on_totals(block, now)
            elif isinstance(block, DcPrices):
                prices = tuple(
                    (n, self.config.decimals.price_fen(p))
                    for n, p in zip(sorted(self.config.nozzles), block.prices, strict=False)
                )
                self.events.append(PricesRead(self.config.pump_id, now, prices))
            elif isinstance(block, DcAlarm):
                text = ALARM_TEXT.get(block.alarm, f"alarm {block.alarm:#04x}")
                self.events.append(PumpAlarm(self.config.pump_id, now, block.alarm, text))
        self._emit_status(now)
        self._try_finish(now)

    def on_acked(self, job: Job, now: float) -> None:
        cmd = job.command
        if isinstance(cmd, Authorize):
            self._confirm = (cmd, now + self.timing.authorize_confirm_s)
        elif isinstance(cmd, SetPrices):
            self.jobs.append(Job((CdCommand(Dcc.RETURN_PRICES),), purpose="read"))
        if job.purpose == "read" and self._finish is not None:
            self._finish.asked_at = now

    def on_abandoned(self, job: Job, now: float, reason: str) -> None:
        """A job was given up (no ACK, NAKs, offline, emergency stop): it is not resent (R2)."""
        if job.command is not None:
            self._fail(job.command, now, reason)
        if job.purpose == "read" and self._finish is not None:
            self._finish.asked_at = now

    def tick(self, now: float) -> None:
        """Timers: authorization confirmation, final-read retries."""
        if self._confirm is not None and now >= self._confirm[1]:
            cmd = self._confirm[0]
            self._confirm = None
            self._fail(cmd, now, "authorization not confirmed by the pump; stop sent")
            self.jobs.append(Job((CdCommand(Dcc.STOP),), purpose="command"))
        fin = self._finish
        if fin is not None and fin.asked_at is not None and now >= fin.asked_at + self.timing.read_retry_s:
            if fin.tries >= self.timing.read_tries:
                self._emit_finished(now, force=True)
            else:
                self._ask_final(now)

    # ------------------------------------------------------------ commands

    def command(self, cmd: Command, now: float) -> None:
        """Turn an agent command into jobs, or fail it (CommandFailed) when not possible now."""
        if self.raw_status is None or self.raw_status == 7:
            self._fail(cmd, now, "pump offline or state unknown")
        elif not self.config.writes_enabled and not isinstance(cmd, ReadTotals | ReadPrices):
            self._fail(cmd, now, "writes disabled for this pump (R13)")
        else:
            blocks = self._blocks_for(cmd, now)
            if blocks:
                self.jobs.append(Job(blocks, cmd))

    def _blocks_for(self, cmd: Command, now: float) -> tuple[Block, ...]:
        status = self.raw_status
        if isinstance(cmd, Authorize):
            return self._authorize_blocks(cmd, now)
        if isinstance(cmd, Stop):
            return (CdCommand(Dcc.STOP),)
        if isinstance(cmd, Suspend | Resume):
            wanted, dcc = (4, Dcc.SUSPEND) if isinstance(cmd, Suspend) else (8, Dcc.RESUME)
            if status != wanted:
                self._fail(cmd, now, f"not possible in state {self.state_name()}")
                return ()
            return (CdCommand(dcc),)
        if isinstance(cmd, ClearTransaction):
            if status in _END and (self._finished or self._programming):
                return (CdCommand(Dcc.RESET),)
            if status not in _END:
                self._fail(cmd, now, f"no finished fill to clear (state {self.state_name()})")
            else:
                self._fail(cmd, now, "final figures not read yet")
            return ()
        if isinstance(cmd, SetPrices):
            return self._price_blocks(cmd, now)
        if isinstance(cmd, ReadPrices):
            return (CdCommand(Dcc.RETURN_PRICES),)
        if isinstance(cmd, ReadTotals):
            nozzles = self.config.nozzles if cmd.nozzle is None else (cmd.nozzle,)
            return tuple(CdTotalsRequest(n) for n in nozzles)
        self._fail(cmd, now, f"unsupported command {type(cmd).__name__}")
        return ()

    def _authorize_blocks(self, cmd: Authorize, now: float) -> tuple[Block, ...]:
        if self.raw_status != 1:
            self._fail(cmd, now, f"pump not ready for authorization (state {self.state_name()})")
            return ()
        if cmd.preset_volume_ml is not None and cmd.preset_amount_fen is not None:
            self._fail(cmd, now, "at most one preset")
            return ()
        nozzles = cmd.nozzles or self.config.nozzles
        if not set(nozzles) <= set(self.config.nozzles):
            self._fail(cmd, now, f"unknown nozzle in {nozzles}")
            return ()
        dec = self.config.decimals
        blocks: list[Block] = [CdAllowedNozzles(tuple(nozzles))]
        if cmd.preset_volume_ml is not None:
            blocks.append(CdPresetVolume(dec.raw_volume(cmd.preset_volume_ml)))
        if cmd.preset_amount_fen is not None:
            blocks.append(CdPresetAmount(dec.raw_amount(cmd.preset_amount_fen)))
        blocks.append(CdCommand(Dcc.AUTHORIZE))
        return tuple(blocks)

    def _price_blocks(self, cmd: SetPrices, now: float) -> tuple[Block, ...]:
        prices = dict(cmd.prices_fen)
        nozzles = sorted(self.config.nozzles)
        if sorted(prices) != nozzles or nozzles != list(range(1, len(nozzles) + 1)):
            self._fail(cmd, now, f"prices must cover exactly nozzles 1..{len(nozzles)}")
            return ()
        if self.raw_status == 0:
            self._programming = True
        return (CdPrices(tuple(self.config.decimals.raw_price(prices[n]) for n in nozzles)),)

    # ------------------------------------------------------------ status & sale tracking

    def state_name(self) -> str:
        return "unknown" if self.raw_status is None else _STATE.get(self.raw_status, PumpState.STOPPED).value

    def _on_status(self, status: int, fill: DcFilling | None, now: float) -> None:
        prev = self.raw_status
        self.raw_status = status
        if status != 1:
            self._confirm = None
        if status in _IN_SALE and prev not in _IN_SALE:
            self._sale_open = True
            self._progress = None
        if status in _END:
            if self._programming:  # 0 -> 5 after the first prices: not a sale
                if prev != status:
                    self.jobs.append(Job((CdCommand(Dcc.RESET),), purpose="program"))
                return
            if self._finish is None and not self._finished:
                final = None if fill is None else (fill.volume, fill.amount)
                self._finish = _Finish(self.nozzle, status == 6, fill=final)
                self._ask_final(now)
            return
        self._programming = self._programming and status == 0
        if self._finish is not None:  # left 5/6 before the read finished: report what we know
            self._emit_finished(now, force=True)
        self._finished = False
        if status in (1, 0) and prev in (4, 8) and self._sale_open:
            self._finish = _Finish(self.nozzle, False, fill=self._progress)
            self._emit_finished(now, force=True)  # R8: an end never seen
        if status not in _IN_SALE:
            self._sale_open = False

    def _on_filling(self, block: DcFilling, now: float) -> None:
        fill = (block.volume, block.amount)
        if self._finish is not None and self._finish.fill is None:
            self._finish.fill = fill
            return
        if self.raw_status not in (4, 8):
            return
        if self._progress is not None and fill[0] < self._progress[0]:
            # volume went backwards: a new fill started unseen (R8) -> flush the old one
            self._finish = _Finish(self.nozzle, False, fill=self._progress)
            self._emit_finished(now, force=True)
            self._finished, self._sale_open = False, True
        if fill != self._progress:
            self._progress = fill
            dec = self.config.decimals
            price = None if self.price_raw is None else dec.price_fen(self.price_raw)
            self.events.append(
                FillProgress(
                    self.config.pump_id,
                    now,
                    self.nozzle,
                    dec.volume_ml(fill[0]),
                    dec.amount_fen(fill[1]),
                    price,
                )
            )

    def _on_totals(self, block: DcTotals, now: float) -> None:
        dec = self.config.decimals
        self.events.append(
            TotalsRead(
                self.config.pump_id,
                now,
                block.counter,
                dec.volume_ml(block.volume),
                dec.amount_fen(block.amount),
            )
        )
        fin = self._finish
        if fin is not None and fin.nozzle == block.counter:
            fin.totals = (block.volume, block.amount)

    def _ask_final(self, now: float) -> None:
        fin = self._finish
        assert fin is not None
        blocks: list[Block] = []
        if fin.fill is None:
            blocks.append(CdCommand(Dcc.RETURN_FILLING_INFORMATION))
        if fin.nozzle is not None and fin.totals is None:
            blocks.append(CdTotalsRequest(fin.nozzle))
        fin.tries += 1
        fin.asked_at = None  # set when acknowledged
        if blocks:
            self.jobs.append(Job(tuple(blocks), purpose="read"))

    def _try_finish(self, now: float) -> None:
        fin = self._finish
        if fin is not None and fin.fill is not None and (fin.totals is not None or fin.nozzle is None):
            self._emit_finished(now)

    def _emit_finished(self, now: float, force: bool = False) -> None:
        fin = self._finish
        assert fin is not None
        self._finish = None
        self._finished = True
        self._sale_open = False
        fill = fin.fill or self._progress
        if fill is None:
            if not force:  # pragma: no cover - guarded by _try_finish
                return
            fill = (0, 0)
        dec = self.config.decimals
        price = self.price_raw
        self.events.append(
            FillFinished(
                self.config.pump_id,
                now,
                fin.nozzle,
                dec.volume_ml(fill[0]),
                dec.amount_fen(fill[1]),
                None if price is None else dec.price_fen(price),
                fill[0],
                fill[1],
                preset_reached=fin.preset_reached,
                volume_total_ml=None if fin.totals is None else dec.volume_ml(fin.totals[0]),
                amount_total_fen=None if fin.totals is None else dec.amount_fen(fin.totals[1]),
            )
        )

    def _emit_status(self, now: float, state: PumpState | None = None) -> None:
        status = self.raw_status
        if state is None:
            if status is None:
                return
            state = _STATE.get(status, PumpState.STOPPED)
            if status == 5 and self._programming:
                state = PumpState.CLOSED
            elif state is PumpState.IDLE and self.nozzle_out:
                state = PumpState.CALLING
            elif state is PumpState.AUTHORIZED and self.nozzle_out:
                state = PumpState.STARTED
        shown = self.nozzle if (self.nozzle_out or status in (*_IN_SALE, *_END)) else None
        key = (state, shown, self.nozzle_out, status)
        if key != self._reported:
            self._reported, self._reported_state = key, state
            self.events.append(PumpStatus(self.config.pump_id, now, state, shown, self.nozzle_out, status))

    def _fail(self, cmd: Command, now: float, reason: str) -> None:
        self.events.append(CommandFailed(self.config.pump_id, now, cmd, reason))
