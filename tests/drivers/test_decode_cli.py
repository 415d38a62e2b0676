"""``forecourt proto decode``: the --protocol dispatcher and the Gilbarco word decoder."""

from __future__ import annotations

import argparse
import json

import pytest

from drivers import decode_cli
from drivers.gilbarco.decode import decode_hex

GOLDEN_4P = "FF F1 F8 EB E1 E0 E0 E2 F6 E2 F4 F7 E0 E7 E0 E1 F9 E0 E6 E3 E3 E2 E0 FA E0 E0 E0 E5 E2 E0 FB EC F0"


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    decode_cli.add_arguments(parser)
    return decode_cli.run(parser.parse_args(argv))


def test_gilbarco_stream_is_cut_into_blocks_replies_and_words() -> None:
    items = decode_hex(
        [GOLDEN_4P[:20], GOLDEN_4P[20:], "22 D2", "FF E5 F4 F6 E0 F7 E0 E7 E0 E1 FB E8 F0", "E5 E4 E3 E2 E1 E0 FB E6"]
    )
    assert [i.get("kind") for i in items] == ["transaction", "command", "status", "price", "money"]
    assert (items[0]["hose"], items[0]["ppu"], items[0]["volume"], items[0]["money"]) == (2, 1070, 23360, 25000)
    assert items[0]["level"] == "F4" and items[0]["lrc_ok"] is True
    assert items[1] == {"word": "22", "kind": "command", "command": "DATA", "pump": 2}
    assert items[2] == {"word": "D2", "kind": "status", "state": "SEND_DATA", "pump": 2}
    assert items[4]["money"] == 12345


def test_gilbarco_direction_and_errors() -> None:
    assert decode_hex(["61"], "dc")[0] == {"word": "61", "kind": "status", "state": "OFF", "pump": 1}
    assert decode_hex(["60"], "cd")[0] == {"word": "60", "kind": "command", "command": "MONEY", "pump": 16}
    assert decode_hex(["FC"])[0]["command"] == "ALL_STOP"
    bad = decode_hex([GOLDEN_4P.replace("FB EC", "FB ED")])[0]
    assert bad["error"] == "lrc" and bad["lrc_ok"] is False
    assert decode_hex(["FF E5"])[0]["error"] == "incomplete"
    assert "error" in decode_hex(["A5"], "cd")[0]


def test_dispatcher_chooses_the_protocol(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["--protocol", "gilbarco", GOLDEN_4P]) == 0
    assert json.loads(capsys.readouterr().out)[0]["kind"] == "transaction"
    assert _run(["50 70 FA", "--direction", "dc"]) == 0  # default protocol: dart
    assert json.loads(capsys.readouterr().out)[0]["control"] == "EOT"
    assert _run(["--protocol", "gilbarco", "zz"]) == 2
    assert decode_cli.main(["--protocol", "gilbarco", "FC"]) == 0
