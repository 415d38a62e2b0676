"""Wayne DART: codec (frames, CRC, DLE), blocks (CD/DC transactions), fuelling point and bus
protocol (sans-IO), and the threaded line driver."""

from __future__ import annotations
