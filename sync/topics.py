"""MQTT topic names and payload envelopes shared by the station client and the center simulator.

Up (station → center): ``station/{id}/status`` (retained presence, also the last will),
``station/{id}/result`` (command results, informational).
Down (center → station): ``center/to/{id}/cmd/{kind}`` (commands, QoS 1),
``center/to/{id}/config/{name}`` (retained, versioned config: prices, promotions, catalog, grades).

Every payload is a JSON object with ``schema`` = :data:`SCHEMA_VERSION`.  Commands carry ``id``
(the dedup key), ``kind``, ``data`` and optionally ``expires_at_ms``; configs carry ``version`` and
``data``.  Limits: no wildcards in station ids (checked), payloads ≤ :data:`MAX_PAYLOAD` bytes.
"""

from __future__ import annotations

import re

__all__ = [
    "CONFIG_NAMES",
    "MAX_PAYLOAD",
    "SCHEMA_VERSION",
    "command_topic",
    "config_topic",
    "down_filter",
    "result_topic",
    "status_topic",
]

SCHEMA_VERSION = 1
MAX_PAYLOAD = 256 * 1024
CONFIG_NAMES = ("prices", "promotions", "catalog", "grades")

_STATION_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _sid(station_id: str) -> str:
    if not _STATION_RE.fullmatch(station_id):
        raise ValueError(f"station id {station_id!r} is not a valid topic level")
    return station_id


def status_topic(station_id: str) -> str:
    return f"station/{_sid(station_id)}/status"


def result_topic(station_id: str) -> str:
    return f"station/{_sid(station_id)}/result"


def down_filter(station_id: str) -> str:
    return f"center/to/{_sid(station_id)}/#"


def command_topic(station_id: str, kind: str) -> str:
    return f"center/to/{_sid(station_id)}/cmd/{kind}"


def config_topic(station_id: str, name: str) -> str:
    return f"center/to/{_sid(station_id)}/config/{name}"
