"""Who is calling: the station token (the device itself, full rights) or a cashier session token.

``Auth`` resolves the bearer token (constant-time compare for the station
token; session tokens are looked up by their hash) and returns the actor id
for audit entries; the role is kept on ``request.state.role``.  Endpoints that
need more than a cashier call ``require_role(request, "manager")``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request

from agent.errors import Forbidden, Unauthorized

__all__ = ["ROLE_RANK", "Auth", "require_role", "require_token"]

ROLE_RANK = {"cashier": 1, "supervisor": 2, "manager": 3, "station": 4}


def require_token(request: Request, token_q: Annotated[str | None, Query(alias="token")] = None) -> str:
    expected: str = request.app.state.api_token
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else (token_q or "")
    if given and hmac.compare_digest(given.encode(), expected.encode()):
        request.state.role = "station"
        return "station"
    checkout = getattr(request.app.state.agent, "checkout", None)
    if given and checkout is not None:
        session = checkout.cashiers.session(given)
        if session is not None:
            request.state.role = session["role"]
            return str(session["cashier_id"])
    raise Unauthorized("missing or wrong API token")


def require_role(request: Request, role: str) -> None:
    have = getattr(request.state, "role", "cashier")
    if ROLE_RANK[have] < ROLE_RANK[role]:
        raise Forbidden(f"this needs the {role} role (you are {have})", code="role", needed=role, have=have)


Auth = Annotated[str, Depends(require_token)]
