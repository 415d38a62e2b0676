"""``forecourt ui``: options and entry for the dual-screen UI process (PySide6 is imported only in ``run``).

The token is read from ``--token-file`` (default: ``$FORECOURT_TOKEN_FILE`` or
``var/demo/api-token``); it is never accepted on the command line, where other
users could read it in the process list.  With no display (no ``DISPLAY`` /
``WAYLAND_DISPLAY``) the UI renders offscreen, so ``--screenshot DIR
--quit-after S`` works on a headless box.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]

DEFAULT_API = "http://127.0.0.1:8640"
LANGS = ("zh_CN", "en")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api", default=os.environ.get("FORECOURT_API", DEFAULT_API),
                        help=f"local API base URL (default {DEFAULT_API})")
    parser.add_argument("--token-file", default=os.environ.get("FORECOURT_TOKEN_FILE", "var/demo/api-token"),
                        help="file holding the API token (default var/demo/api-token)")
    env_lang = os.environ.get("FORECOURT_LANG", "zh_CN")
    parser.add_argument("--lang", choices=LANGS, default=env_lang if env_lang in LANGS else "zh_CN",
                        help="language (default $FORECOURT_LANG, else zh_CN)")
    parser.add_argument("--kiosk", action="store_true",
                        help="device kiosk: cashier full screen; customer display only on a second screen")
    parser.add_argument("--single-window", action="store_true",
                        help="cashier window only (no customer display)")
    parser.add_argument("--screenshot", metavar="DIR", help="save cashier.png / customer.png before quitting")
    parser.add_argument("--quit-after", type=float, metavar="S", help="quit after S seconds (smoke runs)")


def run(args: argparse.Namespace) -> int:
    try:
        args.token = Path(args.token_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(f"forecourt ui: cannot read the API token: {exc}", file=sys.stderr)
        return 2
    if not args.token:
        print(f"forecourt ui: the token file {args.token_file} is empty", file=sys.stderr)
        return 2
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and "QT_QPA_PLATFORM" not in os.environ:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from ui.app import main

    return main(args)
