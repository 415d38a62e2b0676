"""agent.sdnotify against a real unix datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent import sdnotify


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_and_status_reach_the_socket(notify_socket: socket.socket) -> None:
    assert sdnotify.notify_ready("station S1")
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=station S1"
    assert sdnotify.notify_stopping()
    assert notify_socket.recv(4096) == b"STOPPING=1"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"forecourt-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdnotify.notify("WATCHDOG=1")
        assert sock.recv(64) == b"WATCHDOG=1"


def test_no_systemd_is_a_quiet_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdnotify.notify_ready() is False
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "nobody-listens"))
    assert sdnotify.notify("READY=1") is False
    assert sdnotify.Watchdog.from_env() is None or "WATCHDOG_USEC" in os.environ


def test_watchdog_interval_from_env() -> None:
    pid = str(os.getpid())
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 30.0
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval_s({"WATCHDOG_USEC": "x"}) is None
    assert sdnotify.watchdog_interval_s({}) is None


def test_watchdog_pings_only_while_healthy(notify_socket: socket.socket) -> None:
    healthy = threading.Event()
    healthy.set()
    wd = sdnotify.Watchdog(0.1, healthy.is_set).start()
    try:
        assert notify_socket.recv(64) == b"WATCHDOG=1"
        healthy.clear()
        # Drain pings sent before the flag flipped; afterwards the socket must stay silent.
        notify_socket.settimeout(0.3)
        with pytest.raises(TimeoutError):  # noqa: PT012 - drain, then expect silence
            while True:
                notify_socket.recv(64)
        assert wd.skipped >= 1
    finally:
        wd.stop()
