"""Gilbarco two-wire (TWOTP) current-loop pump protocol: codec, link, point, bus, driver."""

from __future__ import annotations
