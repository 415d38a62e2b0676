"""Fleet load tool: N emulated stations against one Mosquitto and the trade-center simulator.

Everything runs on this machine, on 127.0.0.1 only:

* one ``mosquitto`` (Debian package) with persistence, ``sys_interval 1`` and connection logging;
* the center simulator in its own process (``sync.emulator.center_worker``): HTTP uploads
  stamped on arrival, and a downlink of QoS 1 ``station.message`` commands to every station;
* ``--workers`` processes of emulated stations (``sync.emulator.station_worker``): each is the
  real agent (SQLite outbox/inbox, orders) with the real sync side (HTTP relay + MQTT 5
  session), without pumps; "fills" arrive as a Poisson process of ``--rate`` per station.

Phases: cold start (all stations connect), ``--steady`` seconds of load, a broker restart
(``--restart term``: SIGTERM, the broker saves its persistence; ``kill``: SIGKILL, it loses
what it held in RAM; ``none``), ``--after`` seconds of load, then the outboxes drain.

Reported: uplink fills/s and fill → center latency (p50/p99/max); downlink commands/s and
center → station-inbox latency; broker messages/s from ``$SYS``; broker RSS (``/proc/<pid>/
status``: idle, all connected, peak) and per connected station; the reconnect storm (time to
all reconnected, per-station delays, connection attempts seen by the broker); loss (every
created fill must be at the center exactly once, every PUBACKed command in a station inbox).

    .venv/bin/python bench/fleet.py --stations 50 [--workers 2] [--rate 0.5] [--downlink 0.2] \
        [--steady 30] [--after 30] [--restart term|kill|none] [--replay-window 60] [--json out.json] [--markdown]

Exit status 0 when nothing was lost, 1 otherwise.  Limits: one host, one clock, no WAN delay;
the load generator and the broker share the same 2 cores, so figures are a floor for a real
broker host (see docs/fleet.md for the extrapolation and its assumptions).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from reliability.tlsbroker import ACL, Pki, make_pki, tls_listener_lines
from sync.broker import MOSQUITTO
from sync.emulator import center_worker, fleet_tls, station_worker

#: paho's network loop uses select(), which cannot watch a descriptor >= 1024 (FD_SETSIZE), and each
#: emulated station holds ~11 descriptors (SQLite files, HTTP and MQTT sockets): beyond ~90 stations
#: in one process new MQTT connections fail.  50 keeps a margin.
STATIONS_PER_WORKER = 50


@dataclass(frozen=True)
class FleetOptions:
    stations: int = 50
    workers: int = 0  #: 0 = one per STATIONS_PER_WORKER stations
    rate: float = 0.5  #: fills per second per station
    downlink: float = 0.2  #: commands per second per station
    steady_s: float = 30.0
    after_s: float = 30.0
    restart: str = "term"  #: term | kill | none
    #: the center re-sends a station's commands of the last N s when it comes back online (0 = never)
    replay_window_s: float = 60.0
    connect_timeout_s: float = 120.0
    drain_timeout_s: float = 120.0
    #: MQTT over TLS: a certificate per station, require_certificate, the per-station ACL
    tls: bool = False


# ------------------------------------------------------------------ broker
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A loopback Mosquitto for the fleet (persistence, $SYS every second, connection log)."""

    def __init__(self, workdir: Path, port: int, pki: Pki | None = None) -> None:
        self.workdir, self.port = workdir, port
        self.log = workdir / "mosquitto.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if pki is not None:  # TLS, client certificates, per-station ACL (reliability/tlsbroker.py)
            acl = workdir / "broker.acl"
            acl.write_text(ACL)
            listener = tls_listener_lines(pki, port, acl)
        else:
            listener = [f"listener {port} 127.0.0.1", "allow_anonymous true"]
        lines = [*listener, "persistence true",
                 f"persistence_location {workdir}/", "autosave_interval 1800", "max_queued_messages 1000",
                 "sys_interval 1", "connection_messages true", f"log_dest file {self.log}",
                 "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:
            lines.append("user root")
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> float:
        """Start and return the monotonic time it began listening."""
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode} (see {self.log})")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return time.monotonic()
            except OSError:
                time.sleep(0.01)  # bench only: polling a port that is about to listen
        raise RuntimeError("mosquitto did not listen in time")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)
        self.proc = None

    def rss_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) in kB of the running broker, (0, 0) if it is not running."""
        if self.proc is None:
            return 0, 0
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0, 0
        vals = {ln.split(":")[0]: int(ln.split()[1]) for ln in text.splitlines() if ln.startswith(("VmRSS", "VmHWM"))}
        return vals.get("VmRSS", 0), vals.get("VmHWM", 0)

    def cpu_s(self) -> float:
        """User + system CPU seconds used by the running broker (``/proc/<pid>/stat``)."""
        if self.proc is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def connections_logged(self) -> int:
        try:
            return sum(1 for ln in self.log.read_text(errors="replace").splitlines() if "New connection from" in ln)
        except OSError:
            return 0


class SysMonitor:
    """Subscribes to a few ``$SYS/broker/...`` counters and keeps the latest value of each."""

    TOPICS = ("messages/received", "messages/sent", "publish/messages/received", "publish/messages/sent",
              "clients/connected")

    def __init__(self, port: int, tls: Any = None) -> None:
        self.values: dict[str, str] = {}
        self._lock = threading.Lock()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="fleet-monitor")
        if tls is not None:
            c.tls_set_context(tls)
        c.on_connect = lambda cl, *_: cl.subscribe([(f"$SYS/broker/{t}", 0) for t in self.TOPICS])
        self.seen = 0  #: $SYS messages sent to us (subtracted from the broker's "sent")
        c.on_message = self._on_message
        c.reconnect_delay_set(0.2, 1)
        c.connect_async("127.0.0.1", port, keepalive=30)
        c.loop_start()
        self._client = c

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self._lock:
            self.seen += 1
            self.values[msg.topic] = msg.payload.decode(errors="replace")

    def sample(self) -> tuple[float, int, int, int, int, int]:
        """(monotonic, packets in, packets out, PUBLISH in, PUBLISH out, $SYS messages we received)."""
        with self._lock:
            seen = self.seen
        return (time.monotonic(), self.counter("messages/received"), self.counter("messages/sent"),
                self.counter("publish/messages/received"), self.counter("publish/messages/sent"), seen)

    def counter(self, name: str) -> int:
        with self._lock:
            try:
                return int(float(self.values.get(f"$SYS/broker/{name}", "0")))
            except ValueError:
                return 0

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class RssSampler(threading.Thread):
    def __init__(self, broker: Broker) -> None:
        super().__init__(daemon=True, name="rss")
        self.broker, self.peak_kb, self._stop = broker, 0, threading.Event()

    def run(self) -> None:
        while not self._stop.wait(0.25):
            self.peak_kb = max(self.peak_kb, self.broker.rss_kb()[0])

    def stop(self) -> None:
        self._stop.set()


# ------------------------------------------------------------------ helpers
def _ask(conn: Connection, cmd: str, arg: Any = None, timeout: float = 300.0) -> Any:
    conn.send((cmd, arg))
    if not conn.poll(timeout):
        raise TimeoutError(f"worker did not answer {cmd!r} in {timeout}s")
    return conn.recv()


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(p * 10) - 1]


def _lat(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_ms": round(_pct(values, 50), 1), "p99_ms": round(_pct(values, 99), 1),
            "max_ms": round(max(values), 1) if values else float("nan")}


# ------------------------------------------------------------------ the run
def run_fleet(opts: FleetOptions, workdir: Path, log: Any = print) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    n_workers = opts.workers or -(-opts.stations // STATIONS_PER_WORKER)
    ids = [f"S{i:04d}" for i in range(1, opts.stations + 1)]
    pki, pki_dir, pki_s = None, None, 0.0
    if opts.tls:
        t_pki = time.monotonic()
        pki = make_pki(workdir / "pki", ids)
        pki_dir, pki_s = str(pki.dir), time.monotonic() - t_pki
        log(f"TLS: a CA and {opts.stations} station certificates in {pki_s:.1f} s")
    broker = Broker(workdir, _free_port(), pki)
    broker.start()
    rss_sampler = RssSampler(broker)
    rss_sampler.start()
    time.sleep(1.0)
    rss_idle = broker.rss_kb()[0]
    monitor = SysMonitor(broker.port, fleet_tls(pki_dir, "center"))
    procs: list[Any] = []
    center_conn, child = ctx.Pipe()
    procs.append(ctx.Process(target=center_worker, args=(child, broker.port, ids, 1, opts.replay_window_s, pki_dir),
                             daemon=True))
    procs[-1].start()
    if not center_conn.poll(60):
        raise TimeoutError("the center simulator did not start")
    _, center_url = center_conn.recv()
    workers: list[Connection] = []
    t_spawn = time.monotonic()
    for w in range(n_workers):
        parent, child = ctx.Pipe()
        group = ids[w::n_workers]
        (workdir / f"w{w}").mkdir()
        p = ctx.Process(target=station_worker, args=(child, group, str(workdir / f"w{w}"), center_url,
                                                     broker.port, 100 + w, pki_dir), daemon=True)
        p.start()
        procs.append(p)
        workers.append(parent)
    for conn in workers:
        if not conn.poll(opts.connect_timeout_s):
            raise TimeoutError("a station worker did not start")
        conn.recv()
    waits = [_ask(c, "wait_connected", opts.connect_timeout_s) for c in workers]
    if any(w is None for w in waits):
        raise RuntimeError("not every station connected to the broker")
    cold_start_s = time.monotonic() - t_spawn
    time.sleep(1.5)
    rss_connected = broker.rss_kb()[0]
    log(f"{opts.stations} stations connected ({cold_start_s:.1f} s incl. start-up); broker RSS "
        f"{rss_idle} kB idle → {rss_connected} kB")

    for c in workers:
        _ask(c, "load", opts.rate)
    _ask(center_conn, "downlink", opts.downlink)
    time.sleep(min(2.0, opts.steady_s / 4))  # $SYS counters settle
    s0 = monitor.sample()
    cpu0 = broker.cpu_s()
    time.sleep(max(0.0, opts.steady_s - min(2.0, opts.steady_s / 4)))
    s1 = monitor.sample()
    cpu1 = broker.cpu_s()
    rss_load = broker.rss_kb()[0]
    log(f"steady load for {opts.steady_s:.0f} s; broker RSS {rss_load} kB")

    storm: dict[str, Any] = {"mode": opts.restart}
    if opts.restart != "none":
        conns_before = broker.connections_logged()
        t_down_wall = time.time() * 1000
        broker.stop(signal.SIGKILL if opts.restart == "kill" else signal.SIGTERM)
        t_listen = broker.start()
        t_listen_wall = time.time() * 1000
        storm["down_ms"] = round(t_listen_wall - t_down_wall)
        waits = [_ask(c, "wait_connected", opts.connect_timeout_s) for c in workers]
        all_back_s = time.monotonic() - t_listen
        storm["all_reconnected_s"] = round(all_back_s, 2) if all(w is not None for w in waits) else None
        ups: list[float] = []
        downs = 0
        for c in workers:
            for at_ms, _sid, up in _ask(c, "links"):
                if at_ms >= t_down_wall:
                    if up:
                        ups.append(at_ms - t_listen_wall)
                    else:
                        downs += 1
        storm["stations_dropped"] = downs
        storm["reconnect_delay_ms"] = {"p50": round(_pct(ups, 50)), "p99": round(_pct(ups, 99)),
                                       "max": round(max(ups)) if ups else None}
        time.sleep(1.0)
        storm["connection_attempts"] = broker.connections_logged() - conns_before
        log(f"broker {opts.restart}-restarted: all {opts.stations} back in {all_back_s:.2f} s")
        time.sleep(opts.after_s)

    load_errors = sum(int(_ask(c, "stop_load")) for c in workers)
    _ask(center_conn, "stop_downlink")
    load_s = opts.steady_s + (opts.after_s if opts.restart != "none" else 0)
    stuck = [sid for c in workers for sid in _ask(c, "drain", opts.drain_timeout_s)]
    time.sleep(1.0)  # in-flight downlink deliveries land in the inboxes
    reports = [r for c in workers for r in _ask(c, "report")]
    center = _ask(center_conn, "report")
    rss_peak = max(rss_sampler.peak_kb, rss_load)
    for c in [*workers, center_conn]:
        try:
            _ask(c, "quit", timeout=60)
        except (TimeoutError, EOFError, OSError):
            pass
    for p in procs:
        p.join(30)
    monitor.stop()
    rss_sampler.stop()
    broker.stop()

    # ---------------------------------------------------------- figures
    arrived: dict[str, int] = center["arrived"]
    created = sum(r["created"] for r in reports)
    rows = [row for r in reports for row in r["outbox"]]
    up_lat = [arrived[eid] - created_ms for eid, created_ms, _st, _a in rows if eid in arrived]
    lost_up = [eid for eid, *_ in rows if eid not in arrived]
    unconfirmed = sum(1 for _e, _c, st, _a in rows if st != "confirmed")
    published: dict[str, list[Any]] = center["published"]
    received = {cid: ms for r in reports for cid, ms, _st in r["inbox"]}
    down_lat = [received[cid] - v[1] for cid, v in published.items() if cid in received]
    lost_down = [cid for cid in published if cid not in received]
    dt = s1[0] - s0[0]
    result = {
        "options": asdict(opts),
        "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                 "mosquitto": subprocess.run([MOSQUITTO, "-h"], capture_output=True, text=True,
                                             check=False).stdout.splitlines()[0:1]},
        "cold_start_s": round(cold_start_s, 1),
        "tls": {"enabled": opts.tls, "pki_s": round(pki_s, 1)},
        "uplink": {"fills_created": created, "rows": len(rows), "at_center": len(arrived),
                   "fills_per_s": round(created / load_s, 1), "latency": _lat(up_lat), "lost": len(lost_up),
                   "unconfirmed_after_drain": unconfirmed, "stations_not_drained": stuck,
                   "center_dedup_replays": center["replays"], "load_errors": load_errors},
        "downlink": {"published": len(published), "received": len(received), "lost": len(lost_down),
                     "per_s": round(len(published) / load_s, 1), "latency": _lat(down_lat),
                     "publish_timeouts": center["publish_timeouts"], "replayed_on_presence": center["replayed"]},
        "broker": {"packets_in_per_s": round((s1[1] - s0[1]) / dt, 1) if dt > 0 else None,
                   "packets_out_per_s": round((s1[2] - s0[2] - (s1[5] - s0[5])) / dt, 1) if dt > 0 else None,
                   "publish_in_per_s": round((s1[3] - s0[3]) / dt, 1) if dt > 0 else None,
                   "publish_out_per_s": round((s1[4] - s0[4] - (s1[5] - s0[5])) / dt, 1) if dt > 0 else None,
                   "cpu_percent": round(100 * (cpu1 - cpu0) / dt, 2) if dt > 0 else None,
                   "rss_idle_kb": rss_idle, "rss_connected_kb": rss_connected, "rss_load_kb": rss_load,
                   "rss_peak_kb": rss_peak,
                   "rss_per_station_kb": round((rss_connected - rss_idle) / opts.stations, 1)},
        "restart": storm,
    }
    result["ok"] = not lost_up and not lost_down and not stuck and unconfirmed == 0 and created == len(rows)
    return result


def markdown(r: dict[str, Any]) -> str:
    o, u, d, b, s = r["options"], r["uplink"], r["downlink"], r["broker"], r["restart"]
    lines = [
        f"| figure | {o['stations']} stations, {o['rate']} fills/s and {o['downlink']} commands/s each"
        f"{', MQTT over TLS with a certificate per station' if o.get('tls') else ''} |",
        "|---|---|",
        f"| uplink fills (HTTP relay → center) | {u['fills_created']} created, {u['at_center']} at center, "
        f"{u['fills_per_s']}/s |",
        f"| fill → center latency | p50 {u['latency']['p50_ms']} ms, p99 {u['latency']['p99_ms']} ms, "
        f"max {u['latency']['max_ms']} ms |",
        f"| downlink commands (MQTT QoS 1) | {d['published']} PUBACKed, {d['received']} in inboxes, "
        f"{d['per_s']}/s; {d['replayed_on_presence']} re-sent when a station came back online |",
        f"| center → station inbox latency | p50 {d['latency']['p50_ms']} ms, p99 {d['latency']['p99_ms']} ms, "
        f"max {d['latency']['max_ms']} ms |",
        f"| broker traffic ($SYS, steady phase, without the monitor's own) | PUBLISH {b['publish_in_per_s']}/s in, "
        f"{b['publish_out_per_s']}/s out; all MQTT packets {b['packets_in_per_s']}/s in, "
        f"{b['packets_out_per_s']}/s out; broker CPU {b['cpu_percent']} % of one core |",
        f"| broker RSS | idle {b['rss_idle_kb']} kB, {o['stations']} connected {b['rss_connected_kb']} kB, "
        f"under load {b['rss_load_kb']} kB, peak {b['rss_peak_kb']} kB (≈ {b['rss_per_station_kb']} kB/station) |",
    ]
    if s["mode"] != "none":
        lines += [
            f"| broker restart ({s['mode']}) | down {s['down_ms']} ms; all back in {s['all_reconnected_s']} s; "
            f"reconnect delay p50 {s['reconnect_delay_ms']['p50']} ms, p99 {s['reconnect_delay_ms']['p99']} ms, "
            f"max {s['reconnect_delay_ms']['max']} ms; {s['connection_attempts']} connection attempts |",
        ]
    lines.append(f"| loss | uplink {u['lost']} (unconfirmed after drain {u['unconfirmed_after_drain']}), "
                 f"downlink {d['lost']}; center dedup replays {u['center_dedup_replays']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stations", type=int, default=50)
    ap.add_argument("--workers", type=int, default=0, help="station processes (0: one per 50 stations)")
    ap.add_argument("--rate", type=float, default=0.5, help="fills per second per station")
    ap.add_argument("--downlink", type=float, default=0.2, help="center commands per second per station")
    ap.add_argument("--steady", type=float, default=30.0)
    ap.add_argument("--after", type=float, default=30.0)
    ap.add_argument("--restart", choices=("term", "kill", "none"), default="term")
    ap.add_argument("--replay-window", type=float, default=60.0,
                    help="center re-sends the last N s of commands to a station back online (0: off)")
    ap.add_argument("--tls", action="store_true", help="MQTT over TLS: per-station certificates + ACL")
    ap.add_argument("--json", type=Path, help="write the result here")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table too")
    a = ap.parse_args(argv)
    opts = FleetOptions(stations=a.stations, workers=a.workers, rate=a.rate, downlink=a.downlink,
                        steady_s=a.steady, after_s=a.after, restart=a.restart,
                        replay_window_s=a.replay_window, tls=a.tls)
    with tempfile.TemporaryDirectory(prefix="fleet-") as tmp:
        result = run_fleet(opts, Path(tmp), log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=2))
    if a.json:
        a.json.write_text(json.dumps(result, indent=2) + "\n")
    if a.markdown:
        print(markdown(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
