"""Pump side of Gilbarco two-wire for one simulated pump (sans-IO, uses the real codec).

Wraps a :class:`~drivers.sim.pump.SimPump` (whose own state machine uses DART codes) and answers the
master's command words.  Status nibble from the pump state::

    SimPump 0/1, nozzle in -> 6 OFF        SimPump 2 -> 8 AUTHORIZED     4/8 -> 9 BUSY
    SimPump 0/1, nozzle out -> 7 CALL      SimPump 6 -> A PEOT           5 -> B FEOT, C after 3p
    one status after a bad data block -> 0 DATA ERROR

Behaviour (the parts marked unverified in PROTOCOLS.md are choices of this simulator):

* the end of a sale (A/B/C) is held, with the sale readable by ``4p``, until the nozzle is lifted
  again (-> 7 CALL) or the next ``1p``; there is no clear command;
* ``1p`` authorizes from 6/7/A/B/C with the preset last received in CALL (if any); ``3p`` stops;
* ``2p`` -> ``Dp`` and the next block is a price change (any state; a zeroized pump is then
  ready) or a preset (taken only in 7 CALL, otherwise dropped, PROTOCOLS.md 2.6); a block failing
  its LRC or layout is dropped and the next status is ``0``;
* ``4p`` current/last sale, ``5p`` totals of every hose with PPU levels 1 and 2 (= the price),
  ``6p`` real-time money, ``7p`` hose + real-time volume.
"""

from __future__ import annotations

from drivers.gilbarco.codec import (
    BlockError,
    Cmd,
    Preset,
    Status,
    parse_preset,
    parse_price,
    pump_nibble,
)
from drivers.gilbarco.replies import (
    HoseTotals,
    Money,
    Totals,
    Transaction,
    Volume,
)
from drivers.sim.pump import SimPump

__all__ = ["GilbarcoResponder"]


class GilbarcoResponder:
    """Answers the master's words for one :class:`SimPump` (``pump.address`` = pump number 1-16)."""

    def __init__(self, pump: SimPump, ppu_digits: int = 4) -> None:
        self.pump = pump
        self.ppu_digits = ppu_digits
        self.executed = 0  #: commands and blocks executed
        self.blocks_rejected = 0
        self.reset_link()

    def reset_link(self) -> None:
        """Power cycle: forget a pending preset and the hold of the last sale's end."""
        self.preset: Preset | None = None
        self.data_error = False
        self._stopped = False

    def raise_alarm(self, code: int) -> None:
        """Gilbarco two-wire has no alarm report: nothing to queue."""

    # ------------------------------------------------------------ status

    def state(self, now: float) -> Status:
        """The pump's Gilbarco state now (applies the re-lift after a held sale)."""
        pump = self.pump
        pump.advance(now)
        if pump.status in (5, 6) and pump.nozzle_out and pump.lifts > pump.lifts_at_end:
            pump.reset(now)  # lifted again after the sale: back to CALL
        if pump.status not in (5, 6):
            self._stopped = False
        status = pump.status
        if status in (0, 1, 7):
            return Status.CALL if pump.nozzle_out else Status.OFF
        if status == 2:
            return Status.AUTHORIZED
        if status in (4, 8):
            return Status.BUSY
        if status == 6:
            return Status.PEOT
        return Status.STOPPED if self._stopped else Status.FEOT

    def _status_word(self, now: float) -> int:
        if self.data_error:
            self.data_error = False
            return int(Status.DATA_ERROR) << 4 | pump_nibble(self.pump.address)
        return int(self.state(now)) << 4 | pump_nibble(self.pump.address)

    # ------------------------------------------------------------ master words

    def command(self, cmd: int, now: float) -> bytes | None:
        """One command word (high nibble ``cmd``) for this pump -> reply words or None."""
        pump = self.pump
        if cmd == Cmd.STATUS:
            return bytes((self._status_word(now),))
        self.executed += 1
        state = self.state(now)
        if cmd == Cmd.AUTHORIZE:
            self._authorize(state, now)
            return None
        if cmd == Cmd.DATA:
            return bytes((int(Status.SEND_DATA) << 4 | pump_nibble(pump.address),))
        if cmd == Cmd.STOP:
            self.stop(now)
            return None
        if cmd == Cmd.TRANSACTION:
            sale = Transaction(
                pump.fill_nozzle, pump.fill_price, pump.fill_volume, pump.fill_amount, ppu_digits=self.ppu_digits
            )
            return sale.encode()
        if cmd == Cmd.TOTALS:
            hoses = tuple(
                HoseTotals(n, t.volume, t.amount, pump.prices.get(n, 0), pump.prices.get(n, 0))
                for n, t in ((n, pump.totals[n]) for n in pump.nozzles)
            )
            return Totals(hoses, extended=self.ppu_digits == 6).encode()
        if cmd == Cmd.MONEY:
            return Money(pump.fill_amount).encode()
        if cmd == Cmd.VOLUME:
            return Volume(pump.fill_nozzle, pump.fill_volume).encode()
        self.executed -= 1
        return None

    def stop(self, now: float) -> None:
        pump = self.pump
        before = pump.status
        pump.stop(now)
        self.preset = None
        if before in (4, 8) or (before == 2 and pump.status == 5):
            self._stopped = True

    def _authorize(self, state: Status, now: float) -> None:
        pump = self.pump
        if state not in (Status.OFF, Status.CALL, Status.PEOT, Status.FEOT, Status.STOPPED):
            return
        if pump.status in (5, 6):
            pump.reset(now)
        if pump.status == 0:
            pump.status = 1
        preset, self.preset = self.preset, None
        nozzles: tuple[int, ...] = ()
        volume = amount = None
        if preset is not None:
            nozzles = () if preset.hose is None else (preset.hose,)
            amount = preset.value if preset.money else None
            volume = None if preset.money else preset.value
        self._stopped = False
        pump.authorize(now, nozzles, volume, amount)

    def block(self, words: bytes, now: float) -> None:
        """The master's data block after ``Dp``."""
        pump = self.pump
        try:
            if words[1:2] == b"\xe3" and words[2:3] in (b"\xf1", b"\xf2"):
                preset = parse_preset(words)
                if self.state(now) is Status.CALL:
                    self.preset = preset
            else:
                price = parse_price(words)
                if price.hose in pump.nozzles:
                    pump.prices[price.hose] = price.ppu
                if pump.status == 0:
                    pump.status = 1
        except BlockError:
            self.blocks_rejected += 1
            self.data_error = True
            return
        self.executed += 1
