"""Bearer-token check shared by every router."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Query, Request

from agent.errors import Unauthorized

__all__ = ["Auth", "require_token"]


def require_token(request: Request, token_q: Annotated[str | None, Query(alias="token")] = None) -> str:
    """Bearer token check (constant time); returns the caller's role."""
    expected: str = request.app.state.api_token
    header = request.headers.get("authorization", "")
    given = header[7:] if header.lower().startswith("bearer ") else (token_q or "")
    if not given or not hmac.compare_digest(given.encode(), expected.encode()):
        raise Unauthorized("missing or wrong API token")
    return "api"


Auth = Annotated[str, Depends(require_token)]
