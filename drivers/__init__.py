"""Pump drivers: the vendor-neutral API (:mod:`drivers.base`), the protocol packages and the registry.

Layering: ``agent`` uses only :mod:`drivers.base`; ``main.py`` builds drivers through
:func:`drivers.registry.create_line_driver`; only :mod:`drivers.transport` imports pyserial.
"""

from __future__ import annotations
