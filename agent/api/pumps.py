"""Pump endpoints of the local API: status, authorize, stop, emergency stop, lock, totals, prices, fills."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from agent.api.auth import Auth, require_role
from agent.errors import Unavailable
from agent.forecourt import Forecourt

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["pumps"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AuthorizeIn(_Body):
    nozzles: Annotated[list[Annotated[int, Field(ge=1, le=999)]], Field(max_length=15)] = []
    preset_amount_fen: Annotated[int | None, Field(gt=0, le=10_000_000)] = None
    preset_volume_ml: Annotated[int | None, Field(gt=0, le=10_000_000)] = None


class LockIn(_Body):
    locked: bool
    reason: Annotated[str, Field(max_length=200)] = ""


class PricesIn(_Body):
    prices_fen: dict[str, Annotated[int, Field(ge=1, le=100_000)]]
    confirm: Annotated[bool, Field(description="second confirmation of the change (must be true)")] = False


def _fc(request: Request) -> Forecourt:
    fc: Forecourt | None = getattr(request.app.state.agent, "forecourt", None)
    if fc is None:
        raise Unavailable("the pump controller is not running (agent started with --no-pumps)", code="no_pumps")
    return fc


@router.get("/pumps")
def list_pumps(request: Request, _: Auth) -> list[dict[str, Any]]:
    return _fc(request).pumps()


@router.get("/pumps/{pump_id}")
def get_pump(pump_id: int, request: Request, _: Auth) -> dict[str, Any]:
    return _fc(request).pump(pump_id)


@router.post("/pumps/{pump_id}/authorize", status_code=201)
def authorize(pump_id: int, body: AuthorizeIn, request: Request, who: Auth) -> dict[str, Any]:
    return _fc(request).authorize(pump_id, nozzles=tuple(body.nozzles), preset_amount_fen=body.preset_amount_fen,
                                  preset_volume_ml=body.preset_volume_ml, actor=who)


@router.post("/pumps/{pump_id}/stop")
def stop(pump_id: int, request: Request, who: Auth) -> dict[str, Any]:
    _fc(request).stop(pump_id, actor=who)
    return {"ok": True}


@router.post("/pumps/{pump_id}/suspend")
def suspend(pump_id: int, request: Request, who: Auth) -> dict[str, Any]:
    _fc(request).suspend(pump_id, actor=who)
    return {"ok": True}


@router.post("/pumps/{pump_id}/resume")
def resume(pump_id: int, request: Request, who: Auth) -> dict[str, Any]:
    _fc(request).resume(pump_id, actor=who)
    return {"ok": True}


@router.post("/pumps/emergency-stop")
def emergency_stop_all(request: Request, who: Auth) -> dict[str, Any]:
    return {"stopped": _fc(request).emergency_stop(0, actor=who)}


@router.post("/pumps/{pump_id}/emergency-stop")
def emergency_stop(pump_id: int, request: Request, who: Auth) -> dict[str, Any]:
    return {"stopped": _fc(request).emergency_stop(pump_id, actor=who)}


@router.post("/pumps/{pump_id}/lock")
def lock(pump_id: int, body: LockIn, request: Request, who: Auth) -> dict[str, Any]:
    require_role(request, "supervisor")
    return _fc(request).set_locked(pump_id, body.locked, reason=body.reason, actor=who)


@router.post("/pumps/{pump_id}/totals/read", status_code=202)
def read_totals(pump_id: int, request: Request, _: Auth) -> dict[str, Any]:
    _fc(request).read_totals(pump_id)
    return {"requested": True, "event": "pump.totals"}


@router.get("/fills")
def list_fills(request: Request, _: Auth, pump_id: int | None = None, state: str | None = None,
               limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[dict[str, Any]]:
    return _fc(request).fills(pump_id, state, limit)


@router.get("/fills/{fill_id}")
def get_fill(fill_id: str, request: Request, _: Auth) -> dict[str, Any]:
    return _fc(request).fill(fill_id)


@router.get("/prices", tags=["prices"])
def get_prices(request: Request, _: Auth) -> dict[str, Any]:
    return _fc(request).prices.current()


@router.post("/prices", tags=["prices"], status_code=201)
def set_prices(body: PricesIn, request: Request, who: Auth) -> dict[str, Any]:
    from agent.errors import InvalidRequest

    if not body.confirm:
        raise InvalidRequest("a price change needs confirm=true (second confirmation)", code="confirm_required")
    require_role(request, "manager")
    fc = _fc(request)
    version = fc.prices.new_version(body.prices_fen, actor=who,
                                    max_step_fen=fc.agent.config.policy.max_price_step_fen)
    fc.apply_prices_to_idle()
    return fc.prices.current() | {"version": version}
