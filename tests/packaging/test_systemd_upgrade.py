"""The package under a real systemd: install, sell, upgrade, a planted failing migration, recovery.

One booted container (``tests/packaging/machine.py``: this machine's root as a read-only overlay,
systemd as PID 1, ``dpkg -i`` with the real maintainer scripts, no ``--root``).  Three packages:

* ``0.1.0-1`` — this tree;
* ``0.1.1-1`` — this tree + one expand-only migration (vN+1: a column on orders, backfilled);
* ``0.1.2-1`` — vN+1, a vN+2 step that commits, and a vN+3 step that fails on the station's real data.

N is this tree's ``agent.store.migrations.SCHEMA_VERSION``: the planted steps are appended after the
shipped ones, so the test follows whatever schema the tree has.

The pump simulator (TCP), the trade-center simulator and Mosquitto run on the host; the container
shares its network.  Customers fill and a cashier pays through the agent's API (``reliability.traffic``).

What a field technician relies on, checked here:
1. the agent runs as ``forecourt`` (dialout) under systemd, ``Type=notify`` ready, logs in journald;
   the kiosk program (the XDG autostart entry's) brings the UI up on the display as
   ``forecourt-kiosk`` and it connects to the agent (screenshot ``kiosk-under-systemd.png``);
2. 0.1.0 → 0.1.1 backs up the database, migrates it and restarts the service on the new program:
   every paid order is still there, byte for byte, and the station sells on;
3. 0.1.1 → 0.1.2 fails in postinst: the database is restored from the backup (schema vN+1, every
   order, no trace of vN+2), the previous program is put back and the service is running it
   (``/health`` says 0.1.1-1) and selling; dpkg reports the package half-configured;
4. reinstalling 0.1.1-1 (the documented recovery) configures cleanly;
5. a frozen agent is restarted by the watchdog (drop-in ``WatchdogSec=2``), a killed one by
   ``Restart=on-failure``; ``dpkg -r`` keeps the data.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.store.migrations import SCHEMA_VERSION
from drivers.sim.simulator import PumpSimulator
from reliability.rig import TOKEN, seed_members, station_toml
from reliability.traffic import Cashier, Customer, OpsLog
from sync.broker import start_mosquitto, stop_mosquitto
from sync.center_sim.server import serve_center
from tests.conftest import free_port
from tests.packaging import machine
from tests.packaging.releases import FAILING, GOOD_COMMITS, GOOD_EXPAND, build_release

why_not = machine.available()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(why_not is not None, reason=str(why_not))]

UNIT = "forecourt-agent.service"
DB = "/var/lib/forecourt/forecourt.db"
DPKG_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
PUMPS = 4
V0 = SCHEMA_VERSION  #: the schema of this tree (0.1.0); 0.1.1 adds one step
V1 = SCHEMA_VERSION + 1


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.2) -> Any:
    """Poll ``cond`` (state in another process: systemd, the agent) until truthy or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("debs")
    return {"0.1.0-1": build_release(out, "0.1.0"),
            "0.1.1-1": build_release(out, "0.1.1", [GOOD_EXPAND]),
            "0.1.2-1": build_release(out, "0.1.2", [GOOD_EXPAND, GOOD_COMMITS, FAILING])}


class Station:
    """Host side: simulators, the agent's API from outside, the station's database through the overlay."""

    def __init__(self, m: machine.BootedMachine, sim: PumpSimulator, api_port: int, config: str) -> None:
        self.m, self.sim, self.api_port, self.config = m, sim, api_port, config
        self.url = f"http://127.0.0.1:{api_port}"
        self.ops = OpsLog()

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:  # noqa: S310 - loopback
                return dict(json.load(r))
        except OSError:
            return None

    def service(self) -> dict[str, str]:
        return self.m.unit(UNIT, "ActiveState", "SubState", "MainPID", "NRestarts", "Result", "User",
                           "WatchdogUSec", "WatchdogTimestampMonotonic")

    def running(self, package: str) -> dict[str, Any]:
        """The service is active and its API answers as ``package``; returns /health."""
        def ok() -> dict[str, Any] | None:
            h = self.health()
            return h if h and h.get("package") == package and self.service()["ActiveState"] == "active" else None
        return dict(wait_until(ok, 60, f"the agent of {package} to answer"))

    def sell(self, paid: int, seed: int) -> None:
        """Customers fill at every pump and a cashier pays until ``paid`` more orders are paid."""
        stop = threading.Event()
        start = self.ops.counts.get("pay.paid", 0)
        people: list[threading.Thread] = [Customer(self.sim, p, self.api_port, stop, self.ops, seed=seed + p,
                                                   max_ml=8_000) for p in range(1, PUMPS + 1)]
        cashier = Cashier(self.api_port, stop, self.ops, seed=seed, refund_rate=0.1)
        people.append(cashier)
        for t in people:
            t.start()
        try:
            wait_until(lambda: self.ops.counts.get("pay.paid", 0) - start >= paid, 120, f"{paid} paid orders")
        finally:
            stop.set()
            for t in people:
                t.join(15)
            cashier.close()
        # the counter settles what is left: no fill stays unpaid, no order stays open
        settle = Cashier(self.api_port, threading.Event(), self.ops, seed=seed + 99, refund_rate=0.0)
        late = {p: Customer(self.sim, p, self.api_port, threading.Event(), self.ops, seed=seed + p, max_ml=2_000)
                for p in range(1, PUMPS + 1)}
        try:
            def settled() -> bool:
                for row in self.open_work():
                    if row[0] == "fill" and row[3] == "authorized":
                        late[int(row[2])]._one()  # authorized when the customer had left: one comes to fill
                settle.round()
                return not self.open_work()
            try:
                wait_until(settled, 60, "every fill paid")
            except AssertionError as exc:
                journal = self.m.run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat", "-n", "60").stdout
                pumps = {p: self.sim.status(p) for p in range(1, PUMPS + 1)}
                raise AssertionError(f"{exc}: still open {self.open_work()}; ops {self.ops.counts}; "
                                     f"pumps {pumps}; journal:\n{journal}") from None
        finally:
            settle.close()
            for c in late.values():
                c.api.close()

    def open_work(self) -> list[tuple[Any, ...]]:
        """Fills not yet paid and orders not yet settled (what a shift close would list)."""
        with self.db() as conn:
            fills = conn.execute("SELECT 'fill', fill_id, pump_id, state, volume_ml FROM fills"
                                 " WHERE state NOT IN ('paid', 'zero')").fetchall()
            orders = conn.execute("SELECT 'order', order_id, receipt_no, state, payable_fen FROM orders"
                                  " WHERE state = 'init'").fetchall()
        return list(fills) + list(orders)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.m.path(DB)}?mode=ro", uri=True, timeout=10)

    def orders(self) -> list[tuple[Any, ...]]:
        """Every order with its lines and payments, as the database holds them."""
        with self.db() as conn:
            rows = conn.execute(
                "SELECT o.order_id, o.receipt_no, o.state, o.total_fen, o.discount_fen, o.payable_fen,"
                " (SELECT group_concat(l.kind || ':' || l.amount_fen || ':' || l.volume_ml, ',') FROM order_lines l"
                "  WHERE l.order_id = o.order_id),"
                " (SELECT group_concat(p.tender || ':' || p.amount_fen || ':' || p.state, ',') FROM payments p"
                "  WHERE p.order_id = o.order_id)"
                " FROM orders o ORDER BY o.order_id").fetchall()
        return list(rows)

    def schema(self) -> tuple[int, list[tuple[Any, ...]]]:
        with self.db() as conn:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            objects = conn.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        return version, list(objects)

    def doctor(self) -> Any:
        return self.m.run("forecourt", "doctor", "--config", "/etc/forecourt/station.toml", "--api", self.url,
                          timeout=120, check=False)

    def kiosk(self, shots: Path) -> None:
        """The device's display (Xvfb) and the kiosk autostart program as ``forecourt-kiosk``, as lightdm's
        autologin session would run it: the UI must come up on the display and connect to the agent."""
        m = self.m
        ui_env = m.path("/etc/forecourt/ui.env")
        ui_env.write_text(ui_env.read_text().replace("http://127.0.0.1:8640", self.url))
        # /tmp inside is the container's own tmpfs: look there, not through the overlay
        n = next(i for i in range(71, 99) if m.run("test", "-e", f"/tmp/.X{i}-lock", check=False).returncode)
        m.run("systemd-run", "--unit=fc-display", "--", "/usr/bin/Xvfb", f":{n}", "-screen", "0", "1280x800x24",
              "-nolisten", "tcp", "-ac")
        wait_until(lambda: m.run("test", "-S", f"/tmp/.X11-unix/X{n}", check=False).returncode == 0, 30,
                   "the display")
        m.run("systemd-run", "--unit=fc-kiosk", "--uid=forecourt-kiosk", f"--setenv=DISPLAY=:{n}",
              "--", "/opt/forecourt/lib/forecourt-kiosk")
        kiosk_uid = m.run("id", "-u", "forecourt-kiosk").stdout.strip()

        def ui_connected() -> bool:
            ss = m.run("ss", "-Htne", "state", "established", f"( dport = :{self.api_port} )").stdout
            return f"uid:{kiosk_uid}" in ss
        wait_until(ui_connected, 60, "the kiosk UI to connect to the agent")
        # and it is let in: the agent has served it the event stream (a refused token never gets that far)
        wait_until(lambda: (self.health() or {}).get("event_streams", 0) >= 1, 30, "the kiosk UI's event stream")
        grab = ("import sys\nfrom PySide6.QtGui import QGuiApplication\napp = QGuiApplication(sys.argv[:1])\n"
                "app.primaryScreen().grabWindow(0).save(sys.argv[1])\n")

        def drawn() -> bool:
            m.run("/opt/forecourt/venv/bin/python", "-c", grab, "/root/kiosk.png", env={"DISPLAY": f":{n}"})
            from PySide6.QtGui import QImage
            img = QImage(str(m.path("/root/kiosk.png")))
            colours = {img.pixel(x, y) for x in range(0, img.width(), 16) for y in range(0, img.height(), 16)}
            return len(colours) > 12  # a painted window, not an empty root
        wait_until(drawn, 60, "the kiosk UI on the display", every=1.0)
        shots.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(m.path("/root/kiosk.png"), shots / "kiosk-under-systemd.png")
        assert "restarting" not in m.run("journalctl", "-t", "forecourt-kiosk", "--no-pager").stdout
        m.run("systemctl", "stop", "fc-kiosk", "fc-display")

    def dpkg_i(self, deb: Path) -> Any:
        # no network at all for dpkg and the maintainer scripts (a station without internet): the
        # Python environment can only come from the wheels in the package; systemctl still reaches
        # systemd over its unix socket
        return self.m.run("unshare", "--net", "--", "dpkg", "-i", f"/srv/debs/{deb.name}", env=DPKG_ENV,
                          timeout=600, check=False)

    def status(self) -> str:
        return str(self.m.run("dpkg-query", "-W", "-f", "${Status} ${Version}", "forecourt").stdout)


@pytest.fixture
def station(tmp_path: Path, debs: dict[str, Path]) -> Iterator[Station]:
    sim = PumpSimulator(PUMPS, 1, simulate=True, speed=20.0, baudrate=None, seed=7)
    bus = sim.start_tcp()
    broker_port = free_port()
    broker = start_mosquitto(broker_port, tmp_path / "mosquitto")
    center = serve_center(mqtt=("127.0.0.1", broker_port))
    seed_members(center, 2, 10_000_000)
    api_port = free_port()
    deb_dir = next(iter(debs.values())).parent
    try:
        with machine.BootedMachine(binds={deb_dir: "/srv/debs"}) as m:
            config = station_toml(api_port=api_port, db_path=DB, bus_url=bus, center_url=center.url,
                                  mqtt_port=broker_port, pumps=PUMPS, station_id="SYS01")
            config = config.replace(f'token = "{TOKEN}"', 'token_file = "/etc/forecourt/api-token"')
            assert "token_file" in config
            yield Station(m, sim, api_port, config)
    finally:
        center.stop()
        stop_mosquitto(broker)
        sim.close()


def test_upgrades_under_systemd_keep_every_order_and_a_failed_migration_keeps_the_old_version_running(
        station: Station, debs: dict[str, Path], tmp_path: Path) -> None:
    shots = Path(os.environ.get("FORECOURT_SCREENSHOTS") or tmp_path / "screenshots")
    st, m = station, station.m

    # ---- 1. install 0.1.0-1 on the "device", configure it, the service runs under systemd
    proc = st.dpkg_i(debs["0.1.0-1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert st.status() == "install ok installed 0.1.0-1"
    assert m.run("systemctl", "is-enabled", UNIT).stdout.strip() == "enabled"
    assert "forecourt" in m.run("id", "-nG", "forecourt").stdout and "dialout" in m.run("id", "-nG", "forecourt").stdout
    # the package's own token file (0640 forecourt:forecourt-ui, read by the agent and the kiosk UI)
    # holds the harness's token, so the customers and the cashier on the host can call the API
    token = m.path("/etc/forecourt/api-token")
    assert oct(token.stat().st_mode & 0o777) == "0o640"
    token.write_text(TOKEN + "\n")
    m.path("/etc/forecourt/station.toml").write_text(st.config, encoding="utf-8")
    m.run("forecourt", "config", "check", "/etc/forecourt/station.toml")
    m.run("systemctl", "restart", UNIT, timeout=120)  # Type=notify: returns once the agent says READY=1
    h = st.running("0.1.0-1")
    assert (h["version"], h["schema_version"]) == ("0.1.0", V0)
    svc = st.service()
    assert svc["User"] == "forecourt" and svc["WatchdogUSec"] == "30s", svc
    doctor = st.doctor()
    assert doctor.returncode == 0 and "[FAIL]" not in doctor.stdout, doctor.stdout + doctor.stderr
    assert "4/4 pumps answer" in doctor.stdout or "[OK  ] pump 4" in doctor.stdout, doctor.stdout

    st.kiosk(shots)

    st.sell(12, seed=1)
    before = st.orders()
    assert sum(1 for o in before if o[2] in ("paid", "closed")) >= 12
    journal = m.run("journalctl", "-u", UNIT, "--no-pager", "-o", "cat").stdout
    assert "forecourt agent: station SYS01" in journal, journal[-3000:]

    # ---- 2. upgrade to 0.1.1-1: backup, migrate vN → vN+1, restart on the new program, every order kept
    pid_before = st.service()["MainPID"]
    proc = st.dpkg_i(debs["0.1.1-1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"v{V0} → v{V1}" in proc.stdout, proc.stdout
    h = st.running("0.1.1-1")
    assert (h["version"], h["schema_version"]) == ("0.1.1", V1)
    assert st.service()["MainPID"] != pid_before
    assert st.orders() == before
    with st.db() as conn:
        assert {r[0] for r in conn.execute("SELECT DISTINCT channel FROM orders")} == {"till"}
    backups = sorted(p.name for p in m.path("/var/lib/forecourt/backups").iterdir())
    assert any(b.startswith("forecourt-before-0.1.0-1-") for b in backups), backups
    st.sell(3, seed=2)  # the station sells on the new program
    kept = st.orders()
    assert set(before) < set(kept)
    v_kept, schema_kept = st.schema()
    assert v_kept == V1

    # ---- 3. 0.1.2-1 with a failing vN+3: postinst fails, the old database and the old program stay
    pid_before = st.service()["MainPID"]
    proc = st.dpkg_i(debs["0.1.2-1"])
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "MIGRATION FAILED" in out and "restored" in out, out
    assert st.status() == "install ok half-configured 0.1.2-1"
    assert st.schema() == (v_kept, schema_kept)  # vN+1, no order_marks table, no vN+3 index
    assert st.orders() == kept
    assert m.run("readlink", "/opt/forecourt/venv").stdout.strip() == "venvs/0.1.1-1"
    h = st.running("0.1.1-1")
    assert (h["version"], h["schema_version"]) == ("0.1.1", V1)
    assert st.service()["MainPID"] != pid_before  # stopped for the upgrade, started again on 0.1.1
    st.sell(2, seed=3)  # and it still sells
    assert len(st.orders()) > len(kept)
    doctor = st.doctor()
    assert doctor.returncode == 1, doctor.stdout
    assert "[FAIL] package: forecourt 0.1.2-1 is half-configured" in doctor.stdout, doctor.stdout
    assert f"program 0.1.1, package 0.1.1-1, schema v{V1}" in doctor.stdout, doctor.stdout

    # ---- 4. the documented recovery: reinstall the previous package
    proc = st.dpkg_i(debs["0.1.1-1"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert st.status() == "install ok installed 0.1.1-1"
    st.running("0.1.1-1")
    assert sorted(p.name for p in m.path("/opt/forecourt/venvs").iterdir()) == ["0.1.1-1"]
    final = st.orders()
    assert set(kept) <= set(final)
    doctor = st.doctor()
    assert doctor.returncode == 0 and "[OK  ] package: forecourt 0.1.1-1 installed" in doctor.stdout, doctor.stdout
    # what the technician sends to support: the journal comes from the real journald
    bundle = m.run("forecourt", "support-bundle", "--out", "/root", timeout=180).stdout.strip().splitlines()[-1]
    with tarfile.open(m.path(bundle)) as tar:
        files = {Path(t.name).name: tar.extractfile(t).read().decode() for t in tar.getmembers()}  # type: ignore[union-attr]
    assert "forecourt agent: station SYS01" in files["journal.txt"], files["journal.txt"][-2000:]
    assert "venv on disk: 0.1.1-1 (in use)" in files["versions.txt"], files["versions.txt"]
    assert "forecourt-before-0.1.1-1-" in files["backups.txt"], files["backups.txt"]
    assert TOKEN not in "".join(files.values())

    # ---- 5. watchdog and restart: a frozen agent is killed and restarted, so is a crashed one
    dropin = m.path(f"/etc/systemd/system/{UNIT}.d/10-test-watchdog.conf")
    dropin.parent.mkdir(parents=True, exist_ok=True)
    dropin.write_text("[Service]\nWatchdogSec=2\nTimeoutAbortSec=2\n")
    m.run("systemctl", "daemon-reload")
    m.run("systemctl", "restart", UNIT, timeout=120)
    st.running("0.1.1-1")
    first = st.service()
    # pings arrive (the agent reads WATCHDOG_USEC and pings at half of it): the timestamp moves on
    wait_until(lambda: st.service()["WatchdogTimestampMonotonic"] != first["WatchdogTimestampMonotonic"], 10,
               "a watchdog ping")
    assert st.service()["MainPID"] == first["MainPID"]
    m.run("systemctl", "kill", "-s", "STOP", UNIT)  # frozen: no more pings
    wait_until(lambda: st.service()["MainPID"] not in ("0", first["MainPID"]), 30, "the watchdog restart")
    st.running("0.1.1-1")
    assert int(st.service()["NRestarts"]) >= 1
    second = st.service()["MainPID"]
    m.run("systemctl", "kill", "-s", "KILL", UNIT)  # crashed
    wait_until(lambda: st.service()["MainPID"] not in ("0", second), 30, "Restart=on-failure")
    st.running("0.1.1-1")
    assert set(final) <= set(st.orders())
    journal = m.run("journalctl", "-u", UNIT, "--no-pager").stdout
    assert "Watchdog timeout" in journal, journal[-3000:]

    # ---- 6. remove keeps the sales
    proc = m.run("dpkg", "-r", "forecourt", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert m.run("systemctl", "is-active", UNIT, check=False).stdout.strip() != "active"
    assert set(final) <= set(st.orders())
