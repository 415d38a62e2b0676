"""Lazy registry of line drivers by protocol name.

``create_line_driver(config, sink)`` imports the protocol's package only when a line uses it, so a
missing or broken backend is a :class:`~drivers.base.ConfigError` at configuration time, not an
import-time crash.  The simulator is deliberately *not* a registry entry: a production install can
only reach real pumps (or a simulator that a developer started on a port).
"""

from __future__ import annotations

import importlib

from drivers.base import ConfigError, EventSink, LineConfig, LineDriver

__all__ = ["DRIVERS", "create_line_driver"]

#: protocol name -> (module, class); imported on first use.
DRIVERS: dict[str, tuple[str, str]] = {
    "dart": ("drivers.dart.driver", "DartLineDriver"),
    "gilbarco": ("drivers.gilbarco.driver", "GilbarcoLineDriver"),
}


def create_line_driver(config: LineConfig, sink: EventSink) -> LineDriver:
    """Build (not start) the driver for ``config.protocol``; raises ConfigError."""
    try:
        module_name, class_name = DRIVERS[config.protocol]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise ConfigError(f"line {config.name}: unknown protocol {config.protocol!r} (known: {known})") from None
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"line {config.name}: driver {config.protocol!r} unavailable: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, LineDriver)):
        raise ConfigError(f"line {config.name}: {module_name}.{class_name} is not a LineDriver")
    driver: LineDriver = cls(config, sink)
    return driver
