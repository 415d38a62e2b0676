"""Fuzzing with hypothesis: DART codec, config, MQTT inbox, center answers, local API, scanner input.

Properties: no crash (the only exceptions are the documented ones; the API never answers 500 and
a 5xx is always a structured, designed error such as 503 "needs the center"), and a rejected input
changes nothing (database digest before == after).  Example counts are fixed by ``settings`` so the
report can state them; a longer run: ``HYPOTHESIS_PROFILE=long`` multiplies them by 10.
"""

from __future__ import annotations

import json
import os
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent.api import ApiServer, create_app
from agent.checkout.service import CheckoutService
from agent.config import ConfigError, parse_config
from agent.events import EventBus
from agent.ports import GatewayRejected, GatewayUnavailable
from agent.service import Agent
from agent.store import Store
from drivers.dart.blocks import Direction
from drivers.dart.codec import DecodeError, Decoder, Frame
from reliability.snapshot import db_digest
from sync.center_sim.server import CenterHandle, serve_center
from sync.gateway import HttpCenterGateway
from sync.http import CenterClient, CenterError, OutMessage
from sync.inbox import InboxProcessor
from tests.checkout.conftest import EXTRA
from tests.forecourt_harness import Station, station

SCALE = 10 if os.environ.get("HYPOTHESIS_PROFILE") == "long" else 1
FAST = settings(deadline=None, derandomize=SCALE == 1, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                      HealthCheck.filter_too_much])
TOKEN = "test-token-0123456789abcdef"

#: Past failures and tricky inputs, replayed by every run (see the file's "_doc").
CORPUS: dict[str, list[dict[str, Any]]] = json.loads(
    (Path(__file__).with_name("fuzz_corpus.json")).read_text(encoding="utf-8"))


def corpus(name: str, convert: Any) -> Any:
    """Apply every saved input of ``name`` as a hypothesis ``@example`` (replayed before random inputs)."""
    def deco(fn: Any) -> Any:
        for entry in CORPUS.get(name, []):
            fn = example(**convert(entry))(fn)
        return fn
    return deco

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63),
                      st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=40), st.sampled_from(["", "0", "-1", "1e999", "92", "m1", "\x00", "👍" * 30]))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                          max_leaves=12)


# ------------------------------------------------------------------ DART codec
@settings(FAST, max_examples=300 * SCALE)
@corpus("dart_decoder", lambda e: {"data": bytes.fromhex(e["hex"].replace(" ", "")), "cuts": e["cuts"],
                                   "direction": Direction(e["direction"])})
@given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8),
       direction=st.sampled_from(list(Direction)))
def test_dart_decoder_never_raises_on_any_bytes(data: bytes, cuts: list[int], direction: Direction) -> None:
    dec = Decoder(direction)
    out: list[Frame | DecodeError] = []
    last = 0
    for c in sorted(cuts) + [len(data)]:
        out += dec.feed(data[last:c])
        last = max(last, c)
    assert all(isinstance(x, Frame | DecodeError) for x in out)
    assert dec.buffered <= 512 + 2


# ------------------------------------------------------------------ config files
VALID = {"station": {"id": "T001"}, "grades": [{"code": "92", "name": "92#", "price_fen": 789}],
         "lines": [{"name": "bus1", "protocol": "dart", "url": "/dev/ttyUSB0",
                    "pumps": [{"pump_id": 1, "address": 80, "nozzles": [{"number": 1, "logical": 1, "grade": "92"}]}]}]}


def _mutate(doc: Any, path: list[int], value: Any) -> Any:
    """Replace the leaf/subtree chosen by ``path`` (indices into sorted keys / list items) with ``value``."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    if isinstance(doc, dict):
        keys = sorted(doc)
        k = keys[path[0] % len(keys)]
        return {**doc, k: _mutate(doc[k], path[1:], value)}
    i = path[0] % len(doc)
    return [*doc[:i], _mutate(doc[i], path[1:], value), *doc[i + 1:]]


@settings(FAST, max_examples=200 * SCALE)
@corpus("config", lambda e: e)
@given(path=st.lists(st.integers(0, 20), min_size=1, max_size=6), value=json_value,
       extra=st.dictionaries(st.text(max_size=10), json_value, max_size=2))
def test_config_parse_accepts_or_names_the_error(path: list[int], value: Any, extra: dict[str, Any]) -> None:
    doc = _mutate(VALID, path, value)
    if isinstance(doc, dict):
        doc = {**doc, **extra}
    try:
        parse_config(doc)  # type: ignore[arg-type]
    except ConfigError as exc:
        message = str(exc)
        assert message


# ------------------------------------------------------------------ MQTT payloads into the inbox
@pytest.fixture(scope="module")
def inbox_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    cfg = parse_config({"station": {"id": "T001"}, "grades": [{"code": "92", "name": "92#", "price_fen": 789}]})
    agent = Agent(cfg, Store(tmp_path_factory.mktemp("inbox") / "i.db"), bus=EventBus())
    yield agent
    agent.close()


topics = st.one_of(st.sampled_from(["center/to/T001/cmd/release", "center/to/T001/cmd/cancel",
                                    "center/to/T001/config/prices", "center/to/T001/config/promotions",
                                    "center/to/T001/cmd/payment_result", "center/to/T002/cmd/release",
                                    "center/to/T001/cmd/", "center/to/T001"]),
                   st.text(max_size=40))


def _envelope(kind: str, data: Any, extra: dict[str, Any]) -> bytes:
    return json.dumps({"schema": 1, "id": "c-" + kind, "kind": kind, "version": 1, "data": data, **extra},
                      default=str).encode()


payloads = st.one_of(st.binary(max_size=200),
                     json_value.map(lambda v: json.dumps(v).encode()),
                     st.builds(_envelope, st.sampled_from(["release", "cancel", "payment_result", "prices", "x"]),
                               json_value, st.dictionaries(st.sampled_from(["schema", "id", "kind", "version",
                                                                            "expires_at_ms"]), json_leaf,
                                                           max_size=3)))


@settings(FAST, max_examples=200 * SCALE)
@corpus("inbox", lambda e: {"topic": e["topic"], "payload": e["payload"].encode()})
@given(topic=topics, payload=payloads)
def test_inbox_parks_bad_messages_and_changes_nothing_else(inbox_agent: Agent, topic: str, payload: bytes) -> None:
    proc = InboxProcessor(inbox_agent)
    before = db_digest(inbox_agent.store.path, skip=("inbox",))
    res = proc.handle(topic, payload)
    after = db_digest(inbox_agent.store.path, skip=("inbox",))
    if res.status in ("parked", "duplicate", "expired", "stale", "refused", "rejected", "ignored"):
        assert before == after, f"{res.status} message changed {[k for k in before if before[k] != after.get(k)]}"


# ------------------------------------------------------------------ center answers
answers = st.tuples(st.sampled_from([200, 200, 200, 201, 204, 400, 401, 403, 404, 409, 422, 429, 500, 503]),
                    st.one_of(st.binary(max_size=80), json_value.map(lambda v: json.dumps(v).encode()),
                              st.builds(lambda e, d, m: json.dumps({"errno": e, "msg": m, "data": d}).encode(),
                                        json_leaf, json_value, json_leaf)),
                    st.dictionaries(st.sampled_from(["retry-after", "content-type"]),
                                    st.sampled_from(["1", "-5", "abc", "application/json", "9" * 30]), max_size=2))


def _client(answer: tuple[int, bytes, dict[str, str]], fail: bool) -> httpx.Client:
    def handler(request: httpx.Request) -> httpx.Response:
        if fail:
            raise httpx.ReadTimeout("lost", request=request)
        return httpx.Response(answer[0], content=answer[1], headers=answer[2])

    return httpx.Client(base_url="http://center.test", transport=httpx.MockTransport(handler))


CALLS = ["gopay", "query_trade", "refund", "stored_value", "member_lookup", "upload_one", "upload_batch",
         "query_bill"]

@pytest.mark.parametrize("call", CALLS)
@settings(FAST, max_examples=60 * SCALE)
@corpus("center_answers", lambda e: {"answer": (e["status"], e["body"].encode(), e["headers"]), "fail": e["fail"]})
@given(answer=answers, fail=st.booleans())
def test_gateway_and_center_client_survive_any_answer(answer: tuple[int, bytes, dict[str, str]], fail: bool,
                                                      call: str) -> None:
    with _client(answer, fail) as http:
        gw = HttpCenterGateway(http, "T001")
        cc = CenterClient(http, "T001")
        msg = OutMessage("e1", "order", "o1", "order.created", '{"order_id":"o1"}', 1)
        calls = {"gopay": lambda: gw.gopay(out_trade_no="p1", order_id="o1", amount_fen=100, channel="qr"),
                 "query_trade": lambda: gw.query_trade("p1"),
                 "refund": lambda: gw.refund(out_refund_no="r1", out_trade_no="p1", amount_fen=100, reason="x"),
                 "stored_value": lambda: gw.stored_value("debit", out_id="p1", member_id="m1", amount_fen=100),
                 "member_lookup": lambda: gw.member_lookup(phone="13800000001"),
                 "upload_one": lambda: cc.upload_one(msg),
                 "upload_batch": lambda: cc.upload_batch([msg, msg]),
                 "query_bill": lambda: cc.query_bill("2026-01-01")}
        try:
            calls[call]()
        except (GatewayUnavailable, GatewayRejected, CenterError):
            pass


@pytest.mark.parametrize("body", [b'{"errno":null,"data":true}', b'{"errno":null}'])
def test_upload_one_survives_a_malformed_200(body: bytes) -> None:
    with _client((200, body, {}), False) as http:
        try:
            CenterClient(http, "T001").upload_one(OutMessage("e1", "order", "o1", "order.created", "{}", 1))
        except CenterError:
            pass


# ------------------------------------------------------------------ local API (every POST route) and scanner
class Api:
    def __init__(self, st_: Station, client: httpx.Client, center: CenterHandle) -> None:
        self.st, self.client, self.center = st_, client, center
        self.db = st_.agent.store.path
        schema = client.get("/openapi.json").json()
        self.posts = sorted(p for p, ops in schema["paths"].items() if "post" in ops)
        self.props: dict[str, list[str]] = {}
        for p in self.posts:
            body = schema["paths"][p]["post"].get("requestBody", {})
            ref = body.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
            comp = schema.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[-1], {})
            self.props[p] = sorted(comp.get("properties", {}))

    def digest(self) -> dict[str, str]:
        # pump status batches and the print queue are touched by background threads
        return db_digest(self.db, skip=("pump_settings", "print_jobs"))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    center = serve_center()
    tmp = tmp_path_factory.mktemp("api")
    with station(tmp, pumps=2, extra=EXTRA) as st_:
        http = httpx.Client(base_url=center.url, timeout=3.0)
        checkout = CheckoutService(st_.agent, HttpCenterGateway(http, "T001"))
        st_.agent.set_link("center", True)
        checkout.start(sentinel_s=3600)
        st_.wait_all_idle()
        server = ApiServer(create_app(st_.agent, TOKEN), port=0)
        server.start()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client:
            yield Api(st_, client, center)
        server.stop()
        checkout.close()
        http.close()
    center.stop()


def _check(api: Api, method: str, path: str, body: Any) -> None:
    before = api.digest()
    r = api.client.request(method, path, json=body) if body is not ... else api.client.request(method, path)
    assert r.status_code != 500, f"{path} {body!r}: 500 {r.text[:300]}"
    if r.status_code >= 500:
        assert r.json()["error"]["code"], r.text  # a designed error (503: needs the center / pumps)
    if r.status_code >= 400:
        after = api.digest()
        assert before == after, (f"{path} {body!r} -> {r.status_code} but changed "
                                 f"{[k for k in before if before[k] != after.get(k)]}")


path_ids = st.one_of(st.integers(-3, 5).map(str), st.text(string.ascii_letters + string.digits + "-_.%", max_size=40))


@settings(FAST, max_examples=200 * SCALE)
@given(data=st.data())
def test_every_post_route_rejects_bad_bodies_without_500_or_change(api: Api, data: st.DataObject) -> None:
    path = data.draw(st.sampled_from(api.posts), label="route")
    concrete = path
    while "{" in concrete:
        a, rest = concrete.split("{", 1)
        concrete = a + data.draw(path_ids, label="id") + rest.split("}", 1)[1]
    keys = api.props.get(path, [])
    shaped = st.fixed_dictionaries({}, optional={k: json_value for k in keys}) if keys else json_value
    body = data.draw(st.one_of(shaped, json_value, st.just(...)), label="body")
    if path.endswith("/emergency-stop"):
        return  # a real e-stop locks pumps for the rest of the module (tested in tests/test_forecourt.py)
    _check(api, "POST", concrete, body)


scanner_text = st.one_of(st.text(max_size=64), st.text(string.digits, min_size=0, max_size=40),
                         st.sampled_from(["6901234567892", "101", "6901234567892\n", "\x1b[A", "' OR 1=1 --",
                                          "６９０１２３４５６７８９２", "0" * 33, "4111111111111111=2512"]))


@settings(FAST, max_examples=150 * SCALE)
@given(code=scanner_text, where=st.sampled_from(["sku", "plu", "auth_code", "member_phone", "plate"]))
def test_scanner_input_is_validated(api: Api, code: str, where: str) -> None:
    """Whatever a barcode scanner, keyboard wedge or QR reader types goes through validation, never a 500."""
    if where in ("sku", "plu"):
        _check(api, "POST", "/api/v1/checkout/orders", {"lines": [{"kind": "item", "sku": code}]})
    elif where == "auth_code":
        r = api.client.post("/api/v1/checkout/orders", json={"lines": [{"kind": "amount", "amount_fen": 100}]})
        assert r.status_code == 201, r.text
        oid = r.json()["order_id"]
        q = api.client.post(f"/api/v1/orders/{oid}/confirm").json()
        _check(api, "POST", f"/api/v1/orders/{oid}/pay",
               {"quote_id": q["quote_id"], "tenders": [{"tender": "qr_scan", "amount_fen": 100, "auth_code": code}]})
    elif where == "member_phone":
        r = api.client.get("/api/v1/members/lookup", params={"phone": code})
        assert r.status_code != 500 and r.status_code < 600, r.text
    else:
        _check(api, "POST", "/api/v1/pumps/1/plate", {"plate": code})


def test_fuzzed_api_left_a_consistent_database(api: Api) -> None:
    from reliability.checker import integrity

    assert integrity(Path(api.db)) == "ok"
