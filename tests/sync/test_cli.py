"""``forecourt sim center`` wiring: refuses without the dev flag, serves and stops with --run-for."""

from __future__ import annotations

import argparse

import httpx
import pytest

from sync.center_sim import cli
from tests.conftest import free_port


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p.parse_args(list(argv))


def test_refuses_without_dev_flag(monkeypatch, capsys) -> None:
    monkeypatch.delenv("FORECOURT_DEV", raising=False)
    assert cli.run(_args("--no-mqtt", "--run-for", "0")) == 2
    assert "refusing" in capsys.readouterr().out


def test_bad_knob_is_a_usage_error() -> None:
    with pytest.raises(SystemExit):
        _args("--bill-amount-delta", "no-equals-sign")


def test_serves_seeded_config_and_stops(tmp_path) -> None:
    import threading

    port = free_port()
    state = tmp_path / "center.json"
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(cli.run(_args(
        "--simulate", "--no-mqtt", "--http", f"127.0.0.1:{port}", "--state", str(state), "--run-for", "1"))))
    t.start()
    body = None
    for _ in range(200):
        try:
            body = httpx.get(f"http://127.0.0.1:{port}/station/S001/config", timeout=1.0).json()
            break
        except httpx.TransportError:
            threading.Event().wait(0.02)
    t.join(10)
    assert result == [0]
    assert body is not None and body["data"]["prices"]["version"] == 2
    assert state.exists()
