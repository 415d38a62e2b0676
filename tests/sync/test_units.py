"""Unit tests without broker or simulator: backoff, HTTP classification, inbox rules."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from agent.clock import FixedClock
from sync.backoff import Backoff
from sync.http import CenterClient, Outcome, OutMessage, RetryLater, Unauthorized, idempotency_header
from sync.inbox import InboxProcessor
from sync.topics import command_topic, config_topic
from tests.sync.conftest import STATION


def test_full_jitter_backoff_stays_in_its_window() -> None:
    b = Backoff(base_s=1.0, cap_s=60.0)
    rng = random.Random(7)
    assert [b.ceiling(a) for a in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    for attempt in range(50):
        d = b.delay(attempt, rng)
        assert 0.0 <= d <= b.ceiling(attempt)
    assert b.ceiling(10_000) == 60.0


def _msg(event_id: str = "e1") -> OutMessage:
    return OutMessage(event_id, "order", "o1", "order.created", '{"order_id": "o1"}', 1)


def _client(handler) -> CenterClient:
    return CenterClient(httpx.Client(base_url="http://center", transport=httpx.MockTransport(handler)), STATION)


def test_upload_sends_the_idempotency_key_and_classifies_answers() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return {"e1": httpx.Response(200, json={"errno": 0, "msg": "ok", "data": {"status": "duplicate"}}),
                "e2": httpx.Response(422, json={"errno": 422, "msg": "key reused"}),
                "e3": httpx.Response(400, json={"errno": 400, "msg": "bad"}),
                "e4": httpx.Response(503, headers={"Retry-After": "7"}),
                "e5": httpx.Response(403)}[json.loads(req.content)["event_id"]]

    c = _client(handler)
    assert c.upload_one(_msg("e1")).outcome is Outcome.CONFIRMED
    assert seen[0].headers["idempotency-key"] == '"e1"'
    assert c.upload_one(_msg("e2")).outcome is Outcome.PARK
    assert c.upload_one(_msg("e3")).outcome is Outcome.PARK
    with pytest.raises(RetryLater) as ei:
        c.upload_one(_msg("e4"))
    assert ei.value.retry_after_s == 7.0
    with pytest.raises(Unauthorized):
        c.upload_one(_msg("e5"))
    with pytest.raises(ValueError, match="sf-string"):
        idempotency_header('bad"key')


def test_timeouts_are_retryable() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=req)

    with pytest.raises(RetryLater):
        _client(handler).upload_batch([_msg("a"), _msg("b")])


def test_batch_result_missing_an_item_is_retried_not_assumed() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errno": 0, "msg": "ok", "data": {"results": [
            {"event_id": "a", "status": "ok"}]}})

    res = _client(handler).upload_batch([_msg("a"), _msg("b")])
    assert res is not None and [r.outcome for r in res] == [Outcome.CONFIRMED, Outcome.RETRY]


@pytest.fixture
def inbox(make_station):
    clock = FixedClock()
    st = make_station("http://unused", 1, start=False, clock=clock)
    return st.agent, InboxProcessor(st.agent), clock


def _cmd(cid: str, kind: str, data: dict, **extra) -> tuple[str, bytes]:
    return command_topic(STATION, kind), json.dumps({"schema": 1, "id": cid, "kind": kind, "data": data,
                                                     **extra}).encode()


REL = {"order_id": "m1", "nozzle": 3, "grade": "95", "max_amount_fen": 30_000, "paid_fen": 30_000}


def test_inbox_dedups_and_acts_once(inbox) -> None:
    agent, ib, _clock = inbox
    assert ib.handle(*_cmd("c1", "mobile_order.release", REL)).status == "applied"
    assert ib.handle(*_cmd("c1", "mobile_order.release", REL)).status == "duplicate"
    assert agent.store.query_one("SELECT COUNT(*) AS n FROM mobile_orders") == {"n": 1}
    assert ib.handle(*_cmd("c2", "mobile_order.cancel", {"order_id": "m1"})).result["status"] == "cancelled"
    assert ib.handle(*_cmd("c3", "mobile_order.release", {**REL, "grade": "98"})).status == "rejected"


def test_inbox_expiry_is_checked_on_our_clock(inbox) -> None:
    agent, ib, clock = inbox
    deadline = clock.now_ms() + 120_000
    clock.advance(121)
    res = ib.handle(*_cmd("late", "mobile_order.release", REL, expires_at_ms=deadline))
    assert res.status == "expired"
    assert agent.store.query_one("SELECT COUNT(*) AS n FROM mobile_orders") == {"n": 0}


@pytest.mark.parametrize("payload", [b"", b"[]", b'{"schema": 1}', b'{"schema": 1, "id": "x", "kind": "other",'
                                     b' "data": {}}', "中文".encode("gb18030")])
def test_inbox_parks_garbage(inbox, payload: bytes) -> None:
    _agent, ib, _ = inbox
    res = ib.handle(command_topic(STATION, "mobile_order.release"), payload)
    assert res.status == "parked" and res.result["reason"]
    assert ib.handle(command_topic(STATION, "mobile_order.release"), payload).status == "duplicate"


def test_config_versions_only_move_forward(inbox) -> None:
    agent, ib, _ = inbox

    def cfg(v: int, fen: int) -> tuple[str, bytes]:
        return config_topic(STATION, "prices"), json.dumps(
            {"schema": 1, "version": v, "data": {"prices_fen": {"92": fen}}}).encode()

    assert ib.handle(*cfg(5, 800)).status == "applied"
    assert ib.handle(*cfg(4, 700)).status == "stale"
    assert ib.handle(*cfg(5, 800)).status == "duplicate"
    row = agent.store.query_one("SELECT version, prices FROM price_sets ORDER BY version DESC LIMIT 1")
    assert row is not None and row["version"] == 5 and json.loads(row["prices"])["92"] == 800
