"""Errors of the domain core; the API maps each to an HTTP status and a machine-readable body.

Tree::

    AgentError            (code, message, details)
     ├── Unauthorized     401  no or wrong API token
     ├── Forbidden        403  the caller's role may not do this
     ├── InvalidRequest   422  the request is malformed or breaks a rule; nothing changed
     ├── NotFound         404  no such order / pump / fill
     ├── Conflict         409  the state does not allow it now (fill already claimed, pump busy)
     └── Unavailable      503  needs the center or a device that is not reachable now
"""

from __future__ import annotations

from typing import Any

__all__ = ["AgentError", "Conflict", "Forbidden", "InvalidRequest", "NotFound", "Unauthorized", "Unavailable"]


class AgentError(Exception):
    status = 400
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class InvalidRequest(AgentError):
    status = 422
    code = "invalid_request"


class NotFound(AgentError):
    status = 404
    code = "not_found"


class Conflict(AgentError):
    status = 409
    code = "conflict"


class Unavailable(AgentError):
    status = 503
    code = "unavailable"


class Unauthorized(AgentError):
    status = 401
    code = "unauthorized"


class Forbidden(AgentError):
    status = 403
    code = "forbidden"
