"""A whole station for reliability runs: pump simulator, Mosquitto, center simulator, chaos proxies, agent child.

``Rig(workdir, RigOptions(...))`` starts (in ``start()``):

* the DART pump simulator on a PTY (``PumpSimulator``, in this process: its ledger is the ground
  truth of every fill);
* optionally a real Mosquitto on a free loopback port (``sync.broker.start_mosquitto``);
* the trade-center simulator (``sync.center_sim.server.serve_center``, in this process: its state is
  the center's ledger), publishing to that broker;
* a ``ChaosProxy`` between the agent and the center and one between the agent and the broker;
* the agent itself as a child process (``python -m main agent --config …``), which ``AgentChild``
  starts, SIGKILLs and restarts; its output goes to ``workdir/agent.log``.

``Rig.api`` is an ``httpx.Client`` on the agent's local API with the station token.

Limits: one station per rig; the agent child runs from the repository root with ``FORECOURT_DEV=1``;
everything listens on 127.0.0.1; ``close()`` stops all of it (also after a failure).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from drivers.sim.simulator import PumpSimulator
from reliability.faults import ChaosProxy
from sync.broker import start_mosquitto, stop_mosquitto
from sync.center_sim.server import CenterHandle, serve_center

__all__ = ["ROOT", "TOKEN", "AgentChild", "Rig", "RigOptions", "free_port", "seed_members", "station_toml"]

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "reliability-token-0123456789abcdef"
GRADES = (("92", 789), ("95", 839))
SUPERVISOR = ("s01", "9999")
MANAGER = ("m01", "8888")
CASHIER = ("c01", "1234")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_members(center: CenterHandle, n: int, balance_fen: int) -> None:
    """Members m1..mN (phones 1380000000N) with stored value at the trade-center simulator."""
    with center.state.lock:
        for i in range(1, n + 1):
            center.state.members[f"m{i}"] = {
                "member_id": f"m{i}", "name": f"会员{i}", "level": "normal", "phone": f"1380000{i:04d}",
                "plates": [], "balance_fen": balance_fen, "points": 0}


def station_toml(*, api_port: int, db_path: str, bus_url: str, center_url: str, mqtt_port: int,
                 pumps: int, station_id: str = "T001", baudrate: int = 115200) -> str:
    """A station config for harness runs: the rig's token, cashiers, two grades, one item, one DART line."""
    lines = ["[station]", f'id = "{station_id}"', 'name = "可靠性测试站"',
             "[api]", f"port = {api_port}", f'token = "{TOKEN}"',
             "[database]", f'path = "{db_path}"',
             "[center]", f'url = "{center_url}"', 'mqtt_host = "127.0.0.1"',
             f"mqtt_port = {mqtt_port}", "timeout_s = 2.0"]
    for code, price in GRADES:
        lines += ["[[grades]]", f'code = "{code}"', f'name = "{code}#"', f"price_fen = {price}"]
    for cid, pin, role in ((*CASHIER, "cashier"), (*SUPERVISOR, "supervisor"), (*MANAGER, "manager")):
        lines += ["[[cashiers]]", f'id = "{cid}"', f'name = "{cid}"', f'role = "{role}"', f'pin = "{pin}"']
    lines += ["[[catalog]]", 'sku = "6901234567892"', 'plu = "101"', 'name = "矿泉水"', "price_fen = 200"]
    lines += ["[[lines]]", 'name = "bus1"', 'protocol = "dart"', f'url = "{bus_url}"', f"baudrate = {baudrate}",
              "response_timeout_s = 0.1"]
    for i in range(pumps):
        lines += ["[[lines.pumps]]", f"pump_id = {i + 1}", f"address = 0x{0x50 + i:02X}",
                  f'nozzles = [{{ number = {i + 1}, logical = 1, grade = "{GRADES[i % 2][0]}" }}]']
    return "\n".join(lines) + "\n"


@dataclass
class RigOptions:
    pumps: int = 2
    speed: float = 20.0  #: pump flow speed-up (a compressed day)
    broker: bool = True
    seed: int = 0
    members: int = 2  #: members m1..mN with stored value at the center
    balance_fen: int = 10_000_000
    extra_toml: str = ""
    env: dict[str, str] = field(default_factory=dict)


class AgentChild:
    """``forecourt agent`` as a child process; ``start()`` waits until its API listens."""

    def __init__(self, config: Path, log_path: Path, *, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.env = env or {}
        self.proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self.starts = 0

    def start(self, *, crash_at: str | None = None, timeout: float = 60.0) -> None:
        """Start the agent (``crash_at``: a saga step where it SIGKILLs itself); wait for readiness."""
        environ = dict(os.environ, FORECOURT_DEV="1", PYTHONUNBUFFERED="1")
        environ.pop("FORECOURT_CRASH_AT", None)
        environ.update(self.env)
        if crash_at:
            environ["FORECOURT_CRASH_AT"] = crash_at
        self.proc = subprocess.Popen([sys.executable, "-m", "main", "agent", "--config", str(self.config)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=environ)
        self.starts += 1
        lines: queue.Queue[str] = queue.Queue()
        log = self.log_path.open("a", encoding="utf-8")
        log.write(f"---- start {self.starts} pid {self.proc.pid} crash_at={crash_at}\n")
        self._reader = threading.Thread(target=self._pump, args=(self.proc, lines, log), daemon=True)
        self._reader.start()
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                raise RuntimeError("agent not ready in time:\n" + "".join(seen[-20:])) from None
            seen.append(line)
            if "forecourt agent:" in line:
                return
            if not line:
                raise RuntimeError("agent exited before it was ready:\n" + "".join(seen[-30:]))

    @staticmethod
    def _pump(proc: subprocess.Popen[str], lines: queue.Queue[str], log: TextIO) -> None:
        assert proc.stdout is not None
        with log:
            for line in proc.stdout:
                log.write(line)
                lines.put(line)
            proc.stdout.close()
        lines.put("")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> int | None:
        """SIGKILL (if still running) and reap; returns the exit code (-9 when we killed it)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(15)
        if self._reader is not None:
            self._reader.join(10)
        return rc

    def wait_exit(self, timeout: float) -> int | None:
        """Wait for the child to exit by itself (e.g. at a crash point); ``None`` if it is still running."""
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> int | None:
        """Orderly stop (SIGTERM), SIGKILL after 20 s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        return self.proc.returncode


class Rig:
    """See module docstring."""

    def __init__(self, workdir: Path, options: RigOptions | None = None) -> None:
        self.workdir = workdir
        self.opts = options or RigOptions()
        self.sim: PumpSimulator | None = None
        self.center: CenterHandle | None = None
        self.broker_proc: subprocess.Popen[bytes] | None = None
        self.broker_port = 0
        self.center_proxy: ChaosProxy | None = None
        self.broker_proxy: ChaosProxy | None = None
        self.api_port = free_port()
        self.db_path = workdir / "forecourt.db"
        self.config_path = workdir / "station.toml"
        self.agent = AgentChild(self.config_path, workdir / "agent.log", env=self.opts.env)
        self.api = httpx.Client(base_url=f"http://127.0.0.1:{self.api_port}",
                                headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10.0)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Rig:
        self.workdir.mkdir(parents=True, exist_ok=True)
        o = self.opts
        self.sim = PumpSimulator(o.pumps, 1, simulate=True, speed=o.speed, baudrate=None, seed=o.seed)
        pty = self.sim.start_pty()
        mqtt = None
        if o.broker:
            self.broker_port = free_port()
            self.broker_proc = start_mosquitto(self.broker_port, self.workdir / "mosquitto")
            mqtt = ("127.0.0.1", self.broker_port)
        self.center = serve_center(mqtt=mqtt)
        seed_members(self.center, o.members, o.balance_fen)
        center_port = int(self.center.url.rsplit(":", 1)[1])
        self.center_proxy = ChaosProxy(("127.0.0.1", center_port), name="center").start()
        mqtt_port = free_port()
        if o.broker:
            self.broker_proxy = ChaosProxy(("127.0.0.1", self.broker_port), name="broker").start()
            mqtt_port = self.broker_proxy.port
        self.config_path.write_text(self.config_text(pty, mqtt_port), encoding="utf-8")
        return self

    def config_text(self, pty: str, mqtt_port: int) -> str:
        assert self.center_proxy is not None
        return station_toml(api_port=self.api_port, db_path=str(self.db_path), bus_url=pty,
                            center_url=f"http://127.0.0.1:{self.center_proxy.port}", mqtt_port=mqtt_port,
                            pumps=self.opts.pumps) + self.opts.extra_toml

    def close(self) -> None:
        self.api.close()
        self.agent.stop()
        for p in (self.center_proxy, self.broker_proxy):
            if p is not None:
                p.stop()
        if self.center is not None:
            self.center.stop()
        if self.broker_proc is not None:
            stop_mosquitto(self.broker_proc)
            self.broker_proc = None
        if self.sim is not None:
            self.sim.close()

    def __enter__(self) -> Rig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ broker outage
    def broker_crash(self) -> None:
        """SIGKILL Mosquitto (no persistence save): the broker is gone."""
        if self.broker_proc is not None:
            self.broker_proc.kill()
            self.broker_proc.wait(10)
            if self.broker_proc.stderr is not None:
                self.broker_proc.stderr.close()
            self.broker_proc = None

    def broker_restart(self) -> None:
        self.broker_crash()
        self.broker_proc = start_mosquitto(self.broker_port, self.workdir / "mosquitto")

    # ------------------------------------------------------------ helpers
    def heal(self) -> None:
        """Every proxy back to ``pass``, the center's own proxy up, its faults off, the broker running."""
        for p in (self.center_proxy, self.broker_proxy):
            if p is not None:
                p.set_mode("pass")
        if self.center is not None:
            self.center.proxy.set_down(False)
            with self.center.state.lock:
                f = self.center.state.faults
                f.delay_s, f.fail_5xx, f.commit_then_500, f.commit_then_drop = 0.0, 0, 0, 0
        if self.opts.broker and self.broker_proc is None:
            self.broker_restart()
        if self.sim is not None:
            self.sim.set_faults(**_NO_SERIAL_FAULTS)

    def get(self, path: str, **params: Any) -> Any:
        r = self.api.get(path, params=params or None)
        r.raise_for_status()
        return r.json()


_NO_SERIAL_FAULTS: dict[str, Any] = {"crc_error_rate": 0.0, "duplicate_rate": 0.0, "truncate_rate": 0.0,
                                     "garbage_rate": 0.0, "latency": False}
