"""A throw-away Debian machine with a real systemd, booted from this machine's own root.

``BootedMachine`` mounts an overlay whose lower layer is ``/`` (read-only, never written) and whose
upper layer is a fresh tmpfs, then boots it with ``systemd-nspawn --boot``: systemd is PID 1 in
the container, so ``dpkg -i`` runs the package's maintainer scripts for real (no ``--root``),
``systemctl`` starts, restarts and watchdogs the agent as the unit file says (user, hardening,
``Type=notify``), and ``journalctl`` shows its logs.  Everything the container writes lands in the
tmpfs and is gone after ``close()``.  The container shares the host's network namespace, so
simulators started by the test on 127.0.0.1 are reachable from inside and the agent's API from
outside.

Needs root, ``systemd-nspawn`` (Debian ``systemd-container``), ``nsenter`` and overlayfs;
``available()`` says why not otherwise.  Units that would fight over host ports (mosquitto,
postgresql, ...) and timers are masked before boot.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

MASKED = ("mosquitto.service", "postgresql.service", "getty@tty1.service", "console-getty.service",
          "systemd-timesyncd.service", "e2scrub_reap.service", "apt-daily.timer", "apt-daily-upgrade.timer",
          "man-db.timer", "e2scrub_all.timer", "fstrim.timer", "dpkg-db-backup.timer", "logrotate.timer")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def available() -> str | None:
    """None when a machine can be booted here, else the reason it cannot."""
    if os.geteuid() != 0:
        return "booting a systemd container needs root"
    for tool in ("systemd-nspawn", "nsenter", "mount", "umount"):
        if shutil.which(tool) is None:
            return f"{tool} not found (Debian package systemd-container / util-linux)"
    if not Path("/usr/lib/systemd/systemd").exists():
        return "no /usr/lib/systemd/systemd in this root"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs"
    return None


class BootedMachine:
    """``with BootedMachine(binds={host_dir: "/srv/x"}) as m: m.run("systemctl", "status")``."""

    def __init__(self, *, binds: dict[Path, str] | None = None, size: str = "8G",
                 boot_timeout_s: float = 90.0) -> None:
        self.name = f"fc-{secrets.token_hex(3)}"
        self.binds = binds or {}
        self.size = size
        self.boot_timeout_s = boot_timeout_s
        self.base = Path(tempfile.mkdtemp(prefix="forecourt-machine-"))
        self.root = self.base / "merged"
        self.log_path = self.base.with_name(self.base.name + ".console.log")
        self.nspawn: subprocess.Popen[bytes] | None = None
        self.init_pid = 0
        self._mounted: list[Path] = []

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> BootedMachine:
        try:
            self.boot()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def boot(self) -> None:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size},mode=0755", "fcmachine", str(self.base)],
                       check=True, capture_output=True)
        self._mounted.append(self.base)
        for d in ("upper", "work", "merged"):
            (self.base / d).mkdir()
        subprocess.run(["mount", "-t", "overlay", "fcmachine", "-o",
                        f"lowerdir=/,upperdir={self.base / 'upper'},workdir={self.base / 'work'}", str(self.root)],
                       check=True, capture_output=True)
        self._mounted.append(self.root)
        # its own identity (journald refuses to share the host's) and no units that grab host ports
        (self.root / "etc/machine-id").write_text(secrets.token_hex(16) + "\n")
        (self.root / "etc/hostname").write_text(self.name + "\n")
        system = self.root / "etc/systemd/system"
        system.mkdir(parents=True, exist_ok=True)
        for unit in MASKED:
            target = system / unit
            if target.exists() or target.is_symlink():
                target.unlink()
            target.symlink_to("/dev/null")
        cmd = ["systemd-nspawn", "--quiet", "-D", str(self.root), "-M", self.name, "--boot", "--register=no",
               "--keep-unit", "--link-journal=no", "--console=pipe"]
        cmd += [f"--bind-ro={host}:{inside}" for host, inside in self.binds.items()]
        log = self.log_path.open("wb")
        self.nspawn = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        log.close()
        deadline = time.monotonic() + self.boot_timeout_s
        state = ""
        while state not in ("running", "degraded"):
            if self.nspawn.poll() is not None:
                raise RuntimeError(f"systemd-nspawn exited {self.nspawn.returncode}: {self.console()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"container not up after {self.boot_timeout_s} s (last state {state!r}): "
                                   f"{self.console()[-2000:]}")
            self.init_pid = self._init_of(self.nspawn.pid)
            if self.init_pid:
                # --wait blocks until the boot job ends once PID 1 answers on its bus ("offline" before that)
                state = self.run("systemctl", "is-system-running", "--wait", check=False,
                                 timeout=max(1.0, deadline - time.monotonic())).stdout.strip()
            if state not in ("running", "degraded"):
                time.sleep(0.1)  # PID 1 is still coming up: nothing to wait on from outside

    @staticmethod
    def _init_of(pid: int) -> int:
        """nspawn's child once it has become systemd (before that it is nspawn's own helper)."""
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                for kid in (task / "children").read_text().split():
                    if os.readlink(f"/proc/{kid}/exe").endswith("/systemd"):
                        return int(kid)
        except OSError:
            pass
        return 0

    def close(self) -> None:
        if self.nspawn is not None and self.nspawn.poll() is None:
            self.nspawn.send_signal(signal.SIGTERM)  # nspawn asks init for an orderly poweroff
            try:
                self.nspawn.wait(45)
            except subprocess.TimeoutExpired:
                os.killpg(self.nspawn.pid, signal.SIGKILL)
                self.nspawn.wait(10)
        if self.init_pid and Path(f"/proc/{self.init_pid}").exists():
            try:  # nspawn gone but its PID 1 left behind: killing it ends the whole PID namespace
                if os.readlink(f"/proc/{self.init_pid}/exe").endswith("/systemd"):
                    os.kill(self.init_pid, signal.SIGKILL)
            except OSError:
                pass
        for m in reversed(self._mounted):
            if subprocess.run(["umount", str(m)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(m)], capture_output=True)
        self._mounted.clear()
        shutil.rmtree(self.base, ignore_errors=True)
        self.log_path.unlink(missing_ok=True)

    # ------------------------------------------------------------ inside
    def run(self, *cmd: str, env: dict[str, str] | None = None, timeout: float = 120.0,
            check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside the container (all its namespaces, its root) as root."""
        assert self.init_pid, "not booted"
        full = ["nsenter", "-t", str(self.init_pid), "-a", "-r", "-w", "--", *cmd]
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input,
                              env={"PATH": PATH, "LANG": "C.UTF-8", "HOME": "/root", **(env or {})})
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} → exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def path(self, inside: str) -> Path:
        """The host path of a file inside the container (reads and writes go through the overlay)."""
        return self.root / inside.lstrip("/")

    def unit(self, name: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", name, "-p", ",".join(props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def console(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""
