"""``forecourt proto decode --protocol gilbarco HEX...``: decode captured Gilbarco two-wire words to JSON.

The arguments are joined into one word stream (a block may span arguments).  Gilbarco has no
framing, so the stream is cut into:

* blocks ``FF ... F0`` -> read as a transaction (4p reply), totals (5p reply), price change or
  preset (master); ``lrc_ok`` says whether the LRC matched; a block that fits no layout is an error;
* 8/9-word runs of data words ending ``FB E(lrc)`` -> real-time money (6p) / hose volume (7p);
* single words -> with ``--direction cd`` (master) a command ``cmd|pump``; with ``dc`` (pump) a status
  ``state|pump``; without a direction both readings are given when both are possible
  (``6p``/``7p`` are both money/volume requests and OFF/CALL statuses).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from drivers.gilbarco.codec import (
    ALL_STOP,
    BlockError,
    Cmd,
    Status,
    Word,
    lrc,
    parse_preset,
    parse_price,
)
from drivers.gilbarco.replies import (
    parse_money,
    parse_totals,
    parse_transaction,
    parse_volume,
)

__all__ = ["add_arguments", "decode_hex", "run"]

_BLOCKS = (
    ("transaction", parse_transaction),
    ("totals", parse_totals),
    ("price", parse_price),
    ("preset", parse_preset),
)


def _jsonable(value: object) -> dict[str, Any]:
    out = asdict(value)  # type: ignore[call-overload]
    if out.get("level") is not None:
        out["level"] = f"{out['level']:02X}"  # price level control word (F4 / F5)
    return {k: v.hex(" ").upper() if isinstance(v, bytes) else v for k, v in out.items()}


def _block(words: bytes) -> dict[str, Any]:
    raw = words.hex(" ").upper()
    lrc_ok = len(words) >= 4 and words[-3] == Word.LRC_NEXT and lrc(words[:-2]) == words[-2]
    for name, parse in _BLOCKS:
        try:
            return {"kind": name, "lrc_ok": True, "words": len(words), **_jsonable(parse(words)), "raw": raw}
        except BlockError:
            continue
    return {"error": "lrc" if not lrc_ok else "bad block", "lrc_ok": lrc_ok, "raw": raw}


def _pump(nibble: int) -> int:
    return 16 if nibble == 0 else nibble


def _word(word: int, direction: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"word": f"{word:02X}"}
    if word == ALL_STOP:
        return {**out, "kind": "command", "command": "ALL_STOP"}
    readings: dict[str, Any] = {}
    if direction in (None, "cd") and word >> 4 <= 7:
        readings["command"] = {"command": Cmd(word & 0xF0).name, "pump": _pump(word & 0x0F)}
    if direction in (None, "dc") and word >> 4 in {s.value for s in Status}:
        readings["status"] = {"state": Status(word >> 4).name, "pump": _pump(word & 0x0F)}
    if not readings:
        return {**out, "error": "not a command or status word"}
    if len(readings) == 1:
        ((kind, reading),) = readings.items()
        return {**out, "kind": kind, **reading}
    return {**out, "kind": "ambiguous", **{f"as_{k}": v for k, v in readings.items()}}


def _short(words: bytes) -> dict[str, Any] | None:
    for parse, name in ((parse_volume, "volume"), (parse_money, "money")):
        try:
            return {"kind": name, "lrc_ok": True, **_jsonable(parse(words)), "raw": words.hex(" ").upper()}
        except BlockError:
            continue
    return None


def decode_hex(hex_strings: list[str], direction: str | None = None) -> list[dict[str, Any]]:
    """Hex strings -> one JSON-able dict per block, reply or word (see module docstring)."""
    data = b"".join(bytes.fromhex(h) for h in hex_strings)
    out: list[dict[str, Any]] = []
    i = 0
    while i < len(data):
        if data[i] == Word.START:
            end = data.find(bytes((Word.END,)), i)
            if end < 0:
                out.append({"error": "incomplete", "raw": data[i:].hex(" ").upper()})
                break
            out.append(_block(data[i : end + 1]))
            i = end + 1
            continue
        short = None
        for n in (9, 8):
            if data[i] >> 4 == 0xE and i + n <= len(data) and data[i + n - 2] == Word.LRC_NEXT:
                short = _short(data[i : i + n])
                if short is not None:
                    out.append(short)
                    i += n
                    break
        if short is None:
            out.append(_word(data[i], direction))
            i += 1
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hex", nargs="+", help="words in hex, e.g. 'FF E5 F4 F6 E0 F7 E0 E7 E0 E1 FB E8 F0'")
    parser.add_argument("--direction", choices=["cd", "dc"], default=None, help="cd = to pump, dc = from pump")


def run(args: argparse.Namespace) -> int:
    try:
        result = decode_hex(args.hex, args.direction)
    except ValueError as exc:
        sys.stderr.write(f"proto decode: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0
