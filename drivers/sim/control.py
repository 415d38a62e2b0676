"""JSON-lines control socket of the pump simulator (TCP, localhost by default).

One request object per line, one reply per line; commands in :mod:`drivers.sim.scenario`.  Meant for
the demo and for tests that run the agent as a subprocess.  No authentication: bind it to
127.0.0.1 only.
"""

from __future__ import annotations

import functools
import select
import socket

from drivers.sim.scenario import handle_line
from drivers.sim.simulator import PumpSimulator

__all__ = ["start_control"]


def start_control(sim: PumpSimulator, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
    """Listen for control clients in a simulator thread; returns the bound (host, port)."""
    server = socket.create_server((host, port))
    bound = server.getsockname()[:2]

    def client(conn: socket.socket) -> None:
        buf = b""
        with conn:
            while not sim.stopping.is_set():
                ready, _, _ = select.select([conn], [], [], 0.2)
                if not ready:
                    continue
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        reply = handle_line(sim, line.decode("utf-8", "replace"))
                        conn.sendall(reply.encode() + b"\n")

    def accept_loop() -> None:
        with server:
            while not sim.stopping.is_set():
                ready, _, _ = select.select([server], [], [], 0.2)
                if ready:
                    conn, _ = server.accept()
                    sim.spawn("sim-control-client", functools.partial(client, conn))

    sim.spawn("sim-control", accept_loop)
    return str(bound[0]), int(bound[1])
