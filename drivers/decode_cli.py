"""``forecourt proto decode [--protocol dart|gilbarco] HEX...``: one command for every protocol's decoder.

main.py mounts :func:`add_arguments` / :func:`run`; each protocol keeps its own decoder
(:mod:`drivers.dart.decode`, :mod:`drivers.gilbarco.decode`) with the same ``hex`` and
``--direction`` (``cd`` = to pump, ``dc`` = from pump) arguments.  ``--protocol`` defaults to ``dart``
so existing invocations keep working.  ``python -m drivers.decode_cli`` works too.
"""

from __future__ import annotations

import argparse
import sys

from drivers.dart import decode as dart_decode
from drivers.gilbarco import decode as gilbarco_decode

__all__ = ["PROTOCOLS", "add_arguments", "main", "run"]

PROTOCOLS = {"dart": dart_decode, "gilbarco": gilbarco_decode}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="dart", help="wire protocol (default dart)")
    dart_decode.add_arguments(parser)  # hex + --direction, identical for both protocols


def run(args: argparse.Namespace) -> int:
    code: int = PROTOCOLS[getattr(args, "protocol", "dart")].run(args)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="forecourt proto decode", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
