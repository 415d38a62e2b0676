"""The Debian package: layout, units, maintainer scripts, upgrade rollback, and a full install.

The install tests use an isolated root made here: ``dpkg --root DIR --force-script-chrootless``
runs the real maintainer scripts with ``DPKG_ROOT=DIR`` (users go into DIR/etc/passwd via
``useradd --prefix``; nothing on this machine outside DIR changes).  They need root and dpkg.

* fast: a package with only the project wheel (``--no-deps``): layout, control, units, scripts,
  install / upgrade / remove / purge in a temp root (~10 s);
* slow (``-m slow``, still in the default run, ~1 min): the real package with every bundled wheel
  (repacked offline from .venv into build/wheels), installed into a temp root, configured by
  ``forecourt setup --scan`` against the pump simulator, the agent started from the installed
  environment against the simulators (pumps, trade center, Mosquitto), and the doctor says OK.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.conftest import ROOT, free_port

BUILD = ROOT / "packaging" / "build_deb.py"
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg-deb") is None or shutil.which("dpkg") is None,
                                reason="needs dpkg")
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("useradd") is None,
                                reason="installing into a temp root needs root and useradd")
REQUIRED_DEPENDS = ("python3 (>= 3.11)", "python3-venv", "fonts-wqy-microhei", "libgl1", "libxcb-cursor0",
                    "libegl1", "libxkbcommon0",
                    "libfontconfig1", "libdbus-1-3", "libglib2.0-0")
HARDENING = {
    "User": "forecourt", "SupplementaryGroups": "dialout", "StateDirectory": "forecourt",
    "StateDirectoryMode": "0700", "UMask": "0077", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
    "ProtectHome": "yes", "PrivateTmp": "yes", "DevicePolicy": "closed", "CapabilityBoundingSet": "",
    "Restart": "on-failure", "Type": "notify", "WatchdogSec": "30",
}


def build(out: Path, *extra: str, env: dict[str, str] | None = None) -> Path:
    proc = subprocess.run([sys.executable, str(BUILD), "--out-dir", str(out), "--compression", "gzip", *extra],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000", **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def make_root(root: Path) -> Path:
    """An empty system root: passwd/group with root and dialout, an empty dpkg database."""
    for d in ("etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    (root / "var/lib/dpkg/available").touch()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\ndialout:x:20:\n")
    (root / "etc/shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc/gshadow").write_text("root:*::\ndialout:*::\n")
    return root


def dpkg(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                           "--force-not-root", *args], capture_output=True, text=True, timeout=300)


def unit_settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def load_upgrade_db() -> ModuleType:
    spec = importlib.util.spec_from_file_location("upgrade_db", ROOT / "packaging" / "lib" / "upgrade_db.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------ fast
@pytest.fixture(scope="module")
def small_deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("dpkg-deb") is None:
        pytest.skip("needs dpkg-deb")
    return build(tmp_path_factory.mktemp("deb"), "--no-deps")


@needs_dpkg
def test_control_layout_and_reproducible(small_deb: Path, tmp_path: Path) -> None:
    info = subprocess.run(["dpkg-deb", "-f", str(small_deb)], capture_output=True, text=True, check=True).stdout
    fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line and not line.startswith(" "))
    assert fields["Package"] == "forecourt" and fields["Architecture"] in ("amd64", "arm64")
    for dep in REQUIRED_DEPENDS:
        assert dep in fields["Depends"], dep
    assert "mosquitto" in fields["Recommends"] and "mosquitto" not in fields["Depends"]
    listing = subprocess.run(["dpkg-deb", "-c", str(small_deb)], capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1].removeprefix(".") for line in listing.splitlines()}
    for path in ("/usr/lib/systemd/system/forecourt-agent.service",
                 "/usr/lib/systemd/user/forecourt-ui.service", "/usr/lib/udev/rules.d/61-forecourt-serial.rules",
                 "/etc/xdg/autostart/com.forecourt.Kiosk.desktop",
                 "/opt/forecourt/wheels/requirements.lock", "/opt/forecourt/lib/upgrade_db.py", "/usr/bin/forecourt",
                 "/usr/share/doc/forecourt/examples/mosquitto-bridge.conf",
                 "/usr/share/forecourt/station.toml.example"):
        assert path in names, path
    assert all(" root/root " in line for line in listing.splitlines())
    again = build(tmp_path, "--no-deps")
    assert hashlib.sha256(again.read_bytes()).digest() == hashlib.sha256(small_deb.read_bytes()).digest()


@needs_dpkg
def test_agent_unit_is_hardened_and_scripts_parse(small_deb: Path, tmp_path: Path) -> None:
    subprocess.run(["dpkg-deb", "-R", str(small_deb), str(tmp_path / "x")], check=True)
    unit = (tmp_path / "x/usr/lib/systemd/system/forecourt-agent.service").read_text()
    settings = unit_settings(unit)
    for key, want in HARDENING.items():
        assert want in settings.get(key, []), f"{key}={want}"
    assert settings["ExecStart"] == ["/opt/forecourt/venv/bin/forecourt agent --config /etc/forecourt/station.toml"]
    assert "char-ttyUSB rw" in settings["DeviceAllow"]
    for script in ("postinst", "prerm", "postrm"):
        p = tmp_path / "x/DEBIAN" / script
        assert os.access(p, os.X_OK)
        subprocess.run(["sh", "-n", str(p)], check=True)
    ui = unit_settings((tmp_path / "x/usr/lib/systemd/user/forecourt-ui.service").read_text())
    assert ui["ExecStart"] == ["/opt/forecourt/venv/bin/forecourt ui --kiosk"]
    assert ui["ConditionUser"] == ["forecourt-kiosk"]
    if shutil.which("systemd-analyze"):
        path = str(tmp_path / "x/usr/lib/systemd/system/forecourt-agent.service")
        proc = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
        # the ExecStart binary only exists after postinst; anything else is a unit error
        bad = [line for line in (proc.stdout + proc.stderr).splitlines()
               if line.strip() and "is not executable" not in line]
        assert not bad, proc.stderr
        sec = subprocess.run(["systemd-analyze", "security", "--offline=yes", path],
                             capture_output=True, text=True, timeout=60)
        score = re.search(r"Overall exposure level for forecourt-agent.service: ([0-9.]+)", sec.stdout)
        if score:  # older systemd-analyze has no --offline
            assert float(score.group(1)) <= 2.5, sec.stdout[-2000:]


@needs_dpkg
@needs_root
def test_install_upgrade_remove_purge_in_a_temp_root(small_deb: Path, tmp_path: Path) -> None:
    root = make_root(tmp_path / "root")
    proc = dpkg(root, "-i", str(small_deb))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    passwd = (root / "etc/passwd").read_text()
    assert "forecourt:" in passwd and "/usr/sbin/nologin" in passwd
    assert "dialout:x:20:forecourt" in (root / "etc/group").read_text()
    var = root / "var/lib/forecourt"
    assert oct(var.stat().st_mode & 0o777) == "0o700" and var.stat().st_uid != 0
    token = root / "etc/forecourt/api-token"
    assert oct(token.stat().st_mode & 0o777) == "0o640" and len(token.read_text().strip()) >= 32
    assert (root / "opt/forecourt/venv/bin/python").exists()
    assert (root / "etc/systemd/system/multi-user.target.wants/forecourt-agent.service").is_symlink()
    # data written by "the agent", then an upgrade (same package again) and a remove keep it
    (var / "sales-export.csv").write_text("kept\n")
    proc = dpkg(root, "-i", str(small_deb))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = dpkg(root, "-r", "forecourt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (var / "sales-export.csv").exists() and (root / "etc/forecourt/station.toml").exists()
    assert not (root / "opt/forecourt").exists()
    proc = dpkg(root, "-P", "forecourt")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not var.exists() and not (root / "etc/forecourt").exists()


def _old_db(path: Path) -> int:
    from agent.store.db import connect
    from agent.store.migrations import SCHEMA_VERSION, migrate

    conn = connect(path)
    migrate(conn, target=SCHEMA_VERSION - 1)
    conn.execute("INSERT INTO counters(name, value) VALUES ('receipt', 41)")
    conn.close()
    return SCHEMA_VERSION


def test_upgrade_db_backs_up_migrates_and_rolls_back(tmp_path: Path) -> None:
    mod = load_upgrade_db()
    db, backups = tmp_path / "forecourt.db", tmp_path / "backups"
    latest = _old_db(db)

    def broken(conn: sqlite3.Connection) -> int:
        from agent.store.migrations import migrate

        migrate(conn)  # the real steps commit...
        conn.execute("UPDATE counters SET value = 0")
        raise RuntimeError("step 99 failed")  # ...then a later one fails

    said: list[str] = []
    assert mod.upgrade(db, backups, "0.1.0-1", migrate_fn=broken, say=said.append) == mod.EXIT_ROLLED_BACK
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest - 1
    assert conn.execute("SELECT value FROM counters").fetchone()[0] == 41
    conn.close()
    assert "restored" in said[-1]
    assert mod.upgrade(db, backups, "0.1.0-1", say=said.append) == 0
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    conn.close()
    assert len(list(backups.glob("forecourt-before-0.1.0-1-*.db"))) >= 1
    assert mod.upgrade(db, backups, "x", say=said.append) == 0 and "already" in said[-1]
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {latest + 1}")
    conn.close()
    assert mod.upgrade(db, backups, "x", say=said.append) == mod.EXIT_TOO_NEW


# ------------------------------------------------------------------ slow: the real thing
@pytest.fixture
def simulators(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Pump bus simulator (4 pumps, TCP) as a process, the trade-center simulator and Mosquitto."""
    from sync.broker import start_mosquitto, stop_mosquitto
    from sync.center_sim.server import serve_center

    bus = free_port()
    env = {**os.environ, "FORECOURT_DEV": "1", "PYTHONUNBUFFERED": "1"}
    pumps = subprocess.Popen([sys.executable, "-m", "main", "sim", "pumps", "--simulate", "--pumps", "4",
                              "--tcp", f"127.0.0.1:{bus}", "--baud", "0"], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    broker_port = free_port()
    broker = start_mosquitto(broker_port, tmp_path / "mosquitto") if shutil.which("mosquitto") else None
    center = serve_center()
    try:
        assert pumps.stdout is not None
        first = pumps.stdout.readline()  # "pumps: socket://…" once it listens
        assert first.startswith("pumps:"), first
        yield {"bus": f"socket://127.0.0.1:{bus}", "center": center.url, "mqtt_port": str(broker_port)}
    finally:
        center.stop()
        if broker is not None:
            stop_mosquitto(broker)
        pumps.terminate()
        pumps.wait(10)
        if pumps.stdout is not None:
            pumps.stdout.close()


def _wait_ready(proc: subprocess.Popen[str], ready: Path, timeout_s: float) -> dict[str, object]:
    """Wait for the agent's ready file (written once the API answers) or its exit."""
    import selectors
    import time

    deadline = time.monotonic() + timeout_s
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = []
    while time.monotonic() < deadline:
        if ready.exists() and ready.stat().st_size:
            return dict(json.loads(ready.read_text()))
        if proc.poll() is not None:
            break
        for _key, _ in sel.select(timeout=0.2):
            seen.append(proc.stdout.readline())
    raise AssertionError(f"agent not ready (rc={proc.poll()}):\n{''.join(seen)}")


@pytest.mark.slow
@needs_dpkg
@needs_root
def test_full_package_installs_offline_runs_against_simulators_and_doctor_is_ok(
        tmp_path: Path, simulators: dict[str, str]) -> None:
    deb = build(tmp_path / "out", "--cache", str(ROOT / "build" / "wheels"))
    size_mb = deb.stat().st_size / 1e6
    root = make_root(tmp_path / "root")
    # no network namespace at all for the install (root may unshare): only the bundled wheels can work
    no_net = ["unshare", "--net", "--"] if shutil.which("unshare") else []
    offline = {**os.environ, "PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/none"}
    proc = subprocess.run([*no_net, "dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                           "--force-not-root", "-i", str(deb)], capture_output=True, text=True, timeout=300,
                          env=offline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    py = root / "opt/forecourt/venv/bin/python"
    etc, var = root / "etc/forecourt", root / "var/lib/forecourt"
    run_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # the installed environment imports its own copy of the project, not the checkout
    where = subprocess.run([str(py), "-c", "import agent, PySide6; print(agent.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True, env=run_env).stdout
    assert where.startswith(str(root / "opt/forecourt/venv")), where
    # a certificate for the doctor's expiry check
    cert = tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "365", "-subj", "/CN=test-ca", "-keyout", str(tmp_path / "ca.key"), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    api_port = free_port()
    setup = subprocess.run(
        [str(py), "-m", "launcher.setup_wizard", "--yes", "--config", str(etc / "station.toml"),
         "--station-id", "PKG01", "--center-url", simulators["center"], "--mqtt-port", simulators["mqtt_port"],
         "--ca-file", str(cert), "--api-port", str(api_port), "--db-path", str(var / "forecourt.db"),
         "--token-file", str(etc / "api-token"), "--grade", "92:92#汽油:789", "--grade", "95:95#汽油:839",
         "--line", f"bus1={simulators['bus']}", "--scan", "--scan-timeout", "0.05", "--nozzle-grades", "92,95",
         "--test"], cwd=tmp_path, capture_output=True, text=True, timeout=120, env=run_env)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "4 pump(s) answer" in setup.stdout

    # the agent does not run yet: the doctor probes the bus itself
    doctor = [str(py), "-m", "launcher.doctor_checks", "--config", str(etc / "station.toml")]
    before = subprocess.run(doctor, cwd=tmp_path, capture_output=True, text=True, timeout=120, env=run_env)
    assert "line bus1: socket://" in before.stdout and "4/4 pumps answer" in before.stdout, before.stdout

    ready = tmp_path / "ready.json"
    agent = subprocess.Popen([str(root / "opt/forecourt/venv/bin/forecourt"), "agent", "--config",
                              str(etc / "station.toml"), "--ready-file", str(ready)], cwd=tmp_path,
                             env={**run_env, "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        info = _wait_ready(agent, ready, 60)
        with urllib.request.urlopen(f"{info['url']}/health", timeout=5) as r:  # noqa: S310 - loopback
            assert json.load(r)["station_id"] == "PKG01"
        result = subprocess.run(doctor + ["--api", str(info["url"])], cwd=tmp_path, capture_output=True,
                                text=True, timeout=120, env=run_env)
        report = result.stdout
        assert result.returncode == 0, report + result.stderr
        assert "[FAIL]" not in report, report
        for needle in ("[OK  ] database: integrity ok", "[OK  ] disk", "[OK  ] center", "[OK  ] clock",
                       "[OK  ] certificate ca_file:", "[OK  ] pump 1 (bus1 0x50)", "(via agent)"):
            assert needle in report, f"{needle!r} missing in:\n{report}"
        if shutil.which("mosquitto"):
            assert "[OK  ] broker" in report, report
        # the project's own `forecourt doctor` (whatever main.py mounts) agrees
        plain = subprocess.run([str(root / "opt/forecourt/venv/bin/forecourt"), "doctor", "--config",
                                str(etc / "station.toml"), "--api", str(info["url"])],
                               cwd=tmp_path, capture_output=True, text=True, timeout=120, env=run_env)
        assert plain.returncode == 0, plain.stdout + plain.stderr
    finally:
        agent.terminate()
        agent.wait(30)
        if agent.stdout is not None:
            agent.stdout.close()
    print(f"\npackage {deb.name}: {size_mb:.1f} MB")

    # upgrade to revision 2 over a database one schema version behind: backup, migrate, new venv
    db = var / "forecourt.db"
    for suffix in ("", "-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    latest = _old_db(db)
    deb2 = build(tmp_path / "out2", "--cache", str(ROOT / "build" / "wheels"), "--revision", "2")
    proc = subprocess.run([*no_net, "dpkg", f"--root={root}", "--force-script-chrootless", "--force-depends",
                           "--force-not-root", "-i", str(deb2)], capture_output=True, text=True, timeout=300,
                          env=offline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"v{latest - 1} → v{latest}" in proc.stdout, proc.stdout
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest
    assert conn.execute("SELECT value FROM counters WHERE name = 'receipt'").fetchone()[0] == 41
    conn.close()
    assert len(list((var / "backups").glob("forecourt-before-0.1.0-1-*.db"))) == 1
    assert os.readlink(root / "opt/forecourt/venv") == "venvs/0.1.0-2"
    assert sorted(p.name for p in (root / "opt/forecourt/venvs").iterdir()) == ["0.1.0-1", "0.1.0-2"]


def test_download_platforms_are_the_ones_a_debian_12_device_can_load() -> None:
    """glibc 2.36: PySide6's aarch64 wheels after 6.8.0.x need 2.39 and must not be picked for arm64."""
    spec = importlib.util.spec_from_file_location("build_deb", BUILD)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    arm = mod.PIP_PLATFORMS["arm64"]
    assert "manylinux_2_31_aarch64" in arm and "manylinux_2_36_aarch64" in arm and "manylinux2014_aarch64" in arm
    assert not any(t.startswith(("manylinux_2_37", "manylinux_2_38", "manylinux_2_39")) for t in arm)
    assert "manylinux_2_28_x86_64" in mod.PIP_PLATFORMS["amd64"]


@pytest.mark.skipif(shutil.which("ldd") is None or shutil.which("apt-cache") is None, reason="needs ldd, apt-cache")
def test_depends_cover_every_library_the_bundled_qt_loads() -> None:
    """A device installed with plain ``apt install ./forecourt.deb`` (no Recommends) runs the kiosk UI:
    every shared library the bundled PySide6 (QtGui, QtWidgets, the xcb and offscreen platform
    plugins) links against belongs to a package in Depends or in their dependency closure."""
    spec = importlib.util.spec_from_file_location("build_deb", BUILD)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pyside = Path(importlib.util.find_spec("PySide6").origin or "").parent  # type: ignore[union-attr]
    objects = [pyside / "Qt/lib/libQt6Gui.so.6", pyside / "Qt/lib/libQt6Widgets.so.6",
               pyside / "Qt/lib/libQt6XcbQpa.so.6", pyside / "Qt/plugins/platforms/libqxcb.so",
               pyside / "Qt/plugins/platforms/libqoffscreen.so", pyside / "QtGui.abi3.so"]
    libs: set[str] = set()
    for obj in objects:
        assert obj.exists(), obj
        out = subprocess.run(["ldd", str(obj)], capture_output=True, text=True, check=True).stdout
        assert "not found" not in out, out
        libs |= {os.path.realpath(line.split("=>")[1].split()[0]) for line in out.splitlines()
                 if "=> /" in line and "PySide6" not in line and "shiboken" not in line}
    owners = set()
    for lib in sorted(libs):
        found = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        if found.returncode != 0:  # /usr/lib vs /lib (merged /usr): ask for the other spelling
            other = lib.removeprefix("/usr") if lib.startswith("/usr/") else "/usr" + lib
            found = subprocess.run(["dpkg", "-S", other], capture_output=True, text=True)
        assert found.returncode == 0, f"no package owns {lib}"
        owners.add(found.stdout.split(":")[0].strip())
    names = [d.split()[0] for d in mod.DEPENDS]
    closure = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends", "--no-suggests",
                              "--no-conflicts", "--no-breaks", "--no-replaces", "--no-enhances", *names],
                             capture_output=True, text=True, check=True).stdout
    have = {line.split(":")[0] for line in closure.splitlines() if line and not line.startswith((" ", "<"))}
    missing = sorted(owners - have)
    assert not missing, f"libraries of the bundled Qt come from packages not in Depends: {missing}"
