"""In-process pump bus simulator: N dispensers on one DART line or Gilbarco loop, an API, waits, a ledger.

Refuses to start unless ``FORECOURT_DEV=1`` is set or ``simulate=True`` is passed (it must never be
mistaken for real pumps).  Example::

    sim = PumpSimulator(pumps=8, nozzles_per_pump=2, simulate=True, speed=20)
    url = sim.start_pty()              # or sim.start_tcp() -> "socket://127.0.0.1:PORT"
    ... DartLineDriver(LineConfig(..., url=url, ...)) ...
    sim.lift(1, 1); sim.wait_status(1, 4, timeout=5); sim.hang(1)
    sim.wait_fills(1, timeout=5); sim.ledger()[-1].volume_ml

Pumps are numbered 1..N at addresses ``first_address + n - 1`` (DART) or at pump numbers 1..N
(``protocol="gilbarco"``, up to 16; the pumps then start ready, status 1, as a Gilbarco pump keeps
its prices; :mod:`drivers.sim.gilbarco_responder` maps the status codes).  Status codes in this API
(``status``, ``wait_status``) are always the DART ones of :class:`~drivers.sim.pump.SimPump`.  All state sits behind one
condition variable; ``wait_*`` block on it with a timeout (no sleeping loops).  Prices start unset
(DART status 0) unless ``prices`` is given, which also resets the pumps to status 1.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drivers.base import ConfigError, Decimals
from drivers.sim.dart_server import PtyStream, SerialStream, Stream, TcpStream, serve
from drivers.sim.gilbarco_line import GilbarcoSimLine
from drivers.sim.gilbarco_responder import GilbarcoResponder
from drivers.sim.line import Faults, SimLine
from drivers.sim.pump import LedgerEntry, SimPump
from drivers.sim.responder import Responder

__all__ = ["PumpSimulator", "SimulatorRefusedError", "require_simulation"]


class SimulatorRefusedError(ConfigError):
    """The simulator was asked to start outside development mode."""


def require_simulation(simulate: bool) -> None:
    if not simulate and os.environ.get("FORECOURT_DEV") != "1":
        raise SimulatorRefusedError("the pump simulator needs FORECOURT_DEV=1 or --simulate")


class PumpSimulator:
    """See module docstring."""

    def __init__(
        self,
        pumps: int = 8,
        nozzles_per_pump: int = 2,
        *,
        simulate: bool = False,
        speed: float = 1.0,
        flow_l_s: float = 0.6,
        prices: tuple[int, ...] | None = None,
        decimals: Decimals | None = None,
        baudrate: int | None = 9600,
        first_address: int = 0x50,
        tx_wrap_to: int = 1,
        seed: int | None = None,
        ledger_path: str | Path | None = None,
        protocol: str = "dart",
    ) -> None:
        require_simulation(simulate)
        if protocol not in ("dart", "gilbarco"):
            raise ConfigError(f"unknown simulated protocol {protocol!r} (dart, gilbarco)")
        gilbarco = protocol == "gilbarco"
        if not 1 <= pumps <= (16 if gilbarco else 32) or not 1 <= nozzles_per_pump <= 9:
            raise ConfigError("1-32 DART / 1-16 Gilbarco pumps with 1-9 nozzles each")
        self.protocol = protocol
        self.cond = threading.Condition()
        self.baudrate = baudrate
        self.speed = speed
        self._ledger: list[LedgerEntry] = []
        self._ledger_path = Path(ledger_path) if ledger_path else None
        nozzles = tuple(range(1, nozzles_per_pump + 1))
        self.pumps = [
            SimPump(
                n,
                n if gilbarco else first_address + n - 1,
                nozzles,
                decimals or Decimals(),
                flow_l_s=flow_l_s,
                speed=speed,
                on_fill=self._record,
            )
            for n in range(1, pumps + 1)
        ]
        self.responders: list[Responder | GilbarcoResponder]
        self.line: SimLine | GilbarcoSimLine
        if gilbarco:
            gil = [GilbarcoResponder(p) for p in self.pumps]
            self.responders, self.line = list(gil), GilbarcoSimLine(gil, seed)
            for p in self.pumps:
                p.status = 1
        else:
            dart = [Responder(p, tx_wrap_to) for p in self.pumps]
            self.responders, self.line = list(dart), SimLine(dart, seed)
        if prices is not None:
            for p in self.pumps:
                p.set_prices(tuple(prices[(i - 1) % len(prices)] for i in nozzles))
                p.status = 1
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._streams: list[Stream] = []

    # ------------------------------------------------------------ serving

    def _handle(self, data: bytes, now: float) -> list[tuple[float, bytes]]:
        with self.cond:
            replies = self.line.handle(data, now)
            self.cond.notify_all()
        return replies

    def _serve(self, stream: Stream) -> None:
        self._streams.append(stream)
        self.spawn(f"sim-serve-{len(self._streams)}", lambda: serve(stream, self._handle, self._stop, self.baudrate))

    def spawn(self, name: str, target: Callable[[], None]) -> None:
        """Run ``target`` in a daemon thread stopped by :meth:`close`."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    @property
    def stopping(self) -> threading.Event:
        return self._stop

    def start_pty(self) -> str:
        """Serve on a new PTY; returns the slave path for the driver."""
        stream = PtyStream()
        self._serve(stream)
        return stream.path

    def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on TCP; returns ``socket://host:port`` for the driver."""
        stream = TcpStream(host, port)
        self._serve(stream)
        return stream.url

    def start_serial(self, url: str) -> None:
        """Serve on a real serial port (the pump side of an RS-485 pair)."""
        gilbarco = self.protocol == "gilbarco"
        self._serve(SerialStream(url, self.baudrate or (5787 if gilbarco else 9600), "E" if gilbarco else "O"))

    def close(self) -> None:
        self._stop.set()
        with self.cond:
            self.cond.notify_all()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout=2.0)
        for stream in self._streams:
            stream.close()

    def __enter__(self) -> PumpSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ customer & pump actions

    def pump(self, number: int) -> SimPump:
        if not 1 <= number <= len(self.pumps):
            raise ConfigError(f"no simulated pump {number}")
        return self.pumps[number - 1]

    def _act(self, number: int, action: Callable[[SimPump, float], object]) -> object:
        with self.cond:
            result = action(self.pump(number), time.monotonic())
            self.cond.notify_all()
        return result

    def lift(self, pump: int, nozzle: int = 1) -> bool:
        return bool(self._act(pump, lambda p, now: p.lift(nozzle, now)))

    def hang(self, pump: int) -> bool:
        return bool(self._act(pump, lambda p, now: p.hang(now)))

    def set_flow(self, pump: int, flow_l_s: float) -> None:
        self._act(pump, lambda p, now: p.set_flow(flow_l_s, now))

    def set_prices(self, pump: int, prices: tuple[int, ...]) -> None:
        """Prices set at the dispenser itself (not via the bus)."""
        self._act(pump, lambda p, now: p.set_prices(prices))

    def status(self, pump: int) -> dict[str, Any]:
        def snap(p: SimPump, now: float) -> dict[str, Any]:
            p.advance(now)
            return {
                "pump": p.number,
                "address": p.address,
                "status": p.status,
                "nozzle": p.nozzle,
                "nozzle_out": p.nozzle_out,
                "volume_raw": p.fill_volume,
                "amount_raw": p.fill_amount,
                "prices": dict(p.prices),
                "totals": {n: [t.volume, t.amount] for n, t in p.totals.items()},
                "authorizations": p.authorizations,
            }

        result = self._act(pump, snap)
        assert isinstance(result, dict)
        return result

    # ------------------------------------------------------------ faults

    @property
    def faults(self) -> Faults:
        return self.line.faults

    def set_faults(self, **knobs: Any) -> None:
        """Change fault knobs (names of :class:`~drivers.sim.line.Faults`); ``silent`` takes pump numbers."""
        with self.cond:
            for key, value in knobs.items():
                if key == "silent":
                    value = {self.pump(int(n)).address for n in value}
                if not hasattr(self.line.faults, key):
                    raise ConfigError(f"unknown fault knob {key}")
                setattr(self.line.faults, key, value)

    def offline(self, pump: int, seconds: float | None = None) -> None:
        """The pump stops answering (for ``seconds``, or until :meth:`online`)."""
        with self.cond:
            until = float("inf") if seconds is None else time.monotonic() + seconds
            self.line.faults.offline_until[self.pump(pump).address] = until

    def online(self, pump: int) -> None:
        with self.cond:
            self.line.faults.offline_until.pop(self.pump(pump).address, None)

    def power_cycle(self, pump: int, off_s: float = 1.0) -> None:
        """Power loss: a running fill ends, link state (TX#) is lost, silent for ``off_s``."""
        with self.cond:
            p = self.pump(pump)
            p.power_fail(time.monotonic())
            responder = self.responders[pump - 1]
            responder.reset_link()
            responder.raise_alarm(0x0A)
            self.line.faults.offline_until[p.address] = time.monotonic() + off_s
            self.cond.notify_all()

    # ------------------------------------------------------------ ledger & waits

    def _record(self, entry: LedgerEntry) -> None:
        self._ledger.append(entry)
        if self._ledger_path is not None:
            with self._ledger_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(entry)) + "\n")

    def ledger(self) -> list[LedgerEntry]:
        with self.cond:
            return list(self._ledger)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` (evaluated under the lock) is true, or the timeout."""
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_status(self, pump: int, status: int, timeout: float) -> bool:
        p = self.pump(pump)

        def reached() -> bool:
            p.advance(time.monotonic())
            return p.status == status

        return self.wait_for(reached, timeout)

    def wait_fills(self, count: int, timeout: float) -> bool:
        return self.wait_for(lambda: len(self._ledger) >= count, timeout)
