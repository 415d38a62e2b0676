"""Run the simulated center: uvicorn in a thread behind the fault proxy, plus the MQTT publisher.

``serve_center()`` is used by the tests, the bench and ``forecourt sim center``; it returns a
``CenterHandle`` whose ``url`` is the proxy's (so outages and lost answers can be injected) and
whose ``state`` is the live ``CenterState`` (fault knobs, inspection).
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from sync.center_sim.app import build_app
from sync.center_sim.proxy import FaultProxy
from sync.center_sim.publisher import SimPublisher
from sync.center_sim.state import CenterState

__all__ = ["CenterHandle", "serve_center"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CenterHandle:
    url: str
    state: CenterState
    proxy: FaultProxy
    publisher: SimPublisher | None
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self.proxy.stop()
        if self.publisher is not None:
            self.publisher.stop()
        self.state.save()


def serve_center(host: str = "127.0.0.1", port: int = 0, *, mqtt: tuple[str, int] | None = None,
                 state_file: Path | None = None, state: CenterState | None = None,
                 tls: tuple[Path, Path, Path] | None = None, mqtt_tls: Any = None) -> CenterHandle:
    """Start the simulator; ``port`` 0 picks a free one.  Returns once it answers.

    ``tls=(cert, key, ca)``: HTTPS with that server certificate, and every client must present a
    certificate signed by ``ca`` (mutual TLS, as the real trade center asks of its stations).
    ``mqtt_tls``: an ``ssl.SSLContext`` for the simulator's own MQTT client (a TLS broker).
    """
    st = state or CenterState(state_file)
    publisher = SimPublisher(*mqtt, tls=mqtt_tls).start() if mqtt is not None else None
    app = build_app(st, publisher)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # => TCP_NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    inner_port = sock.getsockname()[1]
    ssl_kw: dict[str, Any] = {}
    if tls is not None:
        import ssl

        ssl_kw = {"ssl_certfile": str(tls[0]), "ssl_keyfile": str(tls[1]), "ssl_ca_certs": str(tls[2]),
                  "ssl_cert_reqs": ssl.CERT_REQUIRED}
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30,
                            **ssl_kw)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="center-sim", daemon=True)
    thread.start()
    proxy = FaultProxy(("127.0.0.1", inner_port), (host, port)).start()
    import time

    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    if not server.started:
        raise RuntimeError("center simulator did not start")
    scheme = "https" if tls is not None else "http"
    return CenterHandle(f"{scheme}://{proxy.host}:{proxy.port}", st, proxy, publisher, server, thread)
