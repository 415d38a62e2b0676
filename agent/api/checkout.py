"""Checkout endpoints: catalog, members (lookup, registration), order editing with live quotes, confirm, pay,
refund, invoice, prepay, login."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.api.auth import Auth
from agent.errors import Unavailable

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["checkout"])

Fen = Annotated[int, Field(gt=0, le=10_000_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LineIn(_Body):
    kind: Literal["fuel", "item", "amount"]
    fill_id: Annotated[str | None, Field(max_length=64)] = None
    sku: Annotated[str | None, Field(max_length=32)] = None
    quantity: Annotated[int, Field(gt=0, le=9999)] = 1
    amount_fen: Fen | None = None
    name: Annotated[str | None, Field(max_length=64)] = None
    unit_price_fen: Fen | None = None


class CheckoutOrderIn(_Body):
    lines: Annotated[list[LineIn], Field(min_length=1, max_length=100)]
    member_id: Annotated[str | None, Field(max_length=64)] = None
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class AddLineIn(_Body):
    kind: Literal["fuel", "item"]
    fill_id: Annotated[str | None, Field(max_length=64)] = None
    sku: Annotated[str | None, Field(max_length=32)] = None
    quantity: Annotated[int, Field(gt=0, le=9999)] = 1


class MemberIn(_Body):
    member_id: Annotated[str | None, Field(max_length=64)]


class PrefsIn(_Body):
    coupon_id: Annotated[str | None, Field(max_length=64)] = None
    no_coupon: bool = False
    points: Annotated[int, Field(ge=0, le=10_000_000)] = 0


class TenderIn(_Body):
    tender: Literal["cash", "stored_value", "qr_scan", "qr_show", "plate_pay"]
    amount_fen: Fen
    given_fen: Fen | None = None
    auth_code: Annotated[str | None, Field(min_length=10, max_length=32, pattern=r"^[0-9]+$")] = None


class PayIn(_Body):
    quote_id: Annotated[str, Field(min_length=1, max_length=64)]
    tenders: Annotated[list[TenderIn], Field(max_length=6)]
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class RefundIn(_Body):
    amount_fen: Fen | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)]
    supervisor_id: Annotated[str, Field(min_length=1, max_length=16)]
    supervisor_pin: Annotated[str, Field(min_length=4, max_length=12)]
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class PrepayIn(_Body):
    nozzle: Annotated[int | None, Field(ge=1, le=999)] = None
    preset_amount_fen: Fen | None = None
    preset_volume_ml: Annotated[int | None, Field(gt=0, le=1_000_000)] = None
    tenders: Annotated[list[TenderIn], Field(min_length=1, max_length=6)]
    member_id: Annotated[str | None, Field(max_length=64)] = None
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class InvoiceIn(_Body):
    title: Annotated[str, Field(min_length=1, max_length=100)]
    tax_id: Annotated[str | None, Field(min_length=15, max_length=20, pattern=r"^[0-9A-Za-z]+$")] = None
    email: Annotated[str | None, Field(min_length=3, max_length=100)] = None
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class MemberRegisterIn(_Body):
    phone: Annotated[str, Field(pattern=r"^1[0-9]{10}$")]
    name: Annotated[str, Field(min_length=1, max_length=30)]
    plate: Annotated[str | None, Field(min_length=5, max_length=10)] = None
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class LoginIn(_Body):
    cashier_id: Annotated[str, Field(min_length=1, max_length=16)]
    pin: Annotated[str, Field(min_length=4, max_length=12)]


class TradeResultIn(_Body):
    out_trade_no: Annotated[str, Field(min_length=1, max_length=64)]
    status: Literal["success", "failed", "closed", "pending"]
    amount_fen: Fen
    trade_no: Annotated[str, Field(max_length=64)] = ""


def _co(request: Request) -> Any:
    co = getattr(request.app.state.agent, "checkout", None)
    if co is None:
        raise Unavailable("checkout is not running", code="no_checkout")
    return co


def _tenders(ts: list[TenderIn]) -> list[dict[str, Any]]:
    return [t.model_dump(exclude_none=True) for t in ts]


@router.post("/session/login", tags=["cashiers"])
def login(body: LoginIn, request: Request) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).cashiers.login(body.cashier_id, body.pin)
    return result


@router.post("/session/logout", tags=["cashiers"])
def logout(request: Request, _: Auth) -> dict[str, Any]:
    header = request.headers.get("authorization", "")
    _co(request).cashiers.logout(header[7:])
    return {"ok": True}


@router.get("/session", tags=["cashiers"])
def whoami(request: Request, who: Auth) -> dict[str, Any]:
    return {"actor": who, "role": request.state.role}


@router.get("/catalog")
def catalog(request: Request, _: Auth, q: str = "") -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = _co(request).catalog(q)
    return result


@router.get("/members/lookup")
def member_lookup(request: Request, _: Auth, phone: str = "", card_no: str = "", plate: str = "") -> dict[str, Any]:
    result: dict[str, Any] = _co(request).lookup_member(phone=phone, card_no=card_no, plate=plate)
    return result


@router.post("/members", status_code=201)
def member_register(body: MemberRegisterIn, request: Request, who: Auth) -> dict[str, Any]:
    """会员注册: online only (``503 offline``); a phone that is already a member's is ``409 member_exists``."""
    result: dict[str, Any] = _co(request).register_member(phone=body.phone, name=body.name, plate=body.plate,
                                                          actor=who, request_key=body.request_key)
    return result


@router.post("/checkout/orders", status_code=201)
def create(body: CheckoutOrderIn, request: Request, who: Auth) -> dict[str, Any]:
    lines = [ln.model_dump(exclude_none=True) for ln in body.lines]
    result: dict[str, Any] = _co(request).create_order(lines, cashier=who, member_id=body.member_id,
                                                       request_key=body.request_key)
    return result


@router.post("/orders/{order_id}/lines")
def add_line(order_id: str, body: AddLineIn, request: Request, _: Auth) -> dict[str, Any]:
    co = _co(request)
    if body.kind == "fuel":
        if not body.fill_id:
            from agent.errors import InvalidRequest

            raise InvalidRequest("a fuel line needs fill_id", code="bad_line")
        result: dict[str, Any] = co.add_fuel(order_id, body.fill_id)
    else:
        if not body.sku:
            from agent.errors import InvalidRequest

            raise InvalidRequest("an item line needs sku (barcode or PLU)", code="bad_line")
        result = co.add_item(order_id, body.sku, body.quantity)
    return result


@router.delete("/orders/{order_id}/lines/{line_no}")
def remove_line(order_id: str, line_no: int, request: Request, _: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).remove_line(order_id, line_no)
    return result


@router.post("/orders/{order_id}/member")
def set_member(order_id: str, body: MemberIn, request: Request, _: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).set_member(order_id, body.member_id)
    return result


@router.post("/orders/{order_id}/preferences")
def preferences(order_id: str, body: PrefsIn, request: Request, _: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).set_preferences(order_id, coupon_id=body.coupon_id,
                                                          no_coupon=body.no_coupon, points=body.points)
    return result


@router.post("/orders/{order_id}/confirm")
def confirm(order_id: str, request: Request, _: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).confirm(order_id)
    return result


@router.post("/orders/{order_id}/pay")
def pay(order_id: str, body: PayIn, request: Request, who: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).pay(order_id, quote_id=body.quote_id, tenders=_tenders(body.tenders),
                                              actor=who, request_key=body.request_key)
    return result


@router.get("/orders/{order_id}/payment")
def payment(order_id: str, request: Request, _: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).sagas.latest(order_id)
    return result


@router.post("/orders/{order_id}/refund", status_code=201)
def refund(order_id: str, body: RefundIn, request: Request, who: Auth) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = _co(request).refund(
        order_id, amount_fen=body.amount_fen, reason=body.reason, actor=who, supervisor_id=body.supervisor_id,
        supervisor_pin=body.supervisor_pin, request_key=body.request_key)
    return result


@router.post("/orders/{order_id}/invoice", status_code=201)
def invoice(order_id: str, body: InvoiceIn, request: Request, who: Auth) -> dict[str, Any]:
    """开发票 for a paid order, issued by the center: online only (``503 offline``); one per order (a repeat
    returns it, another title is ``409 invoice_exists``)."""
    result: dict[str, Any] = _co(request).invoices.request(order_id, title=body.title, tax_id=body.tax_id,
                                                           email=body.email, actor=who, request_key=body.request_key)
    return result


@router.get("/orders/{order_id}/invoice")
def get_invoice(order_id: str, request: Request, _: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).invoices.get(order_id)
    return result


@router.post("/orders/{order_id}/void")
def void(order_id: str, request: Request, who: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).cancel(order_id, actor=who, reason="void")
    return result


@router.post("/pumps/{pump_id}/prepay", status_code=201)
def prepay(pump_id: int, body: PrepayIn, request: Request, who: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).prepay(
        pump_id, tenders=_tenders(body.tenders), actor=who, nozzle=body.nozzle,
        preset_amount_fen=body.preset_amount_fen, preset_volume_ml=body.preset_volume_ml, member_id=body.member_id,
        request_key=body.request_key)
    return result


@router.post("/payments/result", tags=["sync"])
def trade_result(body: TradeResultIn, request: Request, _: Auth) -> dict[str, Any]:
    """The center's payment result relayed by the sync layer (or a notify forwarded on the LAN)."""
    co = _co(request)
    co.sagas.on_trade_result(body.out_trade_no, body.status, body.amount_fen, body.trade_no)
    return {"ok": True}


class PlateIn(_Body):
    plate: Annotated[str, Field(min_length=5, max_length=10)]


@router.get("/mobile-orders", tags=["mobile"])
def mobile_orders(request: Request, _: Auth, state: str | None = None) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = _co(request).mobile.list(state)
    return result


@router.post("/mobile-orders/{order_id}/release", tags=["mobile"])
def mobile_release(order_id: str, request: Request, who: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).mobile.release(order_id, actor=who)
    return result


@router.post("/mobile-orders/{order_id}/cancel", tags=["mobile"])
def mobile_cancel(order_id: str, request: Request, who: Auth) -> dict[str, Any]:
    result: dict[str, Any] = _co(request).mobile.cancel(order_id, actor=who)
    return result


@router.post("/pumps/{pump_id}/plate", tags=["mobile"])
def bind_plate(pump_id: int, body: PlateIn, request: Request, who: Auth) -> dict[str, Any]:
    """无感支付: bind a member's plate (typed, or from a plate camera) to the pump's next fill."""
    result: dict[str, Any] = _co(request).plate.bind(pump_id, body.plate, actor=who)
    return result
