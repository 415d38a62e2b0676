"""Runs the local API with uvicorn in a background thread (the agent's threads keep running).

On a big station the API is exposed on the station LAN for several checkout
terminals: ``ApiServer.from_config`` serves TLS (``[api] tls_cert``/``tls_key``,
PEM) and installs ``TerminalGate`` with the configured ``[[api.terminals]]``, so
a non-loopback client must prove a terminal on every call.  Loopback-only with
plain HTTP stays the default.  Limits: no client-certificate (mTLS) check; the
certificate is read once at start (restart the agent to rotate it).
"""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import uvicorn
from fastapi import FastAPI

from agent.api.auth import TerminalGate, Terminals

if TYPE_CHECKING:
    from agent.config import ApiConfig

__all__ = ["ApiServer", "load_or_create_token"]


def _resolve(base: Path, value: str) -> Path:
    p = Path(value)
    return p if p.is_absolute() else base / p


def load_or_create_token(path: str | Path) -> str:
    """Read the API token file, or create it with a random token, mode 0600."""
    p = Path(path)
    if p.exists():
        token = p.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise ValueError(f"API token in {p} is shorter than 16 characters")
        return token
    p.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token


class ApiServer:
    """uvicorn on ``host:port`` (port 0 picks a free one; see ``.port`` after ``start``)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, uds: str | None = None, *,
                 tls_cert: str | Path | None = None, tls_key: str | Path | None = None,
                 terminals: Terminals | None = None) -> None:
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("tls_cert and tls_key go together")
        app.state.api_terminals = terminals or Terminals()
        gate = TerminalGate(app, app.state.api_terminals)
        self._config = uvicorn.Config(gate, host=host, port=port, uds=uds, log_level="warning",
                                      access_log=False, lifespan="off", timeout_graceful_shutdown=2,
                                      ssl_certfile=str(tls_cert) if tls_cert else None,
                                      ssl_keyfile=str(tls_key) if tls_key else None)
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port
        self.scheme = "https" if tls_cert else "http"

    @classmethod
    def from_config(cls, app: FastAPI, api: ApiConfig, base: Path, *, port: int | None = None) -> ApiServer:
        """The server ``[api]`` describes; relative PEM paths are resolved against ``base`` (the config's folder)."""
        cert = _resolve(base, api.tls_cert) if api.tls_cert else None
        key = _resolve(base, api.tls_key) if api.tls_key else None
        for what, path in (("tls_cert", cert), ("tls_key", key)):
            if path is not None and not path.is_file():
                raise ValueError(f"api.{what}: no file {path}")
        return cls(app, host=api.host, port=api.port if port is None else port, tls_cert=cert, tls_key=key,
                   terminals=Terminals.from_config(api.terminals))

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._server.run, name="api-server", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        waited = 0.0
        while not self._server.started:
            if not self._thread.is_alive():
                raise RuntimeError("local API server failed to start (port in use?)")
            deadline.wait(0.02)
            waited += 0.02
            if waited > timeout_s:
                raise RuntimeError("local API server did not start in time")
        servers = getattr(self._server, "servers", [])
        for srv in servers:
            for sock in srv.sockets:
                addr = sock.getsockname()
                if isinstance(addr, tuple):
                    self.port = int(addr[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
