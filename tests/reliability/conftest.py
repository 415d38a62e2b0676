"""Fixtures for the reliability tests (the harness itself lives in ``reliability/``)."""

from __future__ import annotations
