"""Reliability and security harness: exactly-once checker, crash loop, network faults, soak.

Outside the layered packages (like ``main.py``): it may import ``agent``, ``sync``, ``drivers``
and ``httpx``.  Heavy runs are driven by ``bench/crash_loop.py`` and ``bench/soak.py``; bounded
versions run in ``tests/reliability``.
"""

from __future__ import annotations
