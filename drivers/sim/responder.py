"""Pump-side DART link layer for one simulated address (sans-IO, uses the real codec).

Rules (PROTOCOLS.md 1.5 and 5):

* POLL -> the unacknowledged frame again (same TX#) if the master has not ACKed it; else a new DATA
  frame if there is anything to say (status change, requested data, fill progress while fuelling);
  else EOT.
* DATA with the TX# last executed -> ACK, not executed again (duplicate).
* DATA with a TX# that is neither the next one (after F: 0 or 1), nor 0 (master restart), nor any
  value after a power cycle -> NAK, not executed.
* otherwise execute every transaction in order, then ACK.
* ACK with our TX# -> our frame is delivered, TX# + 1 (wrap to ``tx_wrap_to``).

A frame with a bad CRC never reaches this class (the line drops it: no answer).
"""

from __future__ import annotations

from drivers.dart.blocks import (
    Block,
    CdAllowedNozzles,
    CdCommand,
    CdPresetAmount,
    CdPresetVolume,
    CdPrices,
    CdResume,
    CdSuspend,
    CdTotalsRequest,
    DcAlarm,
    Dcc,
    DcFilling,
    DcIdentity,
    DcNozzle,
    DcPrices,
    DcStatus,
    DcTotals,
)
from drivers.dart.codec import Frame, Kind, encode
from drivers.sim.pump import SimPump

__all__ = ["Responder"]


class Responder:
    """Answers the master's frames for one :class:`SimPump`."""

    def __init__(self, pump: SimPump, tx_wrap_to: int = 1) -> None:
        self.pump = pump
        self.tx_wrap_to = tx_wrap_to
        self.executed = 0  #: DATA blocks executed (duplicates and NAKed ones excluded)
        self.duplicates = 0
        self.naks = 0
        self.reset_link()

    def reset_link(self) -> None:
        """Power cycle / protocol restart: forget TX# and link state (not the pump state)."""
        self.tx = 0
        self.last_rx: int | None = None
        self.unacked: bytes | None = None
        self.pending: list[Block] = []
        self.force_report = True
        self._sent_report: tuple[int, int, bool, int] | None = None
        self._sent_fill: tuple[int, int] | None = None

    def raise_alarm(self, code: int) -> None:
        self.pending.append(DcAlarm(code))

    def handle(self, frame: Frame, now: float) -> bytes | None:
        """One master frame -> our reply bytes (None = no reply)."""
        if frame.kind is Kind.POLL:
            return self._poll(now)
        if frame.kind is Kind.ACK:
            if self.unacked is not None and frame.tx == self.tx:
                self.unacked = None
                self.tx = self.tx_wrap_to if self.tx >= 0xF else self.tx + 1
            return None
        if frame.kind is not Kind.DATA:
            return None
        ack = encode(Frame(self.pump.address, Kind.ACK, frame.tx))
        if frame.tx == self.last_rx:
            self.duplicates += 1
            return ack
        if not self._tx_ok(frame.tx):
            self.naks += 1
            return encode(Frame(self.pump.address, Kind.NAK, frame.tx))
        self.last_rx = frame.tx
        self.executed += 1
        self._execute(frame.blocks, now)
        return ack

    def _tx_ok(self, tx: int) -> bool:
        last = self.last_rx
        if last is None or tx == 0:
            return True
        return tx == last + 1 or (last == 0xF and tx in (0, 1))

    def _execute(self, blocks: tuple[Block, ...], now: float) -> None:
        pump = self.pump
        allowed: tuple[int, ...] = ()
        volume: int | None = None
        amount: int | None = None
        for block in blocks:
            if isinstance(block, CdAllowedNozzles):
                allowed = block.nozzles
            elif isinstance(block, CdPresetVolume):
                volume = block.volume
            elif isinstance(block, CdPresetAmount):
                amount = block.amount
            elif isinstance(block, CdPrices):
                pump.set_prices(block.prices)
                self.force_report = True
            elif isinstance(block, CdSuspend):
                pump.suspend(now)
            elif isinstance(block, CdResume):
                pump.resume(now)
            elif isinstance(block, CdTotalsRequest):
                tot = pump.totals.get(block.counter)
                if tot is not None:
                    self.pending.append(DcTotals(block.counter, tot.volume, tot.amount))
            elif isinstance(block, CdCommand):
                self._command(block.dcc, now, allowed, volume, amount)

    def _command(self, dcc: int, now: float, allowed: tuple[int, ...], vol: int | None, amo: int | None) -> None:
        pump = self.pump
        if dcc == Dcc.RETURN_STATUS:
            self.force_report = True
        elif dcc == Dcc.RETURN_FILLING_INFORMATION:
            pump.advance(now)
            self.pending.append(DcFilling(pump.fill_volume, pump.fill_amount))
        elif dcc == Dcc.RETURN_PRICES:
            self.pending.append(DcPrices(tuple(pump.prices.get(n, 0) for n in pump.nozzles)))
        elif dcc == Dcc.RETURN_PUMP_IDENTITY:
            self.pending.append(DcIdentity(pump.address))
        elif dcc == Dcc.RESET:
            pump.reset(now)
        elif dcc == Dcc.AUTHORIZE:
            pump.authorize(now, allowed, vol, amo)
        elif dcc == Dcc.STOP:
            pump.stop(now)
        elif dcc == Dcc.SUSPEND:
            pump.suspend(now)
        elif dcc == Dcc.RESUME:
            pump.resume(now)
        elif dcc == Dcc.SWITCH_OFF:
            pump.status = 7

    def _poll(self, now: float) -> bytes:
        if self.unacked is not None:
            return self.unacked
        pump = self.pump
        pump.advance(now)
        blocks: list[Block] = []
        report = (pump.status, pump.nozzle, pump.nozzle_out, pump.prices.get(pump.nozzle, 0))
        fill = (pump.fill_volume, pump.fill_amount)
        with_fill = pump.status in (4, 5, 6, 8)
        if self.force_report or report != self._sent_report:
            blocks += [DcStatus(report[0]), DcNozzle(report[3], report[1], report[2])]
            if with_fill:
                blocks.append(DcFilling(*fill))
                self._sent_fill = fill
        elif with_fill and fill != self._sent_fill:
            blocks.append(DcFilling(*fill))
            self._sent_fill = fill
        self.force_report = False
        self._sent_report = report
        blocks += self.pending
        self.pending = []
        if not blocks:
            return encode(Frame(pump.address, Kind.EOT, self.tx))
        self.unacked = encode(Frame(pump.address, Kind.DATA, self.tx, tuple(blocks)))
        return self.unacked
