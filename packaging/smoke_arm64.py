#!/usr/bin/env python3
"""Smoke-test the arm64 package on this amd64 machine: a Debian 12 arm64 root under qemu-user.

    python packaging/smoke_arm64.py [--deb dist/forecourt_0.1.0-1_arm64.deb] [--root build/arm64-root]

1. registers ``qemu-aarch64`` with binfmt_misc (Debian ``qemu-user-static``; flag F, so it works
   in a chroot) unless it is registered already;
2. makes a Debian 12 arm64 root with ``debootstrap`` (python3, python3-venv and the package's
   Depends; kept in ``build/arm64-root`` for the next run);
3. installs the package there as a technician would, ``apt-get install --no-install-recommends
   ./forecourt_…_arm64.deb`` (the Depends come from the Debian mirror — a missing one shows up
   here; the Python environment is made offline from the bundled wheels, ``PIP_NO_INDEX``; the
   maintainer scripts run as arm64 code);
4. starts the arm64 agent as user ``forecourt`` against the pump simulator and the trade-center
   simulator running natively on the host, fills and pays a sale through the local API;
5. renders the arm64 UI offscreen (PySide6's aarch64 wheel) and saves ``arm64-cashier.png``.

Prints what it did with timings; exit 0 when every step worked.  Needs root and Debian's
``qemu-user-static`` and ``debootstrap`` (about 5 min the first time, mostly the emulated
``debootstrap --second-stage``).  Not part of ``scripts/test.sh``: emulation is too slow for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

BINFMT = Path("/proc/sys/fs/binfmt_misc")
INCLUDE = ("python3,python3-venv,fonts-wqy-microhei,libegl1,libxkbcommon0,libfontconfig1,libdbus-1-3,"
           "libglib2.0-0,passwd,procps")
MIRROR = "http://deb.debian.org/debian"


def step(msg: str) -> float:
    print(f"== {msg}", flush=True)
    return time.monotonic()


def done(t0: float, what: str = "") -> None:
    print(f"   ok{(': ' + what) if what else ''} ({time.monotonic() - t0:.0f} s)", flush=True)


def ensure_binfmt() -> None:
    if not (BINFMT / "register").exists():
        subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(BINFMT)], check=True)
    if (BINFMT / "qemu-aarch64").exists():
        return
    conf = Path("/usr/lib/binfmt.d/qemu-aarch64.conf")
    if not conf.exists():
        raise SystemExit("qemu-user-static is not installed: apt-get install qemu-user-static debootstrap")
    (BINFMT / "register").write_text(conf.read_text().strip() + "\n")


def ensure_root(root: Path) -> None:
    if (root / ".forecourt-ready").exists():
        return
    if not (root / "debootstrap").exists() and not (root / "usr/bin/python3").exists():
        subprocess.run(["debootstrap", "--arch=arm64", "--variant=minbase", "--foreign", f"--include={INCLUDE}",
                        "bookworm", str(root), MIRROR], check=True, stdout=subprocess.DEVNULL)
    if (root / "debootstrap").exists():
        subprocess.run(["chroot", str(root), "/debootstrap/debootstrap", "--second-stage"], check=True,
                       stdout=subprocess.DEVNULL)
    (root / ".forecourt-ready").touch()


class Mounts:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.done: list[Path] = []

    def __enter__(self) -> Mounts:
        for src, dst, opts in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--rbind"]),
                               ("tmpfs", "tmp", ["-t", "tmpfs"])):
            target = self.root / dst
            subprocess.run(["mount", *opts, src, str(target)], check=True)
            self.done.append(target)
        return self

    def __exit__(self, *exc: object) -> None:
        for target in reversed(self.done):
            subprocess.run(["umount", "-R", "-l", str(target)], check=False)


def chroot(root: Path, *cmd: str, user: str | None = None, env: dict[str, str] | None = None,
           timeout: float = 1800, check: bool = True) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}
    full = ["chroot", *([f"--userspec={user}:{user}"] if user else []), str(root), *cmd]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, env={**base, **(env or {})})
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} → {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--deb", default=str(ROOT / "dist" / "forecourt_0.1.0-1_arm64.deb"))
    p.add_argument("--root", default=str(ROOT / "build" / "arm64-root"))
    p.add_argument("--shots", default=str(ROOT / "build" / "arm64-shots"))
    a = p.parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("needs root (binfmt, debootstrap, chroot)")
    deb, root = Path(a.deb).resolve(), Path(a.root).resolve()
    if not deb.exists():
        raise SystemExit(f"{deb} missing: python packaging/build_deb.py --arch arm64 --download")

    t = step("qemu-aarch64 via binfmt_misc")
    ensure_binfmt()
    done(t)
    t = step(f"Debian 12 arm64 root in {root}")
    ensure_root(root)
    done(t, chroot(root, "uname", "-m").stdout.strip() + ", " + chroot(root, "python3", "-V").stdout.strip())

    from drivers.sim.simulator import PumpSimulator
    from reliability.rig import TOKEN, free_port, seed_members, station_toml
    from reliability.traffic import Cashier, Customer, OpsLog
    from sync.center_sim.server import serve_center

    with Mounts(root):
        t = step(f"apt-get install ./{deb.name}: Depends from the Debian mirror, the rest offline (arm64 code)")
        shutil.copyfile(deb, root / "tmp" / deb.name)
        shutil.copyfile("/etc/resolv.conf", root / "etc/resolv.conf")
        chroot(root, "dpkg", "--purge", "forecourt")  # a new station each run: no data of an earlier one
        chroot(root, "apt-get", "update", "-qq")
        inst = chroot(root, "apt-get", "install", "-y", "-qq", "--no-install-recommends", f"/tmp/{deb.name}",
                      env={"PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/none",
                           "DEBIAN_FRONTEND": "noninteractive"})
        arch = chroot(root, "/opt/forecourt/venv/bin/python", "-c",
                      "import platform, PySide6; print(platform.machine(), 'PySide6', PySide6.__version__)").stdout
        done(t, arch.strip() + f"; {inst.stdout.count('forecourt:')} postinst messages")

        sim = PumpSimulator(2, 1, simulate=True, speed=20.0, baudrate=None, seed=3)
        center = serve_center()
        seed_members(center, 1, 1_000_000)
        api_port = free_port()
        config = station_toml(api_port=api_port, db_path="/var/lib/forecourt/forecourt.db", bus_url=sim.start_tcp(),
                              center_url=center.url, mqtt_port=free_port(), pumps=2, station_id="ARM64")
        config = config.replace(f'token = "{TOKEN}"', 'token_file = "/etc/forecourt/api-token"')
        (root / "etc/forecourt/station.toml").write_text(config, encoding="utf-8")
        (root / "etc/forecourt/api-token").write_text(TOKEN + "\n")
        agent = subprocess.Popen([shutil.which("chroot") or "/usr/sbin/chroot", "--userspec=forecourt:forecourt",
                                  str(root),
                                  "/opt/forecourt/venv/bin/forecourt", "agent",
                                  "--config", "/etc/forecourt/station.toml"],
                                 env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"},
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            t = step("arm64 agent as user forecourt, against the host's simulators")
            assert agent.stdout is not None
            lines: list[str] = []
            reader = threading.Thread(target=lambda: lines.extend(iter(agent.stdout.readline, "")), daemon=True)
            reader.start()
            health: dict[str, object] = {}
            deadline = time.monotonic() + 300
            while not health:
                if agent.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"agent did not come up (rc={agent.poll()}):\n{''.join(lines)[-3000:]}")
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=2) as r:
                        health = json.load(r)
                except OSError:
                    time.sleep(0.5)  # the emulated agent is still starting: nothing to wait on
            done(t, f"/health program {health.get('version')} package {health.get('package')}")

            t = step("a fill at pump 1 and its cash payment through the arm64 agent")
            ops, stop = OpsLog(), threading.Event()
            customer = Customer(sim, 1, api_port, stop, ops, seed=1, max_ml=5_000)
            customer._one()  # one fill: authorize, lift, flow, hang up
            cashier = Cashier(api_port, stop, ops, seed=1, refund_rate=0.0, item_rate=0.0)
            cashier.tender.clear()
            deadline = time.monotonic() + 120
            while ops.counts.get("pay.paid", 0) < 1:
                if time.monotonic() > deadline:
                    raise SystemExit(f"no paid order: {ops.counts} {ops.items[-5:]}")
                cashier.round()
                time.sleep(0.5)  # the emulated agent settles the fill
            cashier.close()
            done(t, f"{ops.counts}")
        finally:
            agent.terminate()
            agent.wait(60)
            center.stop()
            sim.close()

        t = step("arm64 UI rendered offscreen (zh_CN)")
        shots = Path(a.shots)
        ui = chroot(root, "/opt/forecourt/venv/bin/forecourt", "ui", "--api", "http://127.0.0.1:9",
                    "--token-file", "/etc/forecourt/api-token", "--screenshot", "/tmp/shots", "--quit-after", "8",
                    env={"QT_QPA_PLATFORM": "offscreen", "HOME": "/tmp"}, check=False, timeout=600)
        shots.mkdir(parents=True, exist_ok=True)
        got = sorted((root / "tmp/shots").glob("*.png"))
        for png in got:
            shutil.copyfile(png, shots / f"arm64-{png.name}")
        if ui.returncode != 0 or not got:
            raise SystemExit(f"UI failed ({ui.returncode}):\n{ui.stderr[-3000:]}")
        done(t, ", ".join(str(shots / f"arm64-{p.name}") for p in got))
    print("arm64 package: installs, runs, sells and renders")
    return 0


if __name__ == "__main__":
    sys.exit(main())
