"""The local API: HTTP + Server-Sent Events on localhost, bearer token, OpenAPI at /openapi.json."""

from __future__ import annotations

from agent.api.app import create_app
from agent.api.server import ApiServer

__all__ = ["ApiServer", "create_app"]
