"""Composition root and CLI: ``forecourt <command>``.

Only this module builds concrete things (store, drivers, API server, sync
clients, windows).  A headless command never imports PySide6.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("forecourt")

EXIT_OK, EXIT_FAIL, EXIT_CONFIG, EXIT_STORE = 0, 1, 2, 3


# ---------------------------------------------------------------- agent
def cmd_agent(args: argparse.Namespace) -> int:
    from agent.api import ApiServer, create_app
    from agent.api.server import load_or_create_token
    from agent.config import ConfigError, load_config
    from agent.service import Agent
    from agent.store import StoreError
    from agent.store.db import Store

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    base = Path(args.config).resolve().parent
    from sync.tls import TlsConfigError, center_tls

    try:  # certificate files checked before anything starts; never a silent plain-text fallback
        tls = center_tls(config.center, base)
    except TlsConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    db_path = _resolve(base, args.db or config.database.path)
    try:
        store = Store(db_path)
    except StoreError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_STORE
    token = config.api.token or load_or_create_token(_resolve(base, config.api.token_file))
    agent = Agent(config, store)
    pumps = _start_pumps(agent, config) if not args.no_pumps else None
    checkout, sync = _start_checkout_and_sync(agent, config, sync_enabled=not args.no_sync, tls=tls, base=base)
    app = create_app(agent, token, allowed_hosts=set(config.api.allowed_hosts))
    from agent.printing import PrintQueue

    own = {t.id: t.printer_url for t in config.api.terminals if t.printer_url}
    printer = PrintQueue(agent, config.printer, preview_dir=db_path.parent / "receipts",
                         own_printers=frozenset(own))
    printer.start()
    app.state.printer = printer
    terminal_printers = [  # each checkout terminal's own printer and drawer
        PrintQueue(agent, config.printer.model_copy(update={"url": url}), terminal=tid,
                   preview_dir=db_path.parent / "receipts") for tid, url in own.items()]
    for q in terminal_printers:
        q.start()
    from agent.manager import ManagerService

    manager = ManagerService(agent)
    manager.start()
    app.state.manager = manager
    port = args.port if args.port is not None else config.api.port

    def close_services() -> None:
        printer.close()
        for q in terminal_printers:
            q.close()
        manager.close()
        if sync is not None:
            sync.stop()
        checkout.close()
        if pumps:
            pumps.close()
        agent.close()

    try:  # localhost by default; the station LAN only with TLS and per-terminal credentials
        server = ApiServer.from_config(app, config.api, base, port=port)
    except ValueError as exc:  # api.tls_cert / api.tls_key file missing
        print(f"config error: {exc}", file=sys.stderr)
        close_services()
        return EXIT_CONFIG
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def shutdown() -> None:
        from agent import sdnotify

        sdnotify.notify_stopping()
        server.stop()
        close_services()

    try:
        server.start()
    except RuntimeError as exc:
        print(f"local API: {exc}", file=sys.stderr)
        shutdown()
        return EXIT_FAIL
    log.info("agent for station %s listening on %s", config.station.id, server.url)
    if args.ready_file:
        Path(args.ready_file).write_text(json.dumps({"url": server.url, "pid": os.getpid()}))
    _notify_systemd(agent, server.url)
    print(f"forecourt agent: station {config.station.id}, API {server.url}", flush=True)
    stop.wait()
    shutdown()
    return EXIT_OK


def _start_checkout_and_sync(agent: Any, config: Any, *, sync_enabled: bool, tls: Any = None,
                             base: Path | None = None) -> tuple[Any, Any]:
    """The checkout (with the center as payment gateway) and the sync side (relay + MQTT)."""
    import httpx

    from agent.checkout.service import CheckoutService
    from sync.gateway import HttpCenterGateway

    c = config.center
    http = httpx.Client(base_url=c.url, timeout=httpx.Timeout(c.timeout_s, connect=min(c.timeout_s, 3.0)),
                        verify=tls or True)
    checkout = CheckoutService(agent, HttpCenterGateway(http, config.station.id))
    crash_at = os.environ.get("FORECOURT_CRASH_AT")
    if crash_at and os.environ.get("FORECOURT_DEV") == "1":  # crash tests only
        checkout.sagas.crash_at = crash_at
    checkout.start()
    sync = None
    if sync_enabled:
        from sync.runtime import start_sync

        sync = start_sync(agent, config, base=base)
    return checkout, sync


def _notify_systemd(agent: Any, url: str) -> None:
    """READY=1 and a watchdog that pings only while the store writer answers (no-op outside systemd)."""
    from agent import sdnotify

    def healthy() -> bool:
        try:
            agent.store.write(lambda db: db.execute("SELECT 1"), timeout=5.0)
        except Exception:  # a wedged or failing store: stop pinging, systemd restarts us
            return False
        return True

    sdnotify.notify_ready(f"API {url}")
    interval = sdnotify.watchdog_interval_s()
    if interval:
        sdnotify.Watchdog(interval, healthy).start()


def _start_pumps(agent: Any, config: Any) -> Any:
    """Start the forecourt controller with the real line drivers (none when no lines are configured)."""
    from agent.forecourt import Forecourt
    from drivers.registry import create_line_driver

    if not config.lines:
        return None
    forecourt = Forecourt(agent, create_line_driver)
    forecourt.start()
    return forecourt


def _resolve(base: Path, p: str) -> Path:
    q = Path(p)
    return q if q.is_absolute() else base / q


# ---------------------------------------------------------------- config
def cmd_config_check(args: argparse.Namespace) -> int:
    from agent.config import ConfigError, load_config

    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(f"{exc.source}: INVALID", file=sys.stderr)
        for p in exc.problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_CONFIG
    pumps = cfg.all_pumps()
    print(f"{args.file}: OK — station {cfg.station.id}, {len(cfg.grades)} grades, "
          f"{len(cfg.lines)} lines, {len(pumps)} pumps, {sum(len(p.nozzles) for p in pumps)} nozzles")
    return EXIT_OK


# ---------------------------------------------------------------- backup
def cmd_backup(args: argparse.Namespace) -> int:
    from agent.store import StoreError, backup

    src = Path(args.db)
    if not src.exists():
        print(f"no database at {src}", file=sys.stderr)
        return EXIT_FAIL
    dest = Path(args.out) if args.out else src.with_name(
        f"{src.stem}-backup-{__import__('time').strftime('%Y%m%d-%H%M%S')}{src.suffix}")
    bar = _Progress("backup")
    try:
        backup(src, dest, progress=bar.update)
    except StoreError as exc:
        bar.done()
        print(f"backup failed: {exc}", file=sys.stderr)
        return EXIT_FAIL
    bar.done()
    print(f"backup written and verified: {dest} ({dest.stat().st_size} bytes)")
    return EXIT_OK


class _Progress:
    """A one-line text progress bar on stderr."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()

    def update(self, done: int, total: int) -> None:
        if total <= 0:
            return
        width = 30
        filled = width * done // total
        line = f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {100 * done // total:3d}%"
        if self.tty or done == total:
            print(line, end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        print("", file=sys.stderr)


# ---------------------------------------------------------------- doctor
def cmd_doctor(args: argparse.Namespace) -> int:
    from launcher.doctor_checks import run

    rc: int = run(args)
    return rc


# ---------------------------------------------------------------- sync
def cmd_sync_status(args: argparse.Namespace) -> int:
    import httpx

    try:
        resp = httpx.get(args.api.rstrip("/") + "/api/v1/sync/status",
                         headers={"Authorization": f"Bearer {_token(args)}"}, timeout=5.0)
        resp.raise_for_status()
    except (httpx.HTTPError, OSError) as exc:
        print(f"agent not reachable at {args.api}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    print(json.dumps(resp.json(), indent=2, ensure_ascii=False))
    return EXIT_OK


def _token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    return Path(args.token_file).read_text(encoding="utf-8").strip()


# ---------------------------------------------------------------- report
def cmd_report_reconcile(args: argparse.Namespace) -> int:
    import datetime as dt

    import httpx

    from agent.config import ConfigError, load_config
    from agent.service import Agent
    from agent.store import StoreError
    from agent.store.db import Store
    from sync.http import CenterClient
    from sync.reconcile import reconcile

    try:
        dt.datetime.strptime(args.date, "%Y-%m-%d")
        config = load_config(args.config)
    except ValueError:
        print(f"--date: expected YYYY-MM-DD, got {args.date!r}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        store = Store(args.db or _resolve(Path(args.config).resolve().parent, config.database.path))
    except StoreError as exc:
        print(f"database error: {exc}", file=sys.stderr)
        return EXIT_STORE
    agent = Agent(config, store)
    try:
        with httpx.Client(base_url=config.center.url, timeout=config.center.timeout_s) as http:
            report = reconcile(agent, CenterClient(http, config.station.id), args.date)
    except httpx.HTTPError as exc:
        print(f"center not reachable at {config.center.url}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    finally:
        agent.close()
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return EXIT_OK


# ---------------------------------------------------------------- demo
def cmd_demo(args: argparse.Namespace) -> int:
    from launcher.demo import run_demo

    return run_demo(args)


# ---------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="forecourt", description="Forecourt station edge agent")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    a = sub.add_parser("agent", help="run the station agent (pumps, store, local API)")
    a.add_argument("--config", required=True, help="station config TOML")
    a.add_argument("--db", help="database path (default: from config, relative to it)")
    a.add_argument("--port", type=int, help="local API port (0 = any free port)")
    a.add_argument("--ready-file", help="write {url, pid} JSON here once the API answers")
    a.add_argument("--no-pumps", action="store_true", help="do not open the pump lines")
    a.add_argument("--no-sync", action="store_true", help="no trade-center relay or MQTT (offline bench use)")
    a.set_defaults(func=cmd_agent)

    d = sub.add_parser("demo", help="everything with simulators: agent, pumps, center, broker, UI")
    d.add_argument("--headless", action="store_true", help="no windows (screens render offscreen)")
    d.add_argument("--pumps", type=int, default=8, help="simulated pumps (default 8)")
    d.add_argument("--dir", default=None, help="working directory for the demo's files")
    d.add_argument("--port", type=int, default=8640, help="local API port")
    d.add_argument("--run-for", type=float, default=None, help="stop after N seconds (smoke tests)")
    d.add_argument("--no-traffic", action="store_true", help="no simulated customers")
    d.add_argument("--no-ui", action="store_true", help="do not start the UI")
    d.add_argument("--mixed", action="store_true", help="half the simulated pumps on a Gilbarco two-wire loop")
    d.set_defaults(func=cmd_demo)

    c = sub.add_parser("config", help="configuration tools")
    csub = c.add_subparsers(dest="config_command", required=True)
    cc = csub.add_parser("check", help="validate a config file (exit 2 when invalid)")
    cc.add_argument("file")
    cc.set_defaults(func=cmd_config_check)

    b = sub.add_parser("backup", help="online backup of the database, verified")
    b.add_argument("--db", required=True)
    b.add_argument("--out", help="target file (default: next to the database, timestamped)")
    b.set_defaults(func=cmd_backup)

    dr = sub.add_parser("doctor", help="health report for a technician (exit 1 on FAIL)")
    from launcher import doctor_checks

    doctor_checks.add_arguments(dr)  # --config --db --api --no-network --no-pumps
    dr.set_defaults(func=cmd_doctor)

    from launcher import support

    sb = sub.add_parser("support-bundle", help="one .tar.gz for support: doctor, redacted config, versions, "
                                               "database summary, journal (no secrets, no sales rows)")
    support.add_arguments(sb)
    sb.set_defaults(func=support.run)

    s = sub.add_parser("sync", help="trade-center sync tools")
    ssub = s.add_subparsers(dest="sync_command", required=True)
    ss = ssub.add_parser("status", help="outbox depth, oldest age, parked, last success")
    ss.add_argument("--api", default="http://127.0.0.1:8640")
    ss.add_argument("--token")
    ss.add_argument("--token-file", default="api-token")
    ss.set_defaults(func=cmd_sync_status)

    _add_optional_commands(sub)
    return p


def _add_optional_commands(sub: Any) -> None:
    """Commands whose modules live in other layers (simulators, protocol tools)."""
    sim = sub.add_parser("sim", help="simulators for demo and tests (needs FORECOURT_DEV=1 or --simulate)")
    simsub = sim.add_subparsers(dest="sim_command", required=True)
    try:
        from drivers.sim import cli as pump_sim_cli
    except ImportError:
        pump_sim_cli = None
    if pump_sim_cli is not None:
        sp = simsub.add_parser("pumps", help="DART pump bus simulator on a PTY or TCP port")
        pump_sim_cli.add_arguments(sp)
        sp.set_defaults(func=pump_sim_cli.run)
    from sync.center_sim import cli as center_sim_cli

    sc = simsub.add_parser("center", help="trade-center simulator: HTTP payment API + MQTT publisher")
    center_sim_cli.add_arguments(sc)
    sc.set_defaults(func=center_sim_cli.run)

    rep = sub.add_parser("report", help="reports")
    rsub = rep.add_subparsers(dest="report_command", required=True)
    rr = rsub.add_parser("reconcile", help="the day's trades vs the center's bill and settlement")
    rr.add_argument("--config", required=True, help="station config TOML")
    rr.add_argument("--date", required=True, help="UTC day YYYY-MM-DD")
    rr.add_argument("--db", help="database path (default: from config)")
    rr.set_defaults(func=cmd_report_reconcile)

    from ui import cli as ui_cli

    u = sub.add_parser("ui", help="the dual-screen UI (cashier window + customer display)")
    ui_cli.add_arguments(u)
    u.set_defaults(func=ui_cli.run)

    from launcher import setup_wizard

    st = sub.add_parser("setup", help="field setup wizard: ports, pumps, nozzles, station, center (writes a config)")
    setup_wizard.add_arguments(st)
    st.set_defaults(func=setup_wizard.run)

    proto = sub.add_parser("proto", help="pump protocol tools")
    psub = proto.add_subparsers(dest="proto_command", required=True)
    from drivers import decode_cli

    pd = psub.add_parser("decode", help="decode captured bus frames (hex) to JSON (--protocol dart|gilbarco)")
    decode_cli.add_arguments(pd)
    pd.set_defaults(func=decode_cli.run)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())

