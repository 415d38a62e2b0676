"""``forecourt demo``: the whole station on one machine, with simulators.

Starts, as child processes: Mosquitto on a free loopback port, the
trade-center simulator (HTTP + MQTT, demo members, coupons, promotions), the
pump bus simulator (8 DART pumps on TCP, simulated customers), the agent
(store, pumps, checkout, sync, local API) and the dual-screen UI.  Headless
mode renders the screens offscreen (and saves screenshots in the demo dir).  Ctrl-C (or ``--run-for``)
stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

__all__ = ["demo_config", "run_demo"]

GRADES = (("92", "92#汽油", 789), ("95", "95#汽油", 839), ("98", "98#汽油", 929), ("0", "0#柴油", 765))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def demo_config(station_id: str, pumps: int, bus_url: str, api_port: int, nozzles_per_pump: int = 2,
                *, auto_authorize: bool = False, center_url: str = "http://127.0.0.1:8650",
                mqtt_port: int = 1883, gilbarco_url: str | None = None) -> str:
    """A station config for ``pumps`` simulated DART pumps (two nozzles each) on one line.

    ``auto_authorize`` (a manager's opt-in, R3) lets a headless demo sell without a cashier.
    """
    out = [
        "[station]", f'id = "{station_id}"', 'name = "演示加油站"', "",
        "[api]", 'host = "127.0.0.1"', f"port = {api_port}", "",
        "[database]", 'path = "forecourt.db"', "",
        "[policy]", f"auto_authorize = {'true' if auto_authorize else 'false'}", "",
        "[center]", f'url = "{center_url}"', 'mqtt_host = "127.0.0.1"', f"mqtt_port = {mqtt_port}", "",
        "[[cashiers]]", 'id = "c01"', 'name = "张三"', 'role = "cashier"', 'pin = "1234"', "",
        "[[cashiers]]", 'id = "s01"', 'name = "李站长"', 'role = "manager"', 'pin = "9999"', "",
        "[[catalog]]", 'sku = "6901234567892"', 'plu = "101"', 'name = "矿泉水 550ml"', "price_fen = 200", "",
        "[[catalog]]", 'sku = "6920202888883"', 'plu = "102"', 'name = "红牛 250ml"', "price_fen = 650", "",
    ]
    for code, name, price in GRADES:
        out += ["[[grades]]", f'code = "{code}"', f'name = "{name}"', f"price_fen = {price}", ""]
    dart_pumps = pumps // 2 if gilbarco_url else pumps
    out += ["[[lines]]", 'name = "bus1"', 'protocol = "dart"', f'url = "{bus_url}"', ""]
    gun = 1
    for i in range(pumps):
        if i == dart_pumps:
            out += ["[[lines]]", 'name = "loop1"', 'protocol = "gilbarco"', f'url = "{gilbarco_url}"',
                    "baudrate = 5787", ""]
        nozzles = []
        for n in range(1, nozzles_per_pump + 1):
            grade = GRADES[(i + n - 1) % len(GRADES)][0]
            nozzles.append(f'{{ number = {gun}, logical = {n}, grade = "{grade}" }}')
            gun += 1
        address = f"0x{0x50 + i:02X}" if i < dart_pumps else str(i - dart_pumps + 1)
        out += ["[[lines.pumps]]", f"pump_id = {i + 1}", f"address = {address}",
                f"nozzles = [{', '.join(nozzles)}]", ""]
    return "\n".join(out)


class _Children:
    def __init__(self) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        log = log_path.open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        self.procs.append((name, proc))
        print(f"[demo] started {name} (pid {proc.pid}), log: {log_path}", flush=True)

    def check(self) -> str | None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode}"
        return None

    def stop(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            print(f"[demo] stopped {name}", flush=True)


def _wait_health(url: str, children: _Children, timeout_s: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        failed = children.check()
        if failed:
            raise RuntimeError(failed)
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:  # noqa: S310 - loopback
                body: dict[str, object] = json.load(r)
                return body
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"agent did not answer {url}/health within {timeout_s:.0f} s ({last})")


def _wait_port(port: int, children: _Children, timeout_s: float = 20.0) -> None:
    """Wait until a child listens on ``port`` (so the agent's first connect succeeds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        failed = children.check()
        if failed:
            raise RuntimeError(failed)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def _pump_sim_available() -> bool:
    try:
        import drivers.sim.cli  # noqa: F401
    except ImportError:
        return False
    return True


def run_demo(args: argparse.Namespace) -> int:
    workdir = Path(args.dir or os.environ.get("FORECOURT_DEMO_DIR", "var/demo")).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FORECOURT_DEV="1", PYTHONUNBUFFERED="1")
    if args.headless:
        env["QT_QPA_PLATFORM"] = "offscreen"
    exe = [sys.executable, "-m", "main"]
    children = _Children()
    bus_port, control_port, mqtt_port, center_port = free_port(), free_port(), free_port(), free_port()
    gil_port, gil_control_port = free_port(), free_port()
    mixed = bool(getattr(args, "mixed", False))
    cfg_path = workdir / "station.toml"
    cfg_path.write_text(demo_config("DEMO01", args.pumps, f"socket://127.0.0.1:{bus_port}", args.port,
                                    auto_authorize=args.headless, center_url=f"http://127.0.0.1:{center_port}",
                                    mqtt_port=mqtt_port,
                                    gilbarco_url=f"socket://127.0.0.1:{gil_port}" if mixed else None),
                        encoding="utf-8")
    rc = 0
    try:
        from sync.broker import start_mosquitto

        broker = start_mosquitto(mqtt_port, workdir / "mosquitto")
        children.procs.append(("mosquitto", broker))
        print(f"[demo] started mosquitto on 127.0.0.1:{mqtt_port}", flush=True)
        children.start("trade-center simulator", [*exe, "sim", "center", "--simulate", "--http",
                                                  f"127.0.0.1:{center_port}", "--mqtt-port", str(mqtt_port),
                                                  "--station", "DEMO01", "--state", str(workdir / "center.json")],
                       workdir / "center.log", env)
        if _pump_sim_available():
            dart_pumps = args.pumps // 2 if mixed else args.pumps
            sims = [("pump simulator", "dart", dart_pumps, bus_port, control_port, "pump-ledger.jsonl")]
            if mixed:
                sims.append(("Gilbarco loop simulator", "gilbarco", args.pumps - dart_pumps, gil_port,
                             gil_control_port, "pump-ledger-gilbarco.jsonl"))
            for name, protocol, count, port, control, ledger in sims:
                sim = [*exe, "sim", "pumps", "--simulate", "--protocol", protocol, "--pumps", str(count),
                       "--nozzles-per-pump", "2", "--tcp", f"127.0.0.1:{port}", "--control",
                       f"127.0.0.1:{control}", "--ledger", str(workdir / ledger)]
                if not args.no_traffic:
                    sim.append("--demo-traffic")
                children.start(name, sim, workdir / f"{protocol}-pumps.log", env)
                _wait_port(port, children)
            agent_flags: list[str] = []
        else:
            agent_flags = ["--no-pumps"]
        children.start("agent", [*exe, "agent", "--config", str(cfg_path), *agent_flags],
                       workdir / "agent.log", env)
        url = f"http://127.0.0.1:{args.port}"
        health = _wait_health(url, children)
        token = (workdir / "api-token").read_text(encoding="utf-8").strip()
        print(f"[demo] agent is up: {url}/health → {json.dumps(health, ensure_ascii=False)}", flush=True)
        print(f"[demo] API docs: {url}/docs  token: {workdir / 'api-token'} ({token[:6]}…)", flush=True)
        print(f"[demo] pump simulator control: 127.0.0.1:{control_port}; Ctrl-C stops the demo", flush=True)
        if not args.no_ui:
            ui = [*exe, "ui", "--api", url, "--token-file", str(workdir / "api-token")]
            if args.headless:
                ui += ["--screenshot", str(workdir / "screens")]
            children.start("dual-screen UI", ui, workdir / "ui.log", env)
        print("[demo] cashier login: c01 / PIN 1234 (manager s01 / 9999); member phone 13800000001", flush=True)
        stop_at = time.monotonic() + args.run_for if args.run_for else None
        stopping = {"flag": False}

        def _stop(*_: object) -> None:
            stopping["flag"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        while not stopping["flag"] and (stop_at is None or time.monotonic() < stop_at):
            failed = children.check()
            if failed:
                print(f"[demo] {failed}: stopping (see the logs in {workdir})", file=sys.stderr)
                rc = 1
                break
            time.sleep(0.5)
    except RuntimeError as exc:
        print(f"[demo] {exc} (logs in {workdir})", file=sys.stderr)
        rc = 1
    finally:
        children.stop()
    return rc
