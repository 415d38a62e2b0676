"""Driver + simulator over a real PTY (pyserial on the driver side), plus registry, CLI and decode."""

from __future__ import annotations

import argparse
import json
import socket
import time
from collections.abc import Iterator

import pytest

from drivers.base import (
    Authorize,
    ClearTransaction,
    CommandRejected,
    ConfigError,
    LineConfig,
    LineError,
    PumpConfig,
    PumpState,
    SetPrices,
)
from drivers.dart.decode import decode_hex
from drivers.dart.decode import run as decode_run
from drivers.dart.driver import DartLineDriver
from drivers.registry import create_line_driver
from drivers.sim import cli as sim_cli
from drivers.sim.control import start_control
from drivers.sim.scenario import load_scenario, run_scenario
from drivers.sim.simulator import PumpSimulator, SimulatorRefusedError
from drivers.transport import SerialTransport
from tests.drivers.contract import Events

PUMPS = 8


@pytest.fixture
def rig() -> Iterator[tuple[PumpSimulator, DartLineDriver, Events]]:
    sim = PumpSimulator(PUMPS, 2, simulate=True, speed=20, prices=(789, 812), baudrate=None, seed=3)
    url = sim.start_pty()
    events = Events(timeout=15.0)
    pumps = tuple(PumpConfig(i + 1, 0x50 + i, (1, 2)) for i in range(PUMPS))
    driver = DartLineDriver(LineConfig("line1", "dart", url, pumps, baudrate=115200), events.q.put)
    driver.start()
    try:
        assert events.wait(lambda: all(events.state(p) is PumpState.IDLE for p in range(1, PUMPS + 1)))
        yield sim, driver, events
    finally:
        driver.close()
        sim.close()


def concurrent_fills(sim: PumpSimulator, driver: DartLineDriver, ev: Events, litres: float) -> None:
    start = len(ev.finished())
    for p in range(1, PUMPS + 1):
        driver.submit(Authorize(p, (1 + p % 2,), preset_volume_ml=int(litres * 1000) + p * 10))
    assert ev.wait(lambda: all(ev.state(p) is PumpState.AUTHORIZED for p in range(1, PUMPS + 1)))
    for p in range(1, PUMPS + 1):
        sim.lift(p, 1 + p % 2)
    assert ev.wait(lambda: len(ev.finished()) >= start + PUMPS, 30)
    for f in ev.finished()[start:]:
        entry = [e for e in sim.ledger() if e.pump == f.pump_id][-1]
        assert (f.volume_ml, f.amount_fen, f.price_fen, f.nozzle) == (
            entry.volume_ml,
            entry.amount_fen,
            entry.price_fen,
            entry.nozzle,
        )
        assert f.volume_total_ml == entry.end_volume_total_raw * 10
        assert f.amount_total_fen == entry.end_amount_total_raw
    for p in range(1, PUMPS + 1):
        sim.hang(p)
        driver.submit(ClearTransaction(p))
    assert ev.wait(lambda: all(ev.state(p) is PumpState.IDLE for p in range(1, PUMPS + 1)))


def test_eight_concurrent_fills_match_the_ledger(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    sim, driver, ev = rig
    concurrent_fills(sim, driver, ev, 3.0)
    assert len(sim.ledger()) == PUMPS


def test_crc_noise_still_gives_correct_fills(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    sim, driver, ev = rig
    sim.set_faults(crc_error_rate=0.05)
    concurrent_fills(sim, driver, ev, 2.0)
    assert sim.line.errors_in > 0


def test_garbage_duplicates_and_truncation_never_crash(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    sim, driver, ev = rig
    sim.set_faults(garbage_rate=0.1, duplicate_rate=0.1, truncate_rate=0.05)
    concurrent_fills(sim, driver, ev, 2.0)
    assert driver._thread is not None and driver._thread.is_alive()


def test_offline_mid_fill_is_recovered(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    sim, driver, ev = rig
    driver.submit(Authorize(3))
    assert ev.wait(lambda: ev.state(3) is PumpState.AUTHORIZED)
    sim.lift(3, 1)
    assert ev.wait(lambda: ev.state(3) is PumpState.FUELLING)
    sim.offline(3)
    assert ev.wait(lambda: ev.state(3) is PumpState.OFFLINE)
    sim.hang(3)
    sim.online(3)
    assert ev.wait(lambda: len(ev.finished(3)) == 1)
    entry = sim.ledger()[-1]
    assert ev.finished(3)[0].volume_ml == entry.volume_ml > 0


def test_silent_pump_never_stalls_the_others(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    sim, driver, ev = rig
    sim.set_faults(silent=[5])
    assert ev.wait(lambda: ev.state(5) is PumpState.OFFLINE)
    driver.submit(Authorize(1, (1,), preset_volume_ml=2000))
    assert ev.wait(lambda: ev.state(1) is PumpState.AUTHORIZED)
    sim.lift(1, 1)
    assert ev.wait(lambda: len(ev.finished(1)) == 1, 10)
    assert ev.finished(1)[0].volume_ml == 2000


def test_power_cycle_mid_fill(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    sim, driver, ev = rig
    driver.submit(Authorize(2))
    assert ev.wait(lambda: ev.state(2) is PumpState.AUTHORIZED)
    sim.lift(2, 1)
    assert ev.wait(lambda: ev.state(2) is PumpState.FUELLING)
    sim.power_cycle(2, off_s=0.3)
    assert ev.wait(lambda: len(ev.finished(2)) == 1)
    assert ev.finished(2)[0].volume_ml == sim.ledger()[-1].volume_ml


def test_emergency_stop_all(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    sim, driver, ev = rig
    for p in (1, 2):
        driver.submit(Authorize(p))
    assert ev.wait(lambda: all(ev.state(p) is PumpState.AUTHORIZED for p in (1, 2)))
    sim.lift(1, 1)
    sim.lift(2, 1)
    assert ev.wait(lambda: all(ev.state(p) is PumpState.FUELLING for p in (1, 2)))
    t0 = time.monotonic()
    driver.emergency_stop()
    assert sim.wait_for(lambda: sim.pumps[0].status == 5 and sim.pumps[1].status == 5, 2.0)
    assert time.monotonic() - t0 < 1.0
    assert ev.wait(lambda: len(ev.finished()) == 2)


def test_driver_api_errors(rig: tuple[PumpSimulator, DartLineDriver, Events]) -> None:
    _, driver, _ = rig
    with pytest.raises(CommandRejected):
        driver.submit(SetPrices(99, ()))
    with pytest.raises(CommandRejected):
        driver.emergency_stop(99)
    assert driver.state(1) is PumpState.IDLE


def test_tcp_transport_and_control_socket() -> None:
    with PumpSimulator(2, 1, simulate=True, speed=20, prices=(700,), baudrate=None) as sim:
        url = sim.start_tcp()
        host, port = start_control(sim)
        ev = Events(timeout=15.0)
        config = LineConfig("tcp", "dart", url, (PumpConfig(1, 0x50), PumpConfig(2, 0x51)), baudrate=115200)
        driver = create_line_driver(config, ev.q.put)
        driver.start()
        try:
            assert ev.wait(lambda: ev.state(2) is PumpState.IDLE)
            driver.submit(Authorize(1, (), preset_amount_fen=1000))
            assert ev.wait(lambda: ev.state(1) is PumpState.AUTHORIZED)
            with socket.create_connection((host, port)) as conn, conn.makefile("rw") as fh:

                def call(msg: dict[str, object]) -> dict[str, object]:
                    fh.write(json.dumps(msg) + "\n")
                    fh.flush()
                    reply: dict[str, object] = json.loads(fh.readline())
                    return reply

                assert call({"cmd": "ping"}) == {"ok": True, "result": "pong"}
                assert call({"cmd": "lift", "pump": 1, "nozzle": 1})["ok"]
                assert call({"cmd": "wait_fills", "count": 1, "timeout": 10})["result"] is True
                ledger = call({"cmd": "ledger"})["result"]
                assert isinstance(ledger, list) and ledger[0]["amount_fen"] <= 1000
                assert call({"cmd": "status", "pump": 1})["ok"]
                assert call({"cmd": "faults", "crc_error_rate": 0.01})["ok"]
                assert not call({"cmd": "bogus"})["ok"]
                assert not call({"cmd": "faults", "nope": 1})["ok"]
            assert ev.wait(lambda: len(ev.finished(1)) == 1)
        finally:
            driver.close()


def test_scenario_file(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "s.toml"
    path.write_text('[[step]]\nat = 0.0\ncmd = "lift"\npump = 1\n[[step]]\nat = 0.01\ncmd = "hang"\npump = 1\n')
    with PumpSimulator(1, 1, simulate=True, prices=(700,)) as sim:
        assert run_scenario(sim, load_scenario(path)) == [True, True]
    jl = Path(str(tmp_path)) / "s.jsonl"
    jl.write_text('{"at": 0, "cmd": "ping"}\n')
    assert load_scenario(jl) == [{"at": 0, "cmd": "ping"}]
    jl.write_text('{"at": 0}\n')
    with pytest.raises(ConfigError):
        load_scenario(jl)


def test_simulator_refuses_outside_dev_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORECOURT_DEV", raising=False)
    with pytest.raises(SimulatorRefusedError):
        PumpSimulator(1)
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    assert sim_cli.run(parser.parse_args(["--pumps", "1"])) == 2
    monkeypatch.setenv("FORECOURT_DEV", "1")
    PumpSimulator(1).close()


def test_registry_and_transport_errors() -> None:
    bad = LineConfig("l", "no-such-protocol", "x", (PumpConfig(1, 0x50),))
    with pytest.raises(ConfigError):
        create_line_driver(bad, lambda e: None)
    with pytest.raises(LineError):
        SerialTransport("/dev/does-not-exist", 9600).open()
    with pytest.raises(LineError):
        SerialTransport("/dev/null", 9600).write(b"x")


def test_decode_command(capsys: pytest.CaptureFixture[str]) -> None:
    items = decode_hex(["50 36 01 01 02 03 04 00 21 80 11 0E 48 03 FA"], "dc")
    assert items[0]["transactions"][1] == {
        "trans": "03",
        "name": "DC3",
        "price": 2180,
        "nozzle": 1,
        "nozzle_out": True,
    }
    both = decode_hex(["50 20 FA 51 30 65 01 01", "22 83 03 FA", "50 38 01 01 08 9C 10 FB 03 FA"])
    assert both[0]["control"] == "POLL"
    assert both[1]["transactions"][0]["name"] == "CD101"
    assert both[2]["crc_ok"] is False
    parser = argparse.ArgumentParser()
    assert decode_run(argparse.Namespace(hex=["zz"], direction=None)) == 2
    assert decode_run(argparse.Namespace(hex=["50 70 FA"], direction="dc")) == 0
    assert json.loads(capsys.readouterr().out)[0]["control"] == "EOT"
    del parser
