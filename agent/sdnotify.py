"""A tiny ``sd_notify`` for systemd ``Type=notify`` services and the watchdog (no dependency).

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to the service;
a datagram with newline-separated ``KEY=VALUE`` lines tells it ``READY=1``, ``STATUS=…``,
``STOPPING=1`` or ``WATCHDOG=1``.  With ``WatchdogSec=`` set, systemd also passes ``WATCHDOG_USEC``
(and ``WATCHDOG_PID``), and restarts the service when no ``WATCHDOG=1`` arrives in time.

:class:`Watchdog` pings at half the interval from a daemon thread, but only while ``healthy()``
returns True — so a wedged store writer or event loop (whatever ``healthy`` checks) ends in a
restart instead of a zombie agent.  Outside systemd (no ``NOTIFY_SOCKET``) every call is a no-op
returning False, so the agent runs the same under ``forecourt demo`` and tests.

Limits: no file-descriptor passing (``FDSTORE``), no ``EXTEND_TIMEOUT_USEC`` helper (send it with
:func:`notify`).  ``NotifyAccess=main`` in the unit means only the main PID may send.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Mapping

__all__ = ["Watchdog", "notify", "notify_ready", "notify_status", "notify_stopping", "watchdog_interval_s"]

log = logging.getLogger(__name__)


def _address(env: Mapping[str, str]) -> str | None:
    addr = env.get("NOTIFY_SOCKET", "")
    if not addr:
        return None
    if addr.startswith("@"):
        return "\0" + addr[1:]
    if addr.startswith("/"):
        return addr
    return None  # vsock:… and other forms are not supported here


def notify(state: str, *, env: Mapping[str, str] | None = None) -> bool:
    """Send ``state`` (e.g. ``"READY=1\\nSTATUS=up"``) to systemd; False when not under systemd or on error."""
    addr = _address(os.environ if env is None else env)
    if addr is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.debug("sd_notify to %r failed: %s", addr, exc)
        return False
    return True


def notify_ready(status: str = "") -> bool:
    """``READY=1`` (plus ``STATUS=``): call once the local API answers and the lines are started."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def notify_status(status: str) -> bool:
    """Free text shown by ``systemctl status``."""
    return notify(f"STATUS={status}")


def notify_stopping() -> bool:
    """``STOPPING=1``: call when shutdown starts."""
    return notify("STOPPING=1")


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd expects pings within, or None when the watchdog is off for us."""
    e = os.environ if env is None else env
    try:
        usec = int(e.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    pid = e.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None
    return usec / 1e6 if usec > 0 else None


class Watchdog:
    """Pings ``WATCHDOG=1`` every ``interval_s / 2`` while ``healthy()`` is true (daemon thread).

    ``Watchdog.from_env(healthy)`` returns None when systemd did not ask for a watchdog.
    ``healthy`` must be quick and must not block (it runs on the watchdog thread); an exception
    counts as unhealthy.  Call :meth:`stop` on shutdown.
    """

    def __init__(self, interval_s: float, healthy: Callable[[], bool] | None = None, *,
                 env: Mapping[str, str] | None = None) -> None:
        if interval_s <= 0:
            raise ValueError("watchdog interval must be positive")
        self.interval_s = interval_s
        self.healthy = healthy or (lambda: True)
        self._env = env
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)
        self.pings = 0
        self.skipped = 0

    @classmethod
    def from_env(cls, healthy: Callable[[], bool] | None = None) -> Watchdog | None:
        interval = watchdog_interval_s()
        return cls(interval, healthy) if interval else None

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def _run(self) -> None:
        period = self.interval_s / 2
        while True:
            try:
                ok = bool(self.healthy())
            except Exception:  # any failure of the health probe is "not healthy"
                log.exception("watchdog health probe failed")
                ok = False
            if ok:
                notify("WATCHDOG=1", env=self._env)
                self.pings += 1
            else:
                self.skipped += 1
                log.warning("watchdog: agent unhealthy, not pinging systemd")
            if self._stop.wait(period):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
