"""Station manager endpoints: shifts (open, pre-check, close, handover), reports, audit, prices, manual sales.

Roles: any signed-in cashier opens and closes their own shift; station shifts, another
cashier's shift, day close, audit listing, manual sales and pump tests need a supervisor; a
forced close and price changes need a manager.  The audit log is read-only here.

Price changes take two requests (double confirmation): the first returns a preview with the
step per grade and a ``confirmation`` token valid ``CONFIRM_TTL_S`` seconds for the same body and
caller; the second, carrying the token, applies (``effective_at_ms`` in the future schedules).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from agent.api.auth import Auth, require_role
from agent.errors import Forbidden, InvalidRequest, Unavailable
from agent.manager import ManagerService
from agent.report_export import print_bytes, receipt_bytes, receipt_lines, to_csv, to_pdf

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/manager", tags=["manager"])

CONFIRM_TTL_S = 120
Fen = Annotated[int, Field(ge=0, le=100_000_000)]
Format = Literal["json", "csv", "pdf", "txt"]
#: gun number (JSON object keys are text) -> totalizer mL typed from the dispenser's counter
Readings = dict[Annotated[str, Field(pattern=r"^[0-9]{1,3}$")], Annotated[int, Field(ge=0, le=10**13)]]


def _readings(r: dict[str, int] | None) -> dict[int, int] | None:
    return {int(k): v for k, v in r.items()} if r is not None else None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OpenIn(_Body):
    scope: Literal["cashier", "station"] = "cashier"
    cashier: Annotated[str | None, Field(max_length=16)] = None
    float_fen: Fen = 0
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None
    readings: Readings | None = None


class CloseIn(_Body):
    declared_cash_fen: Fen | None = None
    force: bool = False
    #: why a forced close overrides the pre-check (required when something is still open)
    reason: Annotated[str, Field(max_length=200)] = ""
    readings: Readings | None = None


class HandoverIn(CloseIn):
    to_cashier: Annotated[str, Field(min_length=1, max_length=16)]
    float_fen: Fen = 0


class PriceChangeIn(_Body):
    prices_fen: Annotated[dict[str, Annotated[int, Field(ge=1, le=100_000)]], Field(min_length=1)]
    effective_at_ms: Annotated[int | None, Field(ge=0)] = None
    confirmation: Annotated[str | None, Field(max_length=64)] = None


class ManualSaleIn(_Body):
    nozzle: Annotated[int, Field(ge=1, le=999)]
    volume_ml: Annotated[int, Field(gt=0, le=2_000_000)]
    amount_fen: Fen | None = None
    reason: Annotated[str, Field(min_length=1, max_length=200)] = "pump not connected"
    request_key: Annotated[str | None, Field(min_length=8, max_length=64)] = None


class PumpTestIn(_Body):
    nozzle: Annotated[int, Field(ge=1, le=999)]
    preset_volume_ml: Annotated[int | None, Field(gt=0, le=2_000_000)] = None
    manual_volume_ml: Annotated[int | None, Field(gt=0, le=2_000_000)] = None
    note: Annotated[str, Field(max_length=200)] = ""


def _mgr(request: Request) -> ManagerService:
    """The app's manager service (``app.state.manager``, set by main.py; built on first use otherwise)."""
    state = request.app.state
    with _build_lock:
        mgr: ManagerService | None = getattr(state, "manager", None)
        if mgr is None:
            mgr = ManagerService(state.agent)
            state.manager = mgr
    return mgr


_build_lock = threading.Lock()


def _role(request: Request) -> str:
    return str(getattr(request.state, "role", "cashier"))


def _own_or(request: Request, who: str, cashier: str | None, role: str) -> None:
    if cashier not in (None, who):
        require_role(request, role)


def _export(report: dict[str, Any], fmt: Format, name: str, request: Request) -> Response:
    if fmt == "csv":
        return Response(to_csv(report), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
    if fmt == "pdf":
        return Response(to_pdf(report), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
    if fmt == "txt":
        width = request.app.state.agent.config.printer.width_chars
        return Response("\n".join(receipt_lines(report, width)), media_type="text/plain; charset=utf-8")
    return JSONResponse(report)


# ------------------------------------------------------------------ shifts
@router.get("/shifts")
def list_shifts(request: Request, _: Auth, state: Literal["open", "closed"] | None = None,
                limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    return _mgr(request).shifts.recent(state=state, limit=limit)


@router.get("/shifts/current")
def current_shift(request: Request, who: Auth, cashier: str | None = None) -> dict[str, Any]:
    shift = _mgr(request).shifts.current(cashier or who)
    return {"shift": shift}


@router.post("/shifts", status_code=201)
def open_shift(body: OpenIn, request: Request, who: Auth) -> dict[str, Any]:
    if body.scope == "station":
        require_role(request, "supervisor")
    _own_or(request, who, body.cashier, "supervisor")
    return _mgr(request).shifts.open(actor=who, scope=body.scope, cashier=body.cashier, float_fen=body.float_fen,
                                     request_key=body.request_key, manual_readings=_readings(body.readings))


@router.get("/shifts/{shift_id}")
def get_shift(shift_id: str, request: Request, _: Auth) -> dict[str, Any]:
    return _mgr(request).shifts.get(shift_id)


@router.get("/meters")
def meters(request: Request, _: Auth) -> dict[str, Any]:
    """The totalizer of every gun as a shift close would take it now: read from each idle pump
    (``source: pump``), else the end reading of its last fill (``last_fill``), else unknown (``none``):
    what the close screen shows so the manager can type the dispenser's counter where the pump cannot
    be read."""
    mgr = _mgr(request)
    got = mgr.shifts.read_meters()
    rows = []
    for gun, (pump_id, grade) in sorted(mgr.shifts.nozzles.items()):
        r = got.get(str(gun)) or {}
        rows.append({"nozzle": gun, "pump_id": pump_id, "grade": grade,
                     "volume_total_ml": r.get("volume_total_ml"), "amount_total_fen": r.get("amount_total_fen"),
                     "source": r.get("source", "none")})
    return {"readings": rows}


@router.get("/shifts/{shift_id}/precheck")
def precheck(shift_id: str, request: Request, _: Auth) -> dict[str, Any]:
    blockers = _mgr(request).shifts.precheck(shift_id)
    return {"shift_id": shift_id, "ready": not blockers, "blockers": blockers}


def _check_close(request: Request, who: str, shift_id: str, force: bool) -> ManagerService:
    mgr = _mgr(request)
    shift = mgr.shifts.get(shift_id)
    if shift["scope"] == "station" or shift["cashier"] != who:
        require_role(request, "supervisor")
    if force:
        require_role(request, "manager")
    return mgr


@router.post("/shifts/{shift_id}/close")
def close_shift(shift_id: str, body: CloseIn, request: Request, who: Auth) -> dict[str, Any]:
    mgr = _check_close(request, who, shift_id, body.force)
    return mgr.shifts.close(shift_id, actor=who, declared_cash_fen=body.declared_cash_fen, force=body.force,
                            manual_readings=_readings(body.readings), reason=body.reason)


@router.post("/shifts/{shift_id}/handover")
def handover(shift_id: str, body: HandoverIn, request: Request, who: Auth) -> dict[str, Any]:
    mgr = _check_close(request, who, shift_id, body.force)
    return mgr.shifts.close(shift_id, actor=who, declared_cash_fen=body.declared_cash_fen, force=body.force,
                            manual_readings=_readings(body.readings), handover_to=body.to_cashier,
                            next_float_fen=body.float_fen, reason=body.reason)


@router.get("/shifts/{shift_id}/report", response_model=None)
def shift_report(shift_id: str, request: Request, _: Auth, format: Format = "json") -> Response:
    return _export(_mgr(request).shifts.report(shift_id), format, f"shift-{shift_id}", request)


@router.post("/shifts/{shift_id}/report/print")
def print_shift_report(shift_id: str, request: Request, _: Auth) -> dict[str, Any]:
    p = request.app.state.agent.config.printer
    if not p.url:
        raise Unavailable("no receipt printer configured ([printer] url)", code="no_printer")
    data = receipt_bytes(_mgr(request).shifts.report(shift_id), encoding=p.encoding, width=p.width_chars)
    print_bytes(p.url, data)
    return {"printed": True, "bytes": len(data)}


# ------------------------------------------------------------------ day / month
@router.get("/reports/day/{day}", response_model=None)
def day_report(day: str, request: Request, _: Auth, format: Format = "json") -> Response:
    require_role(request, "supervisor")
    return _export(_mgr(request).shifts.day_report(day), format, f"day-{day}", request)


@router.post("/days/{day}/close")
def close_day(day: str, request: Request, who: Auth) -> dict[str, Any]:
    require_role(request, "supervisor")
    return _mgr(request).shifts.close_day(day, actor=who)


@router.get("/reports/month/{month}", response_model=None)
def month_report(month: str, request: Request, _: Auth,
                 format: Format = "json") -> Response:
    require_role(request, "supervisor")
    if len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit() or not 1 <= int(month[5:]) <= 12:
        raise InvalidRequest(f"not a month: {month!r} (expected YYYY-MM)", code="bad_month")
    return _export(_mgr(request).shifts.month_report(month), format, f"month-{month}", request)


# ------------------------------------------------------------------ audit (read-only)
@router.get("/audit")
def audit(request: Request, _: Auth, actor: str | None = None, action: str | None = None, target: str | None = None,
          since_ms: int | None = None, until_ms: int | None = None,
          limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    require_role(request, "supervisor")
    return _mgr(request).audit(actor=actor, action=action, target=target, since_ms=since_ms, until_ms=until_ms,
                               limit=limit)


# ------------------------------------------------------------------ prices
def _pending(request: Request) -> dict[str, tuple[str, float]]:
    """Price-change confirmations waiting for their second request (token -> body digest, expiry)."""
    state = request.app.state
    with _build_lock:
        pending: dict[str, tuple[str, float]] | None = getattr(state, "price_confirmations", None)
        if pending is None:
            pending = {}
            state.price_confirmations = pending
    return pending


@router.get("/prices/scheduled", tags=["prices"])
def scheduled_prices(request: Request, _: Auth) -> dict[str, Any]:
    fc = _fc(request)
    return {"current": fc.prices.current(), "scheduled": fc.prices.scheduled()}


@router.post("/prices", tags=["prices"], response_model=None)
def change_prices(body: PriceChangeIn, request: Request, who: Auth) -> Response:
    """Step 1 (no ``confirmation``): 202 with a preview and a token.  Step 2 (with it): 201, applied or scheduled."""
    require_role(request, "manager")
    fc = _fc(request)
    limit = fc.agent.config.policy.max_price_step_fen
    current = fc.prices.current()["prices_fen"]
    changes = [{"grade": g, "old_fen": current.get(g), "new_fen": p, "step_fen": p - current.get(g, p)}
               for g, p in sorted(body.prices_fen.items())]
    too_big = [c for c in changes if abs(c["step_fen"]) > limit]
    if too_big:
        raise InvalidRequest(f"price step above the limit of {limit} fen/L for {[c['grade'] for c in too_big]}",
                             code="price_step_too_large", changes=changes, max_step_fen=limit)
    digest = hashlib.sha256(json.dumps([who, body.prices_fen, body.effective_at_ms],
                                       sort_keys=True).encode()).hexdigest()
    now = time.monotonic()
    pending = _pending(request)
    with _build_lock:
        for k in [k for k, (_, exp) in pending.items() if exp < now]:
            del pending[k]
        if body.confirmation is None:
            token = secrets.token_urlsafe(16)
            pending[token] = (digest, now + CONFIRM_TTL_S)
            return JSONResponse({"confirmation": token, "expires_in_s": CONFIRM_TTL_S, "changes": changes,
                                 "effective_at_ms": body.effective_at_ms}, status_code=202)
        held = pending.pop(body.confirmation, None)
    if held is None or held[0] != digest:
        raise Forbidden("the confirmation is unknown, expired or for another change: start again",
                        code="confirmation_invalid")
    version = fc.prices.new_version(body.prices_fen, actor=who, max_step_fen=limit,
                                    effective_at_ms=body.effective_at_ms)
    fc.apply_prices_to_idle()
    return JSONResponse({**fc.prices.current(), "version": version, "scheduled": fc.prices.scheduled()},
                        status_code=201)


@router.delete("/prices/scheduled/{version}", tags=["prices"])
def cancel_scheduled(version: int, request: Request, who: Auth) -> dict[str, Any]:
    require_role(request, "manager")
    result: dict[str, Any] = _fc(request).prices.cancel_scheduled(version, actor=who)
    return result


def _fc(request: Request) -> Any:
    fc = getattr(request.app.state.agent, "forecourt", None)
    if fc is None:
        raise Unavailable("the pump controller is not running", code="no_pumps")
    return fc


# ------------------------------------------------------------------ manual sale / pump test
@router.post("/manual-sales", status_code=201)
def manual_sale(body: ManualSaleIn, request: Request, who: Auth) -> dict[str, Any]:
    require_role(request, "supervisor")
    return _mgr(request).manual.manual_sale(actor=who, nozzle=body.nozzle, volume_ml=body.volume_ml,
                                            amount_fen=body.amount_fen, reason=body.reason,
                                            request_key=body.request_key)


@router.post("/pump-tests", status_code=201)
def pump_test(body: PumpTestIn, request: Request, who: Auth) -> dict[str, Any]:
    require_role(request, "supervisor")
    if (body.preset_volume_ml is None) == (body.manual_volume_ml is None):
        raise InvalidRequest("give preset_volume_ml (run it on the pump) or manual_volume_ml (done stand-alone)",
                             code="bad_pump_test")
    return _mgr(request).manual.pump_test(actor=who, nozzle=body.nozzle, preset_volume_ml=body.preset_volume_ml,
                                          manual_volume_ml=body.manual_volume_ml, note=body.note)


@router.get("/pump-tests")
def pump_tests(request: Request, _: Auth, limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    return _mgr(request).manual.tests(limit)
