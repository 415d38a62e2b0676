"""Start a throwaway Mosquitto for tests and the demo (loopback, anonymous, optional persistence).

``start_mosquitto(port, workdir)`` writes ``workdir/mosquitto.conf`` and returns the running
``Popen`` once the port accepts connections.  Stop it with ``stop_mosquitto`` (SIGTERM: the
broker saves its persistence file, so a restart keeps sessions and queued messages).
Limits: not for production (no TLS, no ACL; see RELIABILITY §4 for the real broker config).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["MOSQUITTO", "start_mosquitto", "stop_mosquitto"]

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def _config(port: int, workdir: Path, persistence: bool) -> str:
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", f"persistence {str(persistence).lower()}",
             "max_queued_messages 10000", "log_type error", "log_type warning", "log_type notice",
             f"log_dest file {workdir / 'mosquitto.log'}"]
    if persistence:
        lines += [f"persistence_location {workdir}/", "autosave_interval 60"]
    if os.geteuid() == 0:  # otherwise mosquitto drops to user "mosquitto", which cannot write workdir
        lines.append("user root")
    return "\n".join(lines) + "\n"


def start_mosquitto(port: int, workdir: str | Path, *, persistence: bool = True,
                    timeout: float = 10.0) -> subprocess.Popen[bytes]:
    """Run ``mosquitto -c workdir/mosquitto.conf`` on 127.0.0.1:port; wait until it listens."""
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    conf = wd / "mosquitto.conf"
    conf.write_text(_config(port, wd, persistence), encoding="utf-8")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"mosquitto exited with {proc.returncode}: {err.strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            proc_wait = 0.02
            try:
                proc.wait(proc_wait)
            except subprocess.TimeoutExpired:
                pass
    stop_mosquitto(proc)
    raise RuntimeError(f"mosquitto did not listen on 127.0.0.1:{port} within {timeout}s")


def stop_mosquitto(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM (persistence is saved), then SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    if proc.stderr is not None:
        proc.stderr.close()
