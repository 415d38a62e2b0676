"""Vendor-neutral pump driver API: states, commands, events, errors.

Everything above ``drivers/`` (the agent's forecourt controller) talks to pumps
only through the types in this module.  Concrete protocols (``drivers.dart``,
``drivers.gilbarco``) live in their own packages and are chosen by name
through ``drivers.registry``.

Units: the domain works in integer millilitres, fen and fen per litre.  A
driver converts the pump's raw wire integers with the decimal positions from
configuration (``Decimals``) and also passes the raw values through, so that
nothing is lost when a site's decimals are configured wrongly.

Error tree::

    DriverError
     ├── ConfigError          bad line/pump settings (unknown protocol, bad address, parity)
     ├── LineError            the serial port cannot be opened / is gone
     └── CommandRejected      a command is not allowed in the pump's current state

A garbled pump reply is *never* an exception: it becomes a ``LinkFault`` event.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "Authorize",
    "ClearTransaction",
    "Command",
    "CommandFailed",
    "CommandRejected",
    "ConfigError",
    "Decimals",
    "DriverError",
    "DriverEvent",
    "EmergencyStop",
    "FillFinished",
    "FillProgress",
    "LineConfig",
    "LineDriver",
    "LineError",
    "LinkFault",
    "PricesRead",
    "PumpAlarm",
    "PumpConfig",
    "PumpState",
    "PumpStatus",
    "ReadPrices",
    "ReadTotals",
    "Resume",
    "SetPrices",
    "Stop",
    "Suspend",
    "TotalsRead",
]


class DriverError(Exception):
    """Root of every error raised by a pump driver."""


class ConfigError(DriverError):
    """A line or pump setting is invalid (unknown protocol, address out of range, ...)."""


class LineError(DriverError):
    """The serial line cannot be opened or has gone away."""


class CommandRejected(DriverError):
    """A command is not allowed now (pump offline, wrong state, unknown pump)."""


class PumpState(enum.Enum):
    """Vendor-neutral fuelling point state (PROTOCOLS.md section 3.1)."""

    #: No answer for N polls, or the pump reports switched off.
    OFFLINE = "offline"
    #: Not programmed (DART 0) or closed by the site.
    CLOSED = "closed"
    #: Ready, nozzle in its holster.
    IDLE = "idle"
    #: Nozzle lifted, not authorized: waiting for the cashier or a prepay.
    CALLING = "calling"
    #: Authorized, nozzle still in.
    AUTHORIZED = "authorized"
    #: Authorized and nozzle lifted, no flow yet.
    STARTED = "started"
    #: Product is flowing.
    FUELLING = "fuelling"
    #: Fuelling suspended by the controller.
    SUSPENDED = "suspended"
    #: Fill finished (normal or preset reached); the sale is payable.
    END_OF_TRANSACTION = "end_of_transaction"
    #: Stopped by command or alarm; needs a fresh authorization.
    STOPPED = "stopped"


@dataclass(frozen=True)
class Decimals:
    """Decimal positions of the pump's wire integers (DPVOL, DPAMO, DPUNP)."""

    volume: int = 2  #: raw volume 1234 with 2 decimals = 12.34 L
    amount: int = 2  #: raw amount 1234 with 2 decimals = 12.34 yuan
    price: int = 2  #: raw price 789 with 2 decimals = 7.89 yuan/L

    def volume_ml(self, raw: int) -> int:
        return _scale(raw, self.volume, 3)

    def amount_fen(self, raw: int) -> int:
        return _scale(raw, self.amount, 2)

    def price_fen(self, raw: int) -> int:
        return _scale(raw, self.price, 2)

    def raw_volume(self, volume_ml: int) -> int:
        return _scale(volume_ml, 3, self.volume)

    def raw_amount(self, amount_fen: int) -> int:
        return _scale(amount_fen, 2, self.amount)

    def raw_price(self, price_fen: int) -> int:
        return _scale(price_fen, 2, self.price)


def _scale(value: int, from_dec: int, to_dec: int) -> int:
    """Move an integer between decimal positions; truncates toward zero when narrowing."""
    if to_dec >= from_dec:
        return value * int(10 ** (to_dec - from_dec))
    return value // int(10 ** (from_dec - to_dec))


@dataclass(frozen=True)
class PumpConfig:
    """One fuelling point on a line."""

    pump_id: int  #: station-wide pump number shown to people ("3号机")
    address: int  #: bus address (DART 0x50-0x6F, Gilbarco pump number 1-16)
    nozzles: tuple[int, ...] = (1,)  #: logical nozzle numbers on this point
    decimals: Decimals = field(default_factory=Decimals)
    #: R13: a newly commissioned pump only listens until writes are enabled.
    writes_enabled: bool = True
    #: DART TX# wrap: after 0xF comes 1 (spec) or 0 (seen in captures).
    tx_wrap_to: int = 1


@dataclass(frozen=True)
class LineConfig:
    """One serial line (one RS-485 bus) and the pumps on it."""

    name: str
    protocol: str  #: "dart" or "gilbarco"
    url: str  #: a device path, socket://host:port or a PTY path
    pumps: tuple[PumpConfig, ...]
    baudrate: int = 9600  #: DART 9600 (8O1); Gilbarco 5787 (8E1)
    response_timeout_s: float = 0.1
    max_consecutive_timeouts: int = 5


# ---------------------------------------------------------------- commands


@dataclass(frozen=True)
class Command:
    """Base of every command sent to a pump.  Don't subclass outside this module."""

    pump_id: int


@dataclass(frozen=True)
class Authorize(Command):
    """Authorize a fill; at most one of the presets; None for both = full tank."""

    nozzles: tuple[int, ...] = ()  #: allowed nozzles; empty = all
    preset_volume_ml: int | None = None
    preset_amount_fen: int | None = None


@dataclass(frozen=True)
class Stop(Command):
    """Stop the current fill (a stopped fill needs a fresh authorization)."""


@dataclass(frozen=True)
class Suspend(Command):
    """Suspend fuelling (resume continues the same fill)."""


@dataclass(frozen=True)
class Resume(Command):
    """Resume a suspended fill."""


@dataclass(frozen=True)
class ClearTransaction(Command):
    """Release the pump after its finished fill has been persisted (DART CD1 RESET)."""


@dataclass(frozen=True)
class SetPrices(Command):
    """New unit price per nozzle, fen/L; must cover every configured nozzle."""

    prices_fen: tuple[tuple[int, int], ...] = ()  #: ((nozzle, fen_per_litre), ...)


@dataclass(frozen=True)
class ReadTotals(Command):
    """Ask for the totalizers of one nozzle (or all when nozzle is None)."""

    nozzle: int | None = None


@dataclass(frozen=True)
class ReadPrices(Command):
    """Ask the pump for the prices it currently uses (read-back)."""


@dataclass(frozen=True)
class EmergencyStop(Command):
    """Stop now; pump_id 0 means every pump on the line.  Bypasses every queue."""


# ---------------------------------------------------------------- events


@dataclass(frozen=True)
class DriverEvent:
    """Base of every event a driver reports.  ``at`` is time.monotonic() of receipt."""

    pump_id: int
    at: float


@dataclass(frozen=True)
class PumpStatus(DriverEvent):
    """State changed (or first known, or back online)."""

    state: PumpState
    nozzle: int | None = None  #: nozzle lifted / selected, if known
    nozzle_out: bool = False
    raw_status: int | None = None  #: the protocol's own status code


@dataclass(frozen=True)
class FillProgress(DriverEvent):
    """Live volume/amount of the fill in progress (monotonic within a fill)."""

    nozzle: int | None
    volume_ml: int
    amount_fen: int
    price_fen: int | None = None


@dataclass(frozen=True)
class FillFinished(DriverEvent):
    """The pump reports end of transaction with its final figures.

    The pump is *not* released: the controller persists the sale, then sends
    ``ClearTransaction``.
    """

    nozzle: int | None
    volume_ml: int
    amount_fen: int
    price_fen: int | None
    volume_raw: int
    amount_raw: int
    preset_reached: bool = False
    #: Totalizers of that nozzle read after the end of the fill (R7), if the pump gave them.
    volume_total_ml: int | None = None
    amount_total_fen: int | None = None


@dataclass(frozen=True)
class TotalsRead(DriverEvent):
    """Totalizer counters of one nozzle."""

    nozzle: int
    volume_total_ml: int
    amount_total_fen: int


@dataclass(frozen=True)
class PricesRead(DriverEvent):
    """Prices the pump currently uses, fen/L per nozzle."""

    prices_fen: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class PumpAlarm(DriverEvent):
    """An alarm the pump reported (DART DC5)."""

    code: int
    text: str


@dataclass(frozen=True)
class LinkFault(DriverEvent):
    """A garbled, unexpected or missing reply; informational, the link recovers by itself."""

    reason: str


@dataclass(frozen=True)
class CommandFailed(DriverEvent):
    """A command could not be delivered (retries exhausted, pump offline)."""

    command: Command
    reason: str


EventSink = Callable[[DriverEvent], None]


class LineDriver(ABC):
    """One bus line with its pumps.  The driver owns its own thread(s).

    ``events`` is called from the driver's thread: it must only enqueue.
    ``submit`` never blocks on I/O; ``emergency_stop`` preempts everything
    queued and goes out at the next frame boundary.
    """

    def __init__(self, config: LineConfig, events: EventSink) -> None:
        self.config = config
        self._events = events

    @abstractmethod
    def start(self) -> None:
        """Open the port and start the bus cycle."""

    @abstractmethod
    def close(self) -> None:
        """Stop the bus cycle and close the port."""

    @abstractmethod
    def submit(self, command: Command) -> None:
        """Queue a command for its pump; raises CommandRejected for an unknown pump."""

    @abstractmethod
    def emergency_stop(self, pump_id: int = 0) -> None:
        """Stop one pump (or all with 0) at the next frame boundary."""

    def pump_ids(self) -> tuple[int, ...]:
        return tuple(p.pump_id for p in self.config.pumps)
