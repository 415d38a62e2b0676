"""``forecourt sim pumps``: run the pump bus simulator (DART or Gilbarco two-wire) as a process.

main.py mounts :func:`add_arguments` / :func:`run`; ``python -m drivers.sim.cli`` works too.
Refuses to run without ``FORECOURT_DEV=1`` or ``--simulate``.  Prints the URL to give the driver
(PTY slave path or ``socket://``) and the control address, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import sys
import threading

from drivers.base import ConfigError
from drivers.sim.control import start_control
from drivers.sim.scenario import load_scenario, run_demo_traffic, run_scenario
from drivers.sim.simulator import PumpSimulator

__all__ = ["add_arguments", "main", "run"]


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--simulate", action="store_true", help="confirm that simulated pumps are wanted")
    parser.add_argument("--protocol", choices=["dart", "gilbarco"], default="dart", help="bus protocol spoken")
    parser.add_argument("--pumps", type=int, default=8, help="fuelling points (DART 0x50.., Gilbarco 1..16)")
    parser.add_argument("--nozzles-per-pump", type=int, default=2)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="serve on a new PTY (default)")
    where.add_argument("--tcp", type=_host_port, metavar="HOST:PORT", help="serve for socket://HOST:PORT")
    where.add_argument("--serial", metavar="URL", help="serve on a real serial port (pump side)")
    parser.add_argument("--control", type=_host_port, metavar="HOST:PORT", help="JSON-lines control socket")
    parser.add_argument("--scenario", metavar="FILE", help="timed actions (.jsonl or .toml)")
    parser.add_argument("--speed", type=float, default=1.0, help="flow speed-up factor")
    parser.add_argument("--flow", type=float, default=0.6, help="flow rate, litres/s")
    parser.add_argument("--prices", type=int, nargs="+", metavar="RAW", help="preset prices (else status 0)")
    parser.add_argument("--baud", type=int, default=None, help="wire time (9600 DART, 5787 Gilbarco); 0 = off")
    parser.add_argument("--demo-traffic", action="store_true", help="random customers")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--ledger", metavar="FILE", help="append every fill as a JSON line")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--crc-error-rate", type=float, default=0.0)
    faults.add_argument("--duplicate-rate", type=float, default=0.0)
    faults.add_argument("--truncate-rate", type=float, default=0.0)
    faults.add_argument("--garbage-rate", type=float, default=0.0)
    faults.add_argument("--latency", action="store_true", help="p50 18 / p95 32 / p99 64 ms replies")
    faults.add_argument("--silent", type=int, nargs="+", default=[], metavar="PUMP")


def run(args: argparse.Namespace) -> int:
    try:
        sim = PumpSimulator(
            args.pumps,
            args.nozzles_per_pump,
            simulate=args.simulate,
            speed=args.speed,
            flow_l_s=args.flow,
            prices=tuple(args.prices) if args.prices else None,
            baudrate=(args.baud if args.baud is not None else 5787 if args.protocol == "gilbarco" else 9600) or None,
            seed=args.seed,
            ledger_path=args.ledger,
            protocol=args.protocol,
        )
        sim.set_faults(
            crc_error_rate=args.crc_error_rate,
            duplicate_rate=args.duplicate_rate,
            truncate_rate=args.truncate_rate,
            garbage_rate=args.garbage_rate,
            latency=args.latency,
            silent=args.silent,
        )
        steps = load_scenario(args.scenario) if args.scenario else []
    except (ConfigError, OSError, ValueError) as exc:
        print(f"forecourt sim pumps: {exc}", file=sys.stderr)
        return 2
    with sim:
        if args.tcp:
            url = sim.start_tcp(*args.tcp)
        elif args.serial:
            sim.start_serial(args.serial)
            url = args.serial
        else:
            url = sim.start_pty()
        print(f"pumps: {url}", flush=True)
        if args.control:
            host, port = start_control(sim, *args.control)
            print(f"control: {host}:{port}", flush=True)
        if args.demo_traffic:
            sim.spawn("sim-demo", lambda: run_demo_traffic(sim, args.seed))
        if steps:
            sim.spawn("sim-scenario", lambda: print(f"scenario done: {run_scenario(sim, steps)}", flush=True))
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forecourt sim pumps", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
