"""Simulator commands shared by the JSON-lines control socket, scenario files and demo traffic.

Command set (one JSON object per line; reply ``{"ok": true, "result": ...}`` or
``{"ok": false, "error": "..."}``)::

    {"cmd": "ping"}
    {"cmd": "lift", "pump": 1, "nozzle": 1}        {"cmd": "hang", "pump": 1}
    {"cmd": "flow", "pump": 1, "l_s": 0.6}          {"cmd": "status"}  /  {"cmd": "status", "pump": 1}
    {"cmd": "prices", "pump": 1, "prices": [789, 812]}   (set at the dispenser, raw)
    {"cmd": "faults", "crc_error_rate": 0.05, "silent": [3], "latency": true, ...}
    {"cmd": "offline", "pump": 2, "seconds": 3}     {"cmd": "online", "pump": 2}
    {"cmd": "power_cycle", "pump": 2, "off_s": 1}
    {"cmd": "ledger"}                               {"cmd": "wait_fills", "count": 3, "timeout": 10}

A scenario file is JSON lines (``.jsonl``/``.json``) or TOML (``[[step]]`` tables) of the same
objects plus ``"at"``: seconds after the start.  Demo traffic: simulated customers lift a nozzle of a
free pump at random, hang up after a random volume, or give up when nobody authorizes them.
"""

from __future__ import annotations

import json
import random
import time
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

from drivers.base import ConfigError
from drivers.sim.simulator import PumpSimulator

__all__ = ["dispatch", "load_scenario", "run_demo_traffic", "run_scenario"]


def dispatch(sim: PumpSimulator, msg: dict[str, Any]) -> Any:
    """Execute one command; raises ConfigError/KeyError/ValueError on a bad one."""
    cmd = msg.get("cmd")
    pump = int(msg.get("pump", 0))
    if cmd == "ping":
        return "pong"
    if cmd == "lift":
        return sim.lift(pump, int(msg.get("nozzle", 1)))
    if cmd == "hang":
        return sim.hang(pump)
    if cmd == "flow":
        sim.set_flow(pump, float(msg["l_s"]))
        return None
    if cmd == "status":
        numbers = [pump] if pump else range(1, len(sim.pumps) + 1)
        return [sim.status(n) for n in numbers]
    if cmd == "prices":
        sim.set_prices(pump, tuple(int(p) for p in msg["prices"]))
        return None
    if cmd == "faults":
        knobs = {k: v for k, v in msg.items() if k != "cmd"}
        sim.set_faults(**knobs)
        return {k: v for k, v in asdict(sim.faults).items() if k not in ("silent", "offline_until")}
    if cmd == "offline":
        seconds = msg.get("seconds")
        sim.offline(pump, None if seconds is None else float(seconds))
        return None
    if cmd == "online":
        sim.online(pump)
        return None
    if cmd == "power_cycle":
        sim.power_cycle(pump, float(msg.get("off_s", 1.0)))
        return None
    if cmd == "ledger":
        return [asdict(e) for e in sim.ledger()]
    if cmd == "wait_fills":
        return sim.wait_fills(int(msg["count"]), float(msg.get("timeout", 10.0)))
    raise ConfigError(f"unknown command {cmd!r}")


def handle_line(sim: PumpSimulator, line: str) -> str:
    """One JSON request line -> one JSON reply line (without newline)."""
    try:
        msg = json.loads(line)
        if not isinstance(msg, dict):
            raise ValueError("a command is a JSON object")
        return json.dumps({"ok": True, "result": dispatch(sim, msg)})
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        return json.dumps({"ok": False, "error": f"{type(exc).__name__}: {exc}"})


def load_scenario(path: str | Path) -> list[dict[str, Any]]:
    """Steps sorted by ``at``."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".toml":
        steps = list(tomllib.loads(text).get("step", []))
    else:
        steps = [json.loads(line) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    for step in steps:
        if not isinstance(step, dict) or "cmd" not in step:
            raise ConfigError(f"{path}: every step needs a 'cmd': {step!r}")
    return sorted(steps, key=lambda s: float(s.get("at", 0.0)))


def run_scenario(sim: PumpSimulator, steps: list[dict[str, Any]]) -> list[Any]:
    """Run the steps at their times (until the simulator closes); returns the results."""
    start = time.monotonic()
    results = []
    for step in steps:
        delay = start + float(step.get("at", 0.0)) - time.monotonic()
        if delay > 0 and sim.stopping.wait(delay):
            break
        results.append(dispatch(sim, {k: v for k, v in step.items() if k != "at"}))
    return results


def run_demo_traffic(sim: PumpSimulator, seed: int | None = None, mean_gap_s: float = 8.0) -> None:
    """Random customers until the simulator closes (run it with ``sim.spawn``)."""
    rng = random.Random(seed)
    targets: dict[int, tuple[int, float]] = {}  # pump -> (volume_raw target, give-up time)
    next_arrival = time.monotonic() + rng.expovariate(1.0 / mean_gap_s) / sim.speed
    while not sim.stopping.wait(0.2):
        now = time.monotonic()
        for number, (target, give_up) in list(targets.items()):
            state = sim.status(number)
            if state["status"] in (5, 6) or state["volume_raw"] >= target or (state["status"] == 1 and now > give_up):
                sim.hang(number)
                del targets[number]
        if now < next_arrival:
            continue
        next_arrival = now + rng.expovariate(1.0 / mean_gap_s) / sim.speed
        # a Gilbarco pump keeps its last sale (A/B) until the next customer lifts: it is free too
        ready = (1, 5, 6) if getattr(sim, "protocol", "dart") == "gilbarco" else (1,)
        free = [p.number for p in sim.pumps if p.status in ready and not p.nozzle_out and p.number not in targets]
        if free:
            number = rng.choice(free)
            pump = sim.pump(number)
            volume_l = rng.uniform(5, 45)
            targets[number] = (int(volume_l * 10**pump.decimals.volume), now + 60.0 / sim.speed)
            sim.lift(number, rng.choice(pump.nozzles))
