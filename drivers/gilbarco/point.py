"""Gilbarco fuelling point: status nibble to vendor-neutral state, sale tracking, commands (sans-IO).

One :class:`GilbarcoPoint` per pump number.  It sees only *confirmed* status words (the bus applies a
changed status after reading it twice in a row: a status word has no check) and the parsed replies
of its own jobs.  Time is passed in.  Design rules:

1. **State** (PROTOCOLS.md 3.1): 6 IDLE, 7 CALLING, 8 AUTHORIZED, 9 FUELLING, A/B/C
   END_OF_TRANSACTION (C = stopped mid-fill: the sale is there and payable).  ``D`` (waiting for
   data) is transient and keeps the previous state; ``0`` (data error) is a bad reply for the bus.
2. **One FillFinished per sale** (R8): entering A/B/C after 8/9, or leaving 9 for 6/7 with the end
   unseen, starts a *finish*: the sale (``4p``, LRC-checked, retried) and the hose's totals
   (``5p``) are read, then FillFinished is emitted once.  No figure comes from the unverified
   real-time replies (``6p``/``7p``), which only feed FillProgress.
3. **Persist before clear, without a clear command**: Gilbarco has no public clear command, and the
   pump keeps its last sale (status A/B/C, ``4p``) until the next authorization.  Until the agent
   sends ``ClearTransaction`` the point reports END_OF_TRANSACTION and refuses ``Authorize``;
   ``ClearTransaction`` only acknowledges locally (nothing is sent) and the point reports IDLE /
   CALLING again.  The next ``1p`` replaces the sale in the pump.  After a reconnection or a driver
   restart a pump still in A/B/C has its sale read and reported again: the agent dedups it on
   (pump, nozzle, end volume totalizer).
4. **Presets only in CALL** (2.6): an authorization with a preset while the nozzle is down is *armed*:
   the point reports AUTHORIZED (STARTED once the nozzle is up) and, when the pump reports CALL,
   sends ``2p`` + preset block, checks the pump is still in CALL 100 ms later, then ``1p``.  A plain
   authorization is ``1p`` at once.  Either must show 8/9 within ``authorize_confirm_s`` or it is
   failed and a stop (``3p``) is sent.  Suspend/Resume do not exist on Gilbarco: CommandFailed.
5. **Prices** per hose (``2p`` + price block, no reply); after ``price_settle_s`` the prices are read
   back from the totals reply (PPU level 1 per hose) and reported as PricesRead.

Limits: the nozzle of a CALL is unknown until the fill runs (``7p``); a nozzle restriction is only
applied together with a preset (the preset block names one hose).
"""

from __future__ import annotations

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
from drivers.gilbarco.codec import (
    Cmd,
    Preset,
    PriceChange,
    Status,
    command_byte,
    encode_preset,
    encode_price,
)
from drivers.gilbarco.link import Job, Reply, Step
from drivers.gilbarco.replies import (
    Money,
    Totals,
    Transaction,
    Volume,
)

__all__ = ["GilbarcoPoint", "Timing"]

_IN_SALE = (Status.AUTHORIZED, Status.BUSY)
_END = (Status.PEOT, Status.FEOT, Status.STOPPED)
_STATE = {
    Status.OFF: PumpState.IDLE,
    Status.CALL: PumpState.CALLING,
    Status.AUTHORIZED: PumpState.AUTHORIZED,
    Status.BUSY: PumpState.FUELLING,
}


@dataclass(frozen=True)
class Timing:
    """Protocol timers and retry bounds (seconds / counts)."""

    poll_retries: int = 1  #: immediate re-polls of a silent pump before moving on
    max_bad_replies: int = 3  #: consecutive bad replies before an exchange is declared failed (2.3)
    offline_poll_interval_s: float = 1.0
    command_gap_s: float = 0.01  #: line quiet time after a word without reply
    preset_wait_s: float = 0.1  #: preset block -> 1p (2.6)
    authorize_confirm_s: float = 3.0
    progress_interval_s: float = 0.25  #: real-time money/volume while delivering
    price_settle_s: float = 1.0  #: price block -> read-back (2.6)
    read_retry_s: float = 1.0
    read_tries: int = 3
    ppu_digits: int = 4  #: 4-digit PPU mode (6 = extended mode)


@dataclass
class _Finish:
    preset_reached: bool
    probe: Authorize | None = None  #: reading after an unconfirmed authorization: a new sale or not?
    sale: Transaction | None = None
    totals: tuple[int, int] | None = None
    retry_at: float | None = None
    tries: int = 0


@dataclass
class GilbarcoPoint:
    """Application state of one Gilbarco pump (see module docstring)."""

    config: PumpConfig
    timing: Timing = field(default_factory=Timing)
    events: list[DriverEvent] = field(default_factory=list)
    jobs: list[Job] = field(default_factory=list)
    raw: Status | None = None
    hose: int | None = None
    _reported: tuple[object, ...] | None = None
    _state: PumpState = PumpState.OFFLINE
    _sale_open: bool = False  #: 8/9 seen for the sale the pump now holds
    _delivered: bool = False  #: 9 seen in that sale
    _finish: _Finish | None = None
    _finished: bool = False  #: FillFinished emitted for the sale the pump holds
    _cleared: bool = False  #: ... and the agent acknowledged it (ClearTransaction)
    _armed: Authorize | None = None
    _preset_busy: bool = False
    _confirm: tuple[Authorize, float] | None = None
    _progress: tuple[int, int] | None = None
    _live_volume: tuple[int, int] | None = None  #: (hose, volume) from the last 7p
    _progress_at: float = 0.0
    _progress_busy: bool = False  #: a progress job is queued or running
    _readback_at: float | None = None
    _price_raw: int | None = None
    _last_key: tuple[object, ...] | None = None  #: (hose, volume, money, totals) of the last sale reported
    _ppu: dict[int, int] = field(default_factory=dict)  #: hose -> PPU level 1 from the last totals

    @property
    def state(self) -> PumpState | None:
        return None if self._reported is None else self._state

    def _word(self, cmd: Cmd) -> bytes:
        return bytes((command_byte(cmd, self.config.address),))

    # ------------------------------------------------------------ bus callbacks

    def on_contact(self, now: float) -> None:
        """First contact or reconnection: distrust everything known before."""
        self.raw, self.hose = None, None
        self._reported = None
        self._sale_open = self._delivered = False
        self._finish, self._finished, self._cleared = None, False, False
        self._armed, self._preset_busy, self._confirm = None, False, None
        self._progress = self._live_volume = None
        self._progress_busy = False
        self._readback_at = None

    def on_offline(self, now: float) -> None:
        self.raw = None
        self._confirm = None
        self._emit_status(now, PumpState.OFFLINE)

    def on_status(self, status: Status, now: float) -> None:
        """A confirmed status word."""
        if status is Status.SEND_DATA:
            return
        prev, self.raw = self.raw, status
        if status in _IN_SALE:
            if prev not in _IN_SALE:
                self._sale_open, self._delivered = True, False
                self._finished = self._cleared = False
                self._progress = self._live_volume = None
                self.hose = None
            self._armed, self._preset_busy, self._confirm = None, False, None
            self._delivered = self._delivered or status is Status.BUSY
        elif status in _END:
            if prev is not None and prev not in _END and self._finish is None:
                self._finished = self._cleared = False  # entering A/B/C always ends a sale (R8)
            if self._finish is None and not self._finished:
                self._armed, self._preset_busy, self._confirm = None, False, None
                self._start_finish(status is Status.PEOT, now)
        elif self._sale_open and self._delivered and self._finish is None and not self._finished:
            self._start_finish(False, now)  # R8: the end of the delivery was never seen
        elif self._sale_open and not self._delivered:
            self._sale_open = False  # authorized, then cancelled without delivery: no sale
        if status is Status.CALL and self._armed is not None and not self._preset_busy:
            self._send_preset(self._armed)
        self._emit_status(now)

    def on_reply(self, job: Job, reply: Transaction | Totals | Money | Volume, now: float) -> None:
        if isinstance(reply, Transaction):
            fin = self._finish
            if fin is not None and job.purpose == "finish":
                fin.sale = reply
                self.hose, self._price_raw = reply.hose, reply.ppu
        elif isinstance(reply, Totals):
            self._on_totals(job, reply, now)
        elif isinstance(reply, Volume):
            self._live_volume = (reply.hose, reply.volume)
        elif self._live_volume is not None and self.raw is Status.BUSY:
            self._on_progress(self._live_volume, reply.money, now)

    def on_done(self, job: Job, now: float) -> None:
        """Every step of ``job`` went out (and every expected reply arrived)."""
        cmd = job.command
        if isinstance(cmd, Authorize):
            self._preset_busy = False
            if self._confirm is None and self.raw not in _IN_SALE:
                self._confirm = (cmd, now + self.timing.authorize_confirm_s)
        elif isinstance(cmd, SetPrices):
            self._readback_at = now + self.timing.price_settle_s
        if job.purpose == "finish":
            self._try_finish(now, force=False)
        elif job.purpose == "progress":
            self._progress_busy, self._progress_at = False, now + self.timing.progress_interval_s

    def on_aborted(self, job: Job, now: float, reason: str, *, failed: bool) -> None:
        """A job was given up; ``failed`` = bad replies / offline / e-stop (else a guard said no)."""
        if job.purpose == "finish" and self._finish is not None:
            self._finish.retry_at = now + self.timing.read_retry_s
        elif job.purpose == "progress":
            self._progress_busy, self._progress_at = False, now + self.timing.progress_interval_s
        if isinstance(job.command, Authorize) and job.command is self._armed and not failed:
            self._preset_busy = False  # nozzle back in before 1p: stay armed, try at the next CALL
            return
        if isinstance(job.command, Authorize) and job.command is self._armed:
            self._armed, self._preset_busy = None, False
            self._emit_status(now)
        if job.command is not None:
            self._fail(job.command, now, reason)

    def on_estop(self, now: float) -> None:
        """Emergency stop: forget armed and unconfirmed authorizations."""
        self._confirm = None
        if self._armed is not None:
            self._fail(self._armed, now, "emergency stop")
            self._armed, self._preset_busy = None, False
            self._emit_status(now)

    def tick(self, now: float) -> None:
        if self._confirm is not None and now >= self._confirm[1]:
            cmd = self._confirm[0]
            self._confirm = None
            self._armed, self._preset_busy = None, False
            if self.raw in _END and self._finish is None:
                # a whole sale may have run between two polls (A -> 8/9 unseen -> A): read it (R8)
                self._finish = _Finish(self.raw is Status.PEOT, probe=cmd)
                self._ask_final()
            else:
                self._unconfirmed(cmd, now)
        fin = self._finish
        if fin is not None and fin.retry_at is not None and now >= fin.retry_at:
            if fin.tries >= self.timing.read_tries:
                self._try_finish(now, force=True)
            else:
                self._ask_final()
        if self.raw is Status.BUSY and now >= self._progress_at and not self._progress_busy:
            self._progress_busy = True
            steps = (Step(self._word(Cmd.VOLUME), Reply.VOLUME), Step(self._word(Cmd.MONEY), Reply.MONEY))
            self.jobs.append(Job(steps, purpose="progress"))
        if self._readback_at is not None and now >= self._readback_at:
            self._readback_at = None
            self.jobs.append(Job((Step(self._word(Cmd.TOTALS), Reply.TOTALS),), purpose="prices"))

    def _unconfirmed(self, cmd: Authorize, now: float) -> None:
        self._fail(cmd, now, "authorization not confirmed by the pump; stop sent")
        self._emit_status(now)
        self.jobs.append(Job((Step(self._word(Cmd.STOP), Reply.NONE),), purpose="command"))

    # ------------------------------------------------------------ commands

    def command(self, cmd: Command, now: float) -> None:
        """Turn an agent command into jobs, or fail it (CommandFailed)."""
        if self.raw is None:
            self._fail(cmd, now, "pump offline or state unknown")
        elif not self.config.writes_enabled and not isinstance(cmd, ReadTotals | ReadPrices):
            self._fail(cmd, now, "writes disabled for this pump (R13)")
        elif isinstance(cmd, Authorize):
            self._authorize(cmd, now)
        elif isinstance(cmd, Stop):
            if self._armed is not None:
                self._armed, self._preset_busy = None, False
                self._emit_status(now)
            self._confirm = None
            self.jobs.append(Job((Step(self._word(Cmd.STOP), Reply.NONE),), cmd))
        elif isinstance(cmd, Suspend | Resume):
            self._fail(cmd, now, "Gilbarco two-wire has no suspend/resume (PROTOCOLS.md 3.3); use stop")
        elif isinstance(cmd, ClearTransaction):
            if self._finished and not self._cleared:
                self._cleared = True  # acknowledged locally: Gilbarco has no clear command
                self._emit_status(now)
            elif self._finish is not None:
                self._fail(cmd, now, "final figures not read yet")
            else:
                self._fail(cmd, now, f"no finished fill to clear (state {self.state_name()})")
        elif isinstance(cmd, SetPrices):
            self._set_prices(cmd, now)
        elif isinstance(cmd, ReadPrices):
            self.jobs.append(Job((Step(self._word(Cmd.TOTALS), Reply.TOTALS),), cmd, "prices"))
        elif isinstance(cmd, ReadTotals):
            self.jobs.append(Job((Step(self._word(Cmd.TOTALS), Reply.TOTALS),), cmd, "totals"))
        else:
            self._fail(cmd, now, f"unsupported command {type(cmd).__name__}")

    def _authorize(self, cmd: Authorize, now: float) -> None:
        ready = self.raw in (Status.OFF, Status.CALL) or (self.raw in _END and self._cleared)
        if (self._finished and not self._cleared) or self._finish is not None:
            self._fail(cmd, now, "the previous sale is not cleared yet")
        elif not ready or self._armed is not None or self._confirm is not None:
            self._fail(cmd, now, f"pump not ready for authorization (state {self.state_name()})")
        elif cmd.preset_volume_ml is not None and cmd.preset_amount_fen is not None:
            self._fail(cmd, now, "at most one preset")
        elif not set(cmd.nozzles) <= set(self.config.nozzles):
            self._fail(cmd, now, f"unknown nozzle in {cmd.nozzles}")
        elif cmd.preset_volume_ml is None and cmd.preset_amount_fen is None:
            self.jobs.append(Job((Step(self._word(Cmd.AUTHORIZE), Reply.NONE),), cmd))
        elif self.raw is Status.CALL:
            self._armed = cmd
            self._send_preset(cmd)
        else:
            self._armed = cmd  # 2.6: a preset is only taken in CALL
            self._emit_status(now)

    def _send_preset(self, cmd: Authorize) -> None:
        dec = self.config.decimals
        if cmd.preset_amount_fen is not None:
            preset = Preset(True, dec.raw_amount(cmd.preset_amount_fen))
        else:
            assert cmd.preset_volume_ml is not None
            preset = Preset(False, dec.raw_volume(cmd.preset_volume_ml))
        if len(cmd.nozzles) == 1:
            preset = Preset(preset.money, preset.value, cmd.nozzles[0])
        steps = (
            Step(self._word(Cmd.DATA), Reply.SEND_DATA),
            Step(encode_preset(preset), Reply.NONE),
            Step(self._word(Cmd.STATUS), Reply.CALL, self.timing.preset_wait_s),
            Step(self._word(Cmd.AUTHORIZE), Reply.NONE),
        )
        self._preset_busy = True
        self.jobs.append(Job(steps, cmd))

    def _set_prices(self, cmd: SetPrices, now: float) -> None:
        prices = dict(cmd.prices_fen)
        if sorted(prices) != sorted(self.config.nozzles):
            self._fail(cmd, now, f"prices must cover exactly nozzles {sorted(self.config.nozzles)}")
            return
        if self.raw in _IN_SALE:
            self._fail(cmd, now, "pump busy: prices change only between sales (R4)")
            return
        steps: list[Step] = []
        for hose in sorted(prices):
            change = PriceChange(hose, self.config.decimals.raw_price(prices[hose]), self.timing.ppu_digits)
            gap = self.timing.command_gap_s if steps else 0.0
            steps += [Step(self._word(Cmd.DATA), Reply.SEND_DATA, gap), Step(encode_price(change), Reply.NONE)]
        self.jobs.append(Job(tuple(steps), cmd))

    # ------------------------------------------------------------ sale tracking

    def state_name(self) -> str:
        return "unknown" if self.raw is None else self.raw.name.lower()

    def _start_finish(self, preset_reached: bool, now: float) -> None:
        self._finish = _Finish(preset_reached)
        self._ask_final()

    def _ask_final(self) -> None:
        fin = self._finish
        assert fin is not None
        fin.tries += 1
        fin.retry_at = None
        steps = (Step(self._word(Cmd.TRANSACTION), Reply.TRANSACTION), Step(self._word(Cmd.TOTALS), Reply.TOTALS))
        self.jobs.append(Job(steps if fin.sale is None else steps[1:], purpose="finish"))

    def _on_totals(self, job: Job, totals: Totals, now: float) -> None:
        dec = self.config.decimals
        fin = self._finish
        by_hose = {h.hose: h for h in totals.hoses}
        for h in totals.hoses:
            self._ppu[h.hose] = h.ppu1
            if h.hose in self.config.nozzles:
                volume_ml, amount_fen = dec.volume_ml(h.volume), dec.amount_fen(h.money)
                self.events.append(TotalsRead(self.config.pump_id, now, h.hose, volume_ml, amount_fen))
        if fin is not None and fin.sale is not None and fin.sale.hose in by_hose:
            h = by_hose[fin.sale.hose]
            fin.totals = (h.volume, h.money)
        if job.purpose == "prices":
            prices = tuple((n, dec.price_fen(by_hose[n].ppu1)) for n in sorted(self.config.nozzles) if n in by_hose)
            self.events.append(PricesRead(self.config.pump_id, now, prices))

    def _on_progress(self, live: tuple[int, int], money: int, now: float) -> None:
        hose, volume = live
        if self._progress is not None and volume < self._progress[0]:
            return  # never backwards within a fill
        if (volume, money) == self._progress:
            return
        self._progress = (volume, money)
        self.hose = hose
        dec = self.config.decimals
        ppu = self._ppu.get(hose)
        price = None if ppu is None else dec.price_fen(ppu)
        self.events.append(
            FillProgress(self.config.pump_id, now, hose, dec.volume_ml(volume), dec.amount_fen(money), price)
        )

    def _try_finish(self, now: float, *, force: bool) -> None:
        fin = self._finish
        if fin is None:
            return
        if not force and (fin.sale is None or fin.totals is None):
            if fin.retry_at is None:
                fin.retry_at = now + self.timing.read_retry_s
            return
        self._finish = None
        sale = fin.sale
        key = None if sale is None else (sale.hose, sale.volume, sale.money, fin.totals)
        if fin.probe is not None and (key is None or key == self._last_key):
            self._finished = self._cleared = True  # the same old sale: the authorization did not take
            self._unconfirmed(fin.probe, now)
            return
        self._last_key = key
        self._finished, self._cleared, self._sale_open = True, False, False
        dec = self.config.decimals
        hose: int | None
        ppu: int | None
        if sale is not None:
            volume, money, hose, ppu = sale.volume, sale.money, sale.hose, sale.ppu
        else:
            volume, money = self._progress or (0, 0)
            hose, ppu = self.hose, self._price_raw
        self.events.append(
            FillFinished(
                self.config.pump_id,
                now,
                hose,
                dec.volume_ml(volume),
                dec.amount_fen(money),
                None if ppu is None else dec.price_fen(ppu),
                volume,
                money,
                preset_reached=fin.preset_reached,
                volume_total_ml=None if fin.totals is None else dec.volume_ml(fin.totals[0]),
                amount_total_fen=None if fin.totals is None else dec.amount_fen(fin.totals[1]),
            )
        )
        self._emit_status(now)

    def _emit_status(self, now: float, state: PumpState | None = None) -> None:
        raw = self.raw
        if state is None:
            if raw is None:
                return
            if self._finish is not None or (self._finished and not self._cleared):
                state = PumpState.END_OF_TRANSACTION
            elif self._armed is not None and raw not in _IN_SALE:
                state = PumpState.STARTED if raw is Status.CALL else PumpState.AUTHORIZED
            elif raw in _END:
                state = PumpState.END_OF_TRANSACTION if not self._finished else PumpState.IDLE
            else:
                state = _STATE.get(raw, PumpState.STOPPED)
        nozzle_out = raw in (Status.CALL, Status.BUSY)
        shown = self.hose if raw in (*_IN_SALE, *_END) or self._finish is not None else None
        key = (state, shown, nozzle_out, raw)
        if key != self._reported:
            self._reported, self._state = key, state
            code = None if raw is None else int(raw)
            self.events.append(PumpStatus(self.config.pump_id, now, state, shown, nozzle_out, code))

    def _fail(self, cmd: Command, now: float, reason: str) -> None:
        self.events.append(CommandFailed(self.config.pump_id, now, cmd, reason))
