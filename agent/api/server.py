"""Runs the local API with uvicorn in a background thread (the agent's threads keep running)."""

from __future__ import annotations

import os
import secrets
import threading
from pathlib import Path

import uvicorn
from fastapi import FastAPI

__all__ = ["ApiServer", "load_or_create_token"]


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

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, uds: str | None = None) -> None:
        self._config = uvicorn.Config(app, host=host, port=port, uds=uds, log_level="warning",
                                      access_log=False, lifespan="off", timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self.host = host
        self.port = port

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
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
