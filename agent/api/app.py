"""FastAPI application of the local API.

Every call but ``/health`` needs ``Authorization: Bearer <token>`` (the event
stream also accepts ``?token=`` for clients that cannot set headers).  The
``Host`` header must name this machine (DNS-rebinding guard); no CORS.
Errors are JSON: ``{"error": {"code", "message", "details"}}`` with a 4xx/5xx
status, and a rejected request changes nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from agent.api.auth import Auth
from agent.errors import AgentError
from agent.orders import LineRequest
from agent.service import VERSION, Agent

__all__ = ["create_app"]

LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1", "testserver"}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LineIn(_Body):
    kind: Literal["item", "amount"]
    amount_fen: Annotated[int | None, Field(gt=0)] = None
    sku: str | None = None
    name: Annotated[str | None, Field(max_length=64)] = None
    unit_price_fen: Annotated[int | None, Field(gt=0)] = None
    quantity: Annotated[int, Field(gt=0, le=9999)] = 1


class OrderIn(_Body):
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=100)]
    cashier: Annotated[str | None, Field(max_length=32)] = None
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class CancelIn(_Body):
    reason: Annotated[str, Field(max_length=200)] = "cancelled"


def create_app(agent: Agent, token: str, *, allowed_hosts: set[str] | None = None,
               extra_routes: Callable[[FastAPI, Agent], None] | None = None) -> FastAPI:
    hosts = LOCAL_HOSTS | (allowed_hosts or set())
    app = FastAPI(title="Forecourt local API", version=VERSION,
                  description="Everything the cashier can do is a call here; the UI is one client of it.")
    app.state.api_token = token
    app.state.agent = agent

    @app.middleware("http")
    async def host_guard(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        host = request.headers.get("host", "")
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        if name not in hosts:
            return JSONResponse({"error": {"code": "bad_host", "message": f"host {host!r} not allowed",
                                           "details": {}}}, status_code=421)
        return await call_next(request)

    @app.exception_handler(AgentError)
    async def agent_error(_: Request, exc: AgentError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        return JSONResponse({"error": {"code": "invalid_request", "message": "the request is not valid",
                                       "details": {"problems": problems}}}, status_code=422)

    @app.get("/health", tags=["system"])
    def health() -> dict[str, Any]:
        return agent.health()

    @app.get("/api/v1/station", tags=["system"])
    def station(_: Auth) -> dict[str, Any]:
        return agent.station()

    @app.get("/api/v1/sync/status", tags=["sync"])
    def sync_status(_: Auth) -> dict[str, Any]:
        return agent.sync_status()

    @app.post("/api/v1/orders", status_code=201, tags=["orders"])
    def create_order(body: OrderIn, _: Auth) -> dict[str, Any]:
        lines = [LineRequest(**ln.model_dump()) for ln in body.lines]
        return agent.orders.create(lines, cashier=body.cashier, request_key=body.request_key)

    @app.get("/api/v1/orders", tags=["orders"])
    def list_orders(_: Auth, state: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
        return agent.orders.list(state, limit)

    @app.get("/api/v1/orders/{order_id}", tags=["orders"])
    def get_order(order_id: str, _: Auth) -> dict[str, Any]:
        return agent.orders.get(order_id)

    @app.post("/api/v1/orders/{order_id}/cancel", tags=["orders"])
    def cancel_order(order_id: str, body: CancelIn, who: Auth) -> dict[str, Any]:
        if agent.checkout is not None:  # releases fills, coupon locks and points holds too
            result: dict[str, Any] = agent.checkout.cancel(order_id, actor=who, reason=body.reason)
            return result
        return agent.orders.cancel(order_id, actor=who, reason=body.reason)

    streams_lock, streams = threading.Lock(), [0]

    def live_streams(delta: int) -> None:
        """Screens (cashier UIs, customer displays) holding the event stream open, shown in /health."""
        with streams_lock:
            streams[0] += delta
            agent.set_health("event_streams", streams[0])

    agent.set_health("event_streams", 0)

    @app.get("/api/v1/events", tags=["events"], response_class=StreamingResponse)
    def events(_: Auth, heartbeat_s: Annotated[float, Query(ge=0.05, le=60)] = 15.0) -> StreamingResponse:
        """Server-Sent Events: ``event: <topic>``, ``id: <seq>``, ``data: <json>``."""
        sub = agent.bus.subscribe()

        def stream() -> Iterator[bytes]:
            live_streams(+1)
            try:
                yield b": connected\n\nevent: hello\ndata: " + json.dumps(agent.health()).encode() + b"\n\n"
                while True:
                    ev = sub.get(timeout=heartbeat_s)
                    if ev is None:
                        yield b": keep-alive\n\n"
                        continue
                    data = json.dumps(ev.data, ensure_ascii=False, default=str)
                    yield f"id: {ev.seq}\nevent: {ev.topic}\ndata: {data}\n\n".encode()
            finally:
                sub.close()
                live_streams(-1)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    from agent.api.checkout import router as checkout_router
    from agent.api.manager import router as manager_router
    from agent.api.pumps import router as pumps_router
    from agent.api.receipts import router as receipts_router

    app.include_router(pumps_router)
    app.include_router(checkout_router)
    app.include_router(receipts_router)
    app.include_router(manager_router)
    if extra_routes is not None:
        extra_routes(app, agent)
    return app
