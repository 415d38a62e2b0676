"""``forecourt proto decode --protocol dart HEX...``: decode captured DART bytes to JSON.

Each argument is one hex string (spaces allowed), fed in order to one decoder, so a frame may span
arguments.  ``direction`` is ``"cd"`` (controller to pump), ``"dc"`` (pump to controller) or None:
then DATA frames are decoded both ways and the known-transaction reading is kept (pump replies are
recognised by DC-only codes; ambiguous CD1/DC1 frames are reported in both readings).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from typing import Any

from drivers.dart.blocks import Block, Direction, RawBlock, block_code
from drivers.dart.codec import DecodeError, Decoder, Frame, Kind

__all__ = ["add_arguments", "decode_hex", "run"]


def _block(block: Block) -> dict[str, Any]:
    out: dict[str, Any] = {"trans": f"{block_code(block):02X}", "name": block.name}
    for f in fields(block):  # type: ignore[arg-type]
        value = getattr(block, f.name)
        out[f.name] = value.hex(" ") if isinstance(value, bytes) else list(value) if isinstance(value, tuple) else value
    return out


def _frame(frame: Frame, direction: Direction | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": f"{frame.address:02X}",
        "control": frame.kind.name,
        "tx": frame.tx,
        "crc_ok": True if frame.kind is Kind.DATA else None,
    }
    if frame.kind is Kind.DATA:
        out["direction"] = None if direction is None else direction.value
        out["transactions"] = [_block(b) for b in frame.blocks]
    return out


def _decode(data: list[bytes], direction: Direction) -> list[Frame | DecodeError]:
    decoder = Decoder(direction)
    items: list[Frame | DecodeError] = []
    for chunk in data:
        items += decoder.feed(chunk)
    if decoder.buffered:
        items.append(DecodeError("incomplete", decoder.clear()))
    return items


def decode_hex(hex_strings: list[str], direction: str | None = None) -> list[dict[str, Any]]:
    """Hex strings -> one JSON-able dict per frame or error (see module docstring)."""
    data = [bytes.fromhex(h) for h in hex_strings]
    if direction is not None:
        chosen = Direction(direction.lower())
        return [_item(i, chosen) for i in _decode(data, chosen)]
    cd, dc = _decode(data, Direction.TO_PUMP), _decode(data, Direction.FROM_PUMP)
    out = []
    for a, b in zip(cd, dc, strict=True):
        if isinstance(a, DecodeError) and isinstance(b, Frame):
            out.append(_item(b, Direction.FROM_PUMP))
            continue
        if isinstance(b, DecodeError) and isinstance(a, Frame):
            out.append(_item(a, Direction.TO_PUMP))
            continue
        if not isinstance(a, Frame) or not isinstance(b, Frame) or a.kind is not Kind.DATA:
            out.append(_item(a, None))
            continue
        raw_a = sum(isinstance(x, RawBlock) for x in a.blocks)
        raw_b = sum(isinstance(x, RawBlock) for x in b.blocks)
        if raw_a == raw_b:
            item = _item(a, Direction.TO_PUMP)
            item["as_pump_reply"] = _item(b, Direction.FROM_PUMP)["transactions"]
            out.append(item)
        else:
            out.append(_item(a, Direction.TO_PUMP) if raw_a < raw_b else _item(b, Direction.FROM_PUMP))
    return out


def _item(item: Frame | DecodeError, direction: Direction | None) -> dict[str, Any]:
    if isinstance(item, DecodeError):
        return {"error": item.reason, "raw": item.raw.hex(" "), "crc_ok": False if item.reason == "crc" else None}
    return _frame(item, direction)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("hex", nargs="+", help="frame bytes in hex, e.g. '50 30 05 06 00 11 75 ...'")
    parser.add_argument("--direction", choices=["cd", "dc"], default=None, help="cd = to pump, dc = from pump")


def run(args: argparse.Namespace) -> int:
    try:
        result = decode_hex(args.hex, args.direction)
    except ValueError as exc:
        sys.stderr.write(f"proto decode: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0
