"""The driver contract (tests/drivers/contract.py), run once per protocol over real PTYs."""

from __future__ import annotations

from tests.drivers.contract import PumpDriverContract


class TestDartContract(PumpDriverContract):
    protocol = "dart"
    baudrate = 9600
    first_address = 0x50
    supports_suspend = True


class TestGilbarcoContract(PumpDriverContract):
    protocol = "gilbarco"
    baudrate = 5787
    first_address = 1
    supports_suspend = False  # PROTOCOLS.md 3.3: Suspend/Resume -> CommandFailed naming suspend/resume
