"""Receipt endpoints: text and image preview, reprint (重印), printer status.

The print queue (``agent.printing.PrintQueue``) is found on ``app.state.printer``
(set by ``main.py``); previews work without it, reprint and status answer 503
when it is not running.
"""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from agent.api.auth import Auth
from agent.errors import Unavailable
from agent.printing import PrintQueue, load_receipt
from agent.receipts import to_image

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["receipts"])

Width = Annotated[int | None, Query(ge=24, le=64, description="columns: 32 = 58 mm, 48 = 80 mm")]


def _queue(request: Request) -> PrintQueue:
    queue: PrintQueue | None = getattr(request.app.state, "printer", None)
    if queue is None:
        raise Unavailable("打印队列未运行 / the print queue is not running", code="no_printer_queue")
    return queue


def _width(request: Request, width: int | None) -> int:
    if width is not None:
        return width
    return int(request.app.state.agent.config.printer.width_chars)


@router.get("/orders/{order_id}/receipt")
def receipt(order_id: str, request: Request, _: Auth, width: Width = None) -> dict[str, Any]:
    """The receipt as the customer will read it, whether it can be printed, and its print jobs."""
    agent = request.app.state.agent
    r = load_receipt(agent, order_id)
    order = agent.orders.get(order_id)
    queue: PrintQueue | None = getattr(request.app.state, "printer", None)
    return {"order_id": order_id, "receipt_no": r.receipt_no, "text": r.text(_width(request, width)),
            "qr": r.qr_payload, "printable": order["state"] == "paid",
            "jobs": queue.jobs(order_id) if queue is not None else [],
            "printer": queue.status() if queue is not None else None}


@router.get("/orders/{order_id}/receipt.png", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def receipt_png(order_id: str, request: Request, _: Auth, width: Width = None) -> Response:
    """The receipt rendered at printer resolution (384 dots wide on 58 mm paper, 576 on 80 mm)."""
    img = to_image(load_receipt(request.app.state.agent, order_id), _width(request, width))
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})


@router.post("/orders/{order_id}/reprint", status_code=201)
def reprint(order_id: str, request: Request, who: Auth) -> dict[str, Any]:
    """Queue a copy marked 重印/DUPLICATE (audited); the cash drawer does not open for a copy."""
    return _queue(request).reprint(order_id, actor=who)


@router.get("/printer")
def printer(request: Request, _: Auth) -> dict[str, Any]:
    """Printer state (ok / error / none / unknown), a message for the cashier, pending and failed jobs."""
    return _queue(request).status()
