"""The simulated center's HTTP API (FastAPI): seed 002's payment API plus what a station needs.

Every answer is the seed's envelope ``{"errno": 0, "msg": "ok", "data": {...}}``; errors put the
HTTP-like code in ``errno`` (400 invalid, 404 unknown, 409 phone already a member's, 422 key reused or a
bad invoice amount) with the same HTTP status.

Write endpoints honour the fault knobs (``Faults``): ``delay_s``, ``fail_5xx`` (503, nothing
committed), ``commit_then_500`` and ``commit_then_drop`` (committed, then the answer is lost: the
fault proxy in front closes the connection when it sees ``X-Sim-Drop``).  Admin endpoints live
under ``/_sim/`` (faults, inspection, publishing config, mobile orders and commands over MQTT).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sync.center_sim.state import CenterState, now_ms, validate_item

__all__ = ["Publisher", "build_app"]


class Publisher(Protocol):
    """What the HTTP side asks of the MQTT side (``sync.center_sim.publisher.SimPublisher``)."""

    def payment_result(self, station_id: str, trade: dict[str, Any], *, times: int = 1) -> None: ...

    def config(self, station_id: str, name: str, version: int, data: dict[str, Any]) -> None: ...

    def command(self, station_id: str, kind: str, data: dict[str, Any], *, command_id: str | None = None,
                ttl_s: int | None = None) -> str: ...


def ok(data: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errno": 0, "msg": "ok", "data": data or {}}, headers=headers)


def err(code: int, msg: str) -> JSONResponse:
    return JSONResponse({"errno": code, "msg": msg, "data": {}}, status_code=code)


def build_app(state: CenterState, publisher: Publisher | None = None) -> FastAPI:
    app = FastAPI(title="Forecourt trade-center simulator", version="1")

    async def pre_write() -> JSONResponse | None:
        f = state.faults
        if f.delay_s > 0:
            await asyncio.sleep(f.delay_s)
        with state.lock:
            if f.fail_5xx > 0:
                f.fail_5xx -= 1
                return err(503, "simulated outage (nothing committed)")
        return None

    def post_write(resp: JSONResponse) -> JSONResponse:
        f = state.faults
        with state.lock:
            if f.commit_then_500 > 0:
                f.commit_then_500 -= 1
                return err(500, "simulated failure after commit")
            if f.commit_then_drop > 0:
                f.commit_then_drop -= 1
                resp.headers["X-Sim-Drop"] = "1"
        return resp

    async def body_json(request: Request) -> Any:
        try:
            return json.loads(await request.body())
        except ValueError:
            return None

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok"}

    # ------------------------------------------------------------ uploads
    @app.post("/upload")
    async def upload(request: Request) -> Response:
        if not request.headers.get("idempotency-key"):
            return err(400, "Idempotency-Key header is required")
        if (r := await pre_write()) is not None:
            return r
        item = await body_json(request)
        problem = validate_item(item)
        if problem is not None:
            return err(400, problem)
        status, reason = state.apply_upload(item)
        if status == "invalid":
            return err(400, reason)
        if status == "key_reused":
            return err(422, reason)
        return post_write(ok({"status": status, "event_id": item["event_id"]}))

    @app.post("/upload/batch")
    async def upload_batch(request: Request) -> Response:
        if not request.headers.get("idempotency-key"):
            return err(400, "Idempotency-Key header is required")
        if (r := await pre_write()) is not None:
            return r
        body = await body_json(request)
        msgs = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(msgs, list) or not msgs:
            return err(400, "messages: expected a non-empty list")
        for i, m in enumerate(msgs):  # structural errors reject the whole batch, nothing applied
            if (problem := validate_item(m)) is not None:
                return err(400, f"messages[{i}]: {problem}")
        results = []
        for m in msgs:
            status, reason = state.apply_upload(m)
            results.append({"event_id": m["event_id"], "status": status, "reason": reason})
        return post_write(ok({"results": results}))

    # ------------------------------------------------------------ payments (seed 002)
    @app.post("/gopay")
    async def gopay(request: Request) -> Response:
        if (r := await pre_write()) is not None:
            return r
        body = await body_json(request)
        code, msg, trade = state.gopay(body if isinstance(body, dict) else {})
        if code:
            return err(code, msg)
        if state.faults.auto_pay and trade["status"] == "pending":
            trade = state.notify(trade["trade_no"], "success", trade["amount_fen"], trade["created_at_ms"])
            _notify_station(trade)
        data = {**trade, "url": f"sim://pay/{trade['trade_no']}", "method": "GET"}
        return post_write(ok(data))

    def _notify_station(trade: dict[str, Any]) -> None:
        """Tell the station over MQTT, in the background (the HTTP answer never waits on the broker)."""
        if publisher is not None and trade.get("station_id"):
            times = 2 if state.faults.duplicate_notify else 1
            asyncio.get_running_loop().run_in_executor(
                None, lambda: publisher.payment_result(str(trade["station_id"]), trade, times=times))

    @app.post("/notify/{channel}/{trade_no}")
    async def notify(channel: str, trade_no: str, request: Request) -> Response:
        body = await body_json(request)
        body = body if isinstance(body, dict) else {}
        try:
            trade = state.notify(trade_no, str(body.get("status", "success")), body.get("amount_fen"),
                                 body.get("at_ms"))
        except KeyError:
            return err(404, f"no trade {trade_no}")
        _notify_station(trade)
        return ok({"result": "success", "trade_no": trade_no, "channel": channel})

    @app.get("/return/{channel}/{trade_no}")
    async def ret(channel: str, trade_no: str) -> Response:
        t = state.trades.get(trade_no)
        return err(404, f"no trade {trade_no}") if t is None else ok({**t, "channel": channel})

    @app.post("/refund")
    async def refund(request: Request) -> Response:
        if (r := await pre_write()) is not None:
            return r
        body = await body_json(request)
        code, msg, data = state.refund(body if isinstance(body, dict) else {})
        return err(code, msg) if code else post_write(ok(data))

    @app.get("/query/trade")
    async def query_trade(out_trade_no: str = "", trade_no: str = "") -> Response:
        with state.lock:
            no = trade_no or state.trade_by_out.get(out_trade_no, "")
            t = state.trades.get(no)
            return err(404, "no such trade") if t is None else ok(dict(t))

    @app.get("/query/refund")
    async def query_refund(out_refund_no: str) -> Response:
        with state.lock:
            r = state.refunds.get(out_refund_no)
            return err(404, "no such refund") if r is None else ok(dict(r))

    @app.get("/query/bill")
    async def query_bill(date: str, station_id: str = "") -> Response:
        return ok(state.bill(date, station_id or None))

    @app.get("/query/settle")
    async def query_settle(date: str, station_id: str = "") -> Response:
        return ok(state.settle(date, station_id or None))

    # ------------------------------------------------------------ station config, members, coupons
    @app.get("/station/{station_id}/config")
    async def station_config(station_id: str) -> Response:
        with state.lock:
            return ok({name: dict(v) for name, v in state.config.items()})

    @app.get("/station/{station_id}/mobile_orders")
    async def mobile_orders(station_id: str, status: str = "released") -> Response:
        with state.lock:
            rows = [dict(m) for m in state.mobile_orders.values()
                    if m["station_id"] == station_id and m["state"] == status]
        return ok({"orders": rows})

    @app.get("/member/lookup")
    async def member_lookup(phone: str = "", card_no: str = "", plate: str = "") -> Response:
        with state.lock:
            for m in state.members.values():
                if (phone and m.get("phone") == phone) or (card_no and m.get("card_no") == card_no) or (
                        plate and plate in m.get("plates", [])):
                    coupons = [dict(c) for c in state.coupons.values()
                               if c.get("member_id") == m["member_id"] and c.get("state") == "available"]
                    return ok({**m, "coupons": coupons})
        return err(404, "no such member")

    @app.post("/member/register")
    async def member_register(request: Request) -> Response:
        if (r := await pre_write()) is not None:
            return r
        b = await body_json(request)
        res = state.register_member(b if isinstance(b, dict) else {})
        if res["errno"]:
            return err(res["errno"], res["msg"])
        return post_write(ok({k: v for k, v in res.items() if k != "errno"}))

    @app.post("/member/stored_value/{op}")
    async def stored_value(op: str, request: Request) -> Response:
        if (r := await pre_write()) is not None:
            return r
        b = await body_json(request)
        if not isinstance(b, dict) or op not in ("debit", "credit") or not isinstance(b.get("amount_fen"), int):
            return err(400, "expected {out_type, out_id, member_id, amount_fen} and op debit|credit")

        def run() -> dict[str, Any]:
            m = state.members.get(str(b.get("member_id")))
            if m is None:
                return {"errno": 404, "msg": "no such member"}
            delta = -b["amount_fen"] if op == "debit" else b["amount_fen"]
            if m["balance_fen"] + delta < 0:
                return {"errno": 400, "msg": "insufficient stored value"}
            m["balance_fen"] += delta
            return {"errno": 0, "balance_fen": m["balance_fen"]}

        res = state.once(str(b.get("out_type")), str(b.get("out_id")), run)
        return err(res["errno"], res["msg"]) if res["errno"] else post_write(ok(res))

    @app.post("/coupon/{op}")
    async def coupon(op: str, request: Request) -> Response:
        if (r := await pre_write()) is not None:
            return r
        b = await body_json(request)
        moves = {"lock": ("available", "locked"), "settle": ("locked", "used"), "release": ("locked", "available")}
        if not isinstance(b, dict) or op not in moves:
            return err(400, "expected {coupon_id, out_type, out_id} and op lock|settle|release")

        def run() -> dict[str, Any]:
            c = state.coupons.get(str(b.get("coupon_id")))
            if c is None:
                return {"errno": 404, "msg": "no such coupon"}
            src, dst = moves[op]
            if c["state"] != src:
                return {"errno": 409, "msg": f"coupon is {c['state']}"}
            c["state"], c["order_id"] = dst, b.get("out_id")
            return {"errno": 0, "coupon_id": c["coupon_id"], "state": dst}

        res = state.once(f"coupon.{op}", f"{b.get('out_type')}:{b.get('out_id')}", run)
        return err(res["errno"], res["msg"]) if res["errno"] else post_write(ok(res))

    # ------------------------------------------------------------ invoices (发票)
    @app.post("/invoice")
    async def invoice(request: Request) -> Response:
        if (r := await pre_write()) is not None:
            return r
        b = await body_json(request)
        code, msg, data = state.issue_invoice(b if isinstance(b, dict) else {})
        return err(code, msg) if code else post_write(ok(data))

    # ------------------------------------------------------------ admin (simulator only)
    @app.get("/_sim/state")
    async def sim_state() -> dict[str, Any]:
        return state.snapshot()

    @app.post("/_sim/faults")
    async def sim_faults(request: Request) -> Response:
        b = await body_json(request)
        try:
            with state.lock:
                state.faults.update(b if isinstance(b, dict) else {})
        except KeyError as exc:
            return err(400, str(exc))
        return ok(state.snapshot()["faults"])

    @app.post("/_sim/config/{station_id}/{name}")
    async def sim_config(station_id: str, name: str, request: Request) -> Response:
        b = await body_json(request)
        if not isinstance(b, dict) or not isinstance(b.get("data"), dict):
            return err(400, "expected {version?, data}")
        with state.lock:
            version = int(b.get("version") or state.config.get(name, {}).get("version", 0) + 1)
            state.config[name] = {"version": version, "data": b["data"]}
        if publisher is not None:
            await asyncio.to_thread(publisher.config, station_id, name, version, b["data"])
        return ok({"name": name, "version": version})

    @app.post("/_sim/mobile_order/{station_id}")
    async def sim_mobile(station_id: str, request: Request) -> Response:
        b = await body_json(request)
        if not isinstance(b, dict):
            return err(400, "expected {nozzle, grade, max_amount_fen, ttl_s?}")
        order_id = str(b.get("order_id") or uuid.uuid4())
        ttl = int(b.get("ttl_s", 120))
        mo = {"order_id": order_id, "station_id": station_id, "nozzle": b.get("nozzle"), "grade": b.get("grade"),
              "max_amount_fen": b.get("max_amount_fen"), "paid_fen": b.get("paid_fen", b.get("max_amount_fen")),
              "state": "released", "expires_at_ms": now_ms() + ttl * 1000}
        with state.lock:
            state.mobile_orders[order_id] = mo
        cmd_id = None
        if publisher is not None:
            data = {k: mo[k] for k in ("order_id", "nozzle", "grade", "max_amount_fen", "paid_fen")}
            cmd_id = await asyncio.to_thread(lambda: publisher.command(
                station_id, "mobile_order.release", data, command_id=f"release:{order_id}", ttl_s=ttl))
        return ok({**mo, "command_id": cmd_id})

    @app.post("/_sim/command/{station_id}")
    async def sim_command(station_id: str, request: Request) -> Response:
        b = await body_json(request)
        if not isinstance(b, dict) or not isinstance(b.get("kind"), str):
            return err(400, "expected {kind, data, id?, ttl_s?}")
        if publisher is None:
            return err(503, "no MQTT publisher")
        pub = publisher
        cid = await asyncio.to_thread(lambda: pub.command(station_id, b["kind"], b.get("data") or {},
                                                          command_id=b.get("id"), ttl_s=b.get("ttl_s")))
        return ok({"id": cid})

    return app
