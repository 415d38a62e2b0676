"""Which program is this: the installed distribution's version and, under the .deb, the package version.

``postinst`` writes the Debian version into each environment it makes
(``/opt/forecourt/venvs/<version>/forecourt-package-version``), so after an upgrade — or a failed
one that put the previous program back — ``/health`` and ``forecourt doctor`` say which build is
really running.
"""

from __future__ import annotations

import importlib.metadata
import sys
from pathlib import Path

__all__ = ["PACKAGE_VERSION", "VERSION"]


def _program_version() -> str:
    try:
        return importlib.metadata.version("forecourt")
    except importlib.metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0+source"


def _package_version() -> str | None:
    try:
        return (Path(sys.prefix) / "forecourt-package-version").read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


VERSION = _program_version()
PACKAGE_VERSION = _package_version()
