"""Who is calling: the station token, a checkout terminal, or a cashier session on a terminal.

Credentials, strongest first:

* the **station token** (the device the agent runs on; full rights, role ``station``);
* a **terminal token** (``[[api.terminals]]``, only its SHA-256 is configured):
  the terminal itself acts as ``terminal:<id>`` with role ``terminal`` (rank of a
  cashier: it can log cashiers in and sell, never change prices or do a
  supervisor's work);
* a **cashier session** (``POST /api/v1/session/login``): the cashier acts in
  their own name and role.

Every call also resolves *which terminal* it comes from, kept on
``request.state.terminal_id`` (``None`` when unknown): the terminal whose token
was presented (as the bearer, or in ``X-Terminal-Token`` next to a cashier's
session bearer), or, from a loopback client only, the ``X-Terminal-Id`` it
claims.  A cashier session is bound to the first terminal that uses it; the same
session presented by another terminal is refused (a stolen session token is
useless on another device).  The store records the terminal on each order
(migration 8).

``TerminalGate`` (installed by ``ApiServer``) refuses every call but ``/health``
from a non-loopback client that does not prove a registered terminal, so on the
station LAN nothing (not even the login) is reachable without a terminal
credential.  Limits: tokens are bearer secrets (TLS keeps them off the wire;
there is no client-certificate pinning); terminals are configured, not enrolled
at run time; no rate limit here.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from agent.errors import Forbidden, Unauthorized

__all__ = ["ROLE_RANK", "Auth", "TerminalGate", "Terminals", "identify_terminal", "is_loopback",
           "require_role", "require_token", "terminal_of"]

ROLE_RANK = {"cashier": 1, "terminal": 1, "supervisor": 2, "manager": 3, "station": 4}

TERMINAL_TOKEN_HEADER = "x-terminal-token"
TERMINAL_ID_HEADER = "x-terminal-id"
_TERMINAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Terminals:
    """The configured terminals; a presented token matches by its SHA-256 (constant-time compare)."""

    def __init__(self, hashes: Mapping[str, str] | None = None) -> None:
        self._hashes = {tid: h.lower() for tid, h in (hashes or {}).items()}

    @classmethod
    def from_config(cls, terminals: Iterable[Any]) -> Terminals:
        """From ``ApiConfig.terminals`` (objects with ``id`` and ``token_sha256``)."""
        return cls({str(t.id): str(t.token_sha256) for t in terminals})

    def __bool__(self) -> bool:
        return bool(self._hashes)

    def __contains__(self, terminal_id: object) -> bool:
        return terminal_id in self._hashes

    def match(self, token: str) -> str | None:
        """The id of the terminal owning ``token``, or ``None``; every entry is compared (no early exit)."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode()).hexdigest().encode()
        found: str | None = None
        for tid, h in self._hashes.items():
            if hmac.compare_digest(digest, h.encode()):
                found = tid
        return found


def is_loopback(host: str | None) -> bool:
    """True for 127/8, ::1 (also IPv4-mapped) and a unix socket (no peer address)."""
    if not host:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _bearer(headers: Mapping[str, str], query_token: str | None) -> str:
    header = headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else (query_token or "")


def identify_terminal(headers: Mapping[str, str], client_host: str | None, terminals: Terminals,
                      query_token: str | None = None) -> str | None:
    """Which terminal a call comes from: a proven token first, then a loopback client's ``X-Terminal-Id``."""
    proven = terminals.match(headers.get(TERMINAL_TOKEN_HEADER, "")) or \
        terminals.match(_bearer(headers, query_token))
    if proven is not None:
        return proven
    claimed = headers.get(TERMINAL_ID_HEADER, "")
    if claimed and is_loopback(client_host) and _TERMINAL_ID.match(claimed):
        return claimed
    return None


def terminal_of(request: Request) -> str | None:
    """The terminal a call came from (after ``Auth`` ran), or ``None``."""
    tid = getattr(request.state, "terminal_id", None)
    return str(tid) if tid else None


def _terminals(request: Request) -> Terminals:
    t = getattr(request.app.state, "api_terminals", None)
    return t if isinstance(t, Terminals) else Terminals()


def _bind_session(request: Request, token: str, device: str | None) -> str | None:
    """Bind a cashier session to the first terminal using it; refuse it on any other terminal."""
    store = request.app.state.agent.store
    token_hash = hashlib.sha256(token.encode()).hexdigest()
    row = store.query_one("SELECT terminal_id FROM sessions WHERE token_hash = ?", (token_hash,))
    bound = row.get("terminal_id") if row else None
    if bound and device and bound != device:
        raise Forbidden(f"this cashier session belongs to terminal {bound}", code="wrong_terminal",
                        terminal_id=device, session_terminal=bound)
    if bound is None and device is not None:
        store.write(lambda db: db.execute(
            "UPDATE sessions SET terminal_id = ? WHERE token_hash = ? AND terminal_id IS NULL", [device, token_hash]))
        return device
    return str(bound) if bound else None


def require_token(request: Request, token_q: Annotated[str | None, Query(alias="token")] = None) -> str:
    """The actor id for audit entries; sets ``request.state.role`` and ``request.state.terminal_id``."""
    expected: str = request.app.state.api_token
    given = _bearer(request.headers, token_q)
    terminals = _terminals(request)
    client = request.client.host if request.client else None
    device = identify_terminal(request.headers, client, terminals, token_q)
    request.state.terminal_id = device
    if given and hmac.compare_digest(given.encode(), expected.encode()):
        request.state.role = "station"
        return "station"
    own = terminals.match(given)
    if own is not None:
        request.state.role = "terminal"
        request.state.terminal_id = own
        return f"terminal:{own}"
    checkout = getattr(request.app.state.agent, "checkout", None)
    if given and checkout is not None:
        session = checkout.cashiers.session(given)
        if session is not None:
            request.state.role = session["role"]
            request.state.terminal_id = _bind_session(request, given, device)
            return str(session["cashier_id"])
    raise Unauthorized("missing or wrong API token")


def require_role(request: Request, role: str) -> None:
    have = getattr(request.state, "role", "cashier")
    if ROLE_RANK[have] < ROLE_RANK[role]:
        raise Forbidden(f"this needs the {role} role (you are {have})", code="role", needed=role, have=have)


Auth = Annotated[str, Depends(require_token)]


class TerminalGate:
    """ASGI middleware: a non-loopback client must prove a registered terminal on every call but ``/health``.

    Loopback clients (the agent's own device, tests) pass untouched; their
    calls are authorized by ``require_token`` as before.  A refused call gets
    ``401 {"error": {"code": "terminal_required", ...}}`` and reaches nothing.
    """

    def __init__(self, app: ASGIApp, terminals: Terminals) -> None:
        self.app = app
        self.terminals = terminals

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") == "/health":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else None
        if is_loopback(host):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"").decode("latin-1")
        query_token = next((p[6:] for p in query.split("&") if p.startswith("token=")), None)
        if identify_terminal(headers, host, self.terminals, query_token) is not None:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": {"code": "terminal_required", "details": {},
                                     "message": "calls from the station LAN need a registered terminal's token"}})
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body.encode()})
