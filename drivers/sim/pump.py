"""Simulated fuelling point: the pump's own state machine and fuelling physics (no bytes, no I/O).

Time is passed in (``now`` in seconds).  Status codes are the DART DC1 codes.  Behaviour:

* status 0 until the first complete price set, then 5 ("CLOSED" display), then RESET -> 1
  (PROTOCOLS.md 1.9);
* AUTHORIZE only from 1 -> 2; lifting an allowed nozzle while authorized starts the motor and after
  ``start_delay_s`` product flows (4); the flow rate (litres/s) can be changed at any time, 0 = the
  customer holds the trigger closed;
* a preset by volume stops at exactly that volume; a preset by amount stops at the largest volume
  whose amount ``round(volume * price)`` does not exceed it (so the amount never exceeds the preset
  and is always consistent with the volume) -> status 6;
* hang-up in 2 (after a lift) / 4 / 8 -> 5 and one ledger entry (zero sales included);
  STOP in 4/8 -> 5, in 2 -> 5 if the nozzle was lifted else 1; SUSPEND 4 -> 8, RESUME 8 -> 4;
* totalizers (volume, amount) per nozzle grow with every fill; the last fill stays readable
  (CD1 04) until the next authorization;
* ``power_fail`` ends a running fill at what was dispensed (ledger ``ended_by="power"``).

Quantities are raw wire integers (decimals from ``Decimals``); only the flow integration uses
floats, ledger values are ints.  ``speed`` multiplies the flow rate and divides the start delay.
Not modelled: DC7 parameters, grades per nozzle beyond a price, pressure/pulser faults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from drivers.base import Decimals

__all__ = ["LedgerEntry", "SimPump"]


@dataclass(frozen=True)
class LedgerEntry:
    """Ground truth of one finished fill (raw integers and domain units)."""

    fill_no: int  #: 1, 2, ... per pump
    pump: int
    address: int
    nozzle: int
    volume_raw: int
    amount_raw: int
    price_raw: int
    volume_ml: int
    amount_fen: int
    price_fen: int
    start_volume_total_raw: int
    start_amount_total_raw: int
    end_volume_total_raw: int
    end_amount_total_raw: int
    preset_reached: bool
    ended_by: str  #: "hang", "preset", "stop", "power"


def _pow10(n: int) -> int:
    return int(10**n)


@dataclass
class _Totals:
    volume: int = 0
    amount: int = 0


@dataclass
class SimPump:
    """One simulated fuelling point (one DART address)."""

    number: int
    address: int
    nozzles: tuple[int, ...] = (1,)
    decimals: Decimals = field(default_factory=Decimals)
    flow_l_s: float = 0.6
    speed: float = 1.0
    start_delay_s: float = 0.3
    on_fill: Callable[[LedgerEntry], None] | None = None
    status: int = 0
    nozzle: int = 1  #: selected (last lifted) nozzle
    nozzle_out: bool = False
    prices: dict[int, int] = field(default_factory=dict)
    totals: dict[int, _Totals] = field(default_factory=dict)
    allowed: tuple[int, ...] = ()
    preset_volume: int | None = None
    preset_amount: int | None = None
    fill_volume: int = 0
    fill_amount: int = 0
    fill_price: int = 0
    _exact_volume: float = 0.0
    _limit: int | None = None
    _flow_at: float | None = None  #: when product starts flowing (motor started)
    _lifted_in_sale: bool = False
    _start_totals: tuple[int, int] = (0, 0)
    _last_t: float | None = None
    _fills: int = 0
    #: AUTHORIZE commands executed (tests prove an authorization is never replayed)
    authorizations: int = 0
    #: nozzle lifts so far, and their number when the last fill ended (a later lift is a new customer)
    lifts: int = 0
    lifts_at_end: int = 0
    #: nozzle of the current / last fill (``nozzle`` follows the next lift)
    fill_nozzle: int = 1

    def __post_init__(self) -> None:
        for n in self.nozzles:
            self.totals.setdefault(n, _Totals())
        if self.nozzle not in self.nozzles:
            self.nozzle = self.nozzles[0]

    # ------------------------------------------------------------ physics

    def amount_for(self, volume: int, price: int | None = None) -> int:
        """round-half-up(volume * price) in raw amount units."""
        dec = self.decimals
        p = self.fill_price if price is None else price
        num = volume * p * _pow10(dec.amount)
        den = _pow10(dec.volume + dec.price)
        return (2 * num + den) // (2 * den)

    def _amount_limit(self, amount: int) -> int:
        dec = self.decimals
        price = max(self.fill_price, 1)
        vol = amount * _pow10(dec.volume + dec.price) // (price * _pow10(dec.amount)) + 1
        while vol > 0 and self.amount_for(vol) > amount:
            vol -= 1
        return vol

    def advance(self, now: float) -> None:
        """Integrate the flow up to ``now`` and apply time-driven transitions."""
        last = self._last_t if self._last_t is not None else now
        self._last_t = now
        if self.status == 2 and self._flow_at is not None and now >= self._flow_at:
            self.status = 4
            last = self._flow_at
        if self.status != 4 or now <= last:
            return
        rate = self.flow_l_s * self.speed * 10**self.decimals.volume
        self._exact_volume += rate * (now - last)
        volume = int(self._exact_volume)
        if self._limit is not None and volume >= self._limit:
            volume = self._limit
        self.fill_volume = volume
        self.fill_amount = self.amount_for(volume)
        if self._limit is not None and volume >= self._limit:
            self._end(6, "preset")

    # ------------------------------------------------------------ customer

    def lift(self, nozzle: int, now: float) -> bool:
        self.advance(now)
        if self.nozzle_out or nozzle not in self.nozzles:
            return False
        self.nozzle, self.nozzle_out = nozzle, True
        self.lifts += 1
        if self.status == 2 and (not self.allowed or nozzle in self.allowed):
            self._start_motor(now)
        return True

    def hang(self, now: float) -> bool:
        self.advance(now)
        if not self.nozzle_out:
            return False
        self.nozzle_out = False
        if self.status in (4, 8) or (self.status == 2 and self._lifted_in_sale):
            self._end(5, "hang")
        return True

    def set_flow(self, flow_l_s: float, now: float) -> None:
        self.advance(now)
        self.flow_l_s = max(0.0, flow_l_s)

    # ------------------------------------------------------------ controller

    def set_prices(self, prices: tuple[int, ...]) -> bool:
        """CD5: one price per logical nozzle 1..N; incomplete sets are ignored."""
        if len(prices) < len(self.nozzles):
            return False
        for n in self.nozzles:
            self.prices[n] = prices[n - 1] if n <= len(prices) else self.prices.get(n, 0)
        if self.status == 0:
            self.status = 5
        return True

    def authorize(self, now: float, nozzles: tuple[int, ...], volume: int | None, amount: int | None) -> bool:
        self.advance(now)
        if self.status != 1:
            return False
        self.allowed, self.preset_volume, self.preset_amount = nozzles, volume, amount
        self.authorizations += 1
        self.fill_volume = self.fill_amount = 0
        self._exact_volume = 0.0
        self._lifted_in_sale = False
        self.status = 2
        if self.nozzle_out and (not nozzles or self.nozzle in nozzles):
            self._start_motor(now)
        return True

    def reset(self, now: float) -> bool:
        self.advance(now)
        if self.status not in (5, 6):
            return False
        self.status = 1
        return True

    def stop(self, now: float) -> None:
        self.advance(now)
        if self.status in (4, 8) or (self.status == 2 and self._lifted_in_sale):
            self._end(5, "stop")
        elif self.status == 2:
            self.status = 1

    def suspend(self, now: float) -> None:
        self.advance(now)
        if self.status == 4:
            self.status = 8

    def resume(self, now: float) -> None:
        self.advance(now)
        if self.status == 8:
            self.status = 4

    def power_fail(self, now: float) -> None:
        """Power lost: a running fill ends where it is."""
        self.advance(now)
        if self.status in (2, 4, 8) and self._lifted_in_sale:
            self._end(5, "power")
        elif self.status == 2:
            self.status = 1
        self._last_t = None

    # ------------------------------------------------------------ internals

    def _start_motor(self, now: float) -> None:
        self._lifted_in_sale = True
        self.fill_nozzle = self.nozzle
        self.fill_price = self.prices.get(self.nozzle, 0)
        tot = self.totals[self.nozzle]
        self._start_totals = (tot.volume, tot.amount)
        self._flow_at = now + self.start_delay_s / max(self.speed, 1e-9)
        self._limit = self.preset_volume
        if self.preset_amount is not None:
            by_amount = self._amount_limit(self.preset_amount)
            self._limit = by_amount if self._limit is None else min(self._limit, by_amount)

    def _end(self, status: int, how: str) -> None:
        self.status = status
        self.lifts_at_end = self.lifts
        self._flow_at = None
        tot = self.totals[self.nozzle]
        tot.volume += self.fill_volume
        tot.amount += self.fill_amount
        dec = self.decimals
        self._fills += 1
        entry = LedgerEntry(
            fill_no=self._fills,
            pump=self.number,
            address=self.address,
            nozzle=self.nozzle,
            volume_raw=self.fill_volume,
            amount_raw=self.fill_amount,
            price_raw=self.fill_price,
            volume_ml=dec.volume_ml(self.fill_volume),
            amount_fen=dec.amount_fen(self.fill_amount),
            price_fen=dec.price_fen(self.fill_price),
            start_volume_total_raw=self._start_totals[0],
            start_amount_total_raw=self._start_totals[1],
            end_volume_total_raw=tot.volume,
            end_amount_total_raw=tot.amount,
            preset_reached=status == 6,
            ended_by=how,
        )
        self._lifted_in_sale = False
        if self.on_fill is not None:
            self.on_fill(entry)
