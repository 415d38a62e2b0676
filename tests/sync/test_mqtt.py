"""Acceptance: a broker restart loses no command; duplicates act once; expired releases never act;
invalid payloads are parked and never block the next message; config applies only newer versions."""

from __future__ import annotations

import json
import threading
import time

from sync.topics import command_topic, config_topic
from tests.sync.conftest import STATION, wait_until


def _count(agent, sql: str) -> int:
    row = agent.store.query_one(sql)
    assert row is not None
    return int(next(iter(row.values())))


def _released(agent) -> int:
    return _count(agent, "SELECT COUNT(*) FROM mobile_orders")


def _inbox(agent, command_id: str) -> dict | None:
    return agent.store.query_one("SELECT status, result FROM inbox WHERE command_id = ?", (command_id,))


def _release(i: int) -> dict:
    return {"order_id": f"m{i:04d}", "nozzle": 1 + i % 8, "grade": "92", "max_amount_fen": 20_000, "paid_fen": 20_000}


def _marker(center, name: str) -> None:
    center.publisher.command(STATION, "station.message", {"text": name}, command_id=f"marker:{name}")


def test_broker_restart_mid_stream_loses_nothing(broker, center, make_station) -> None:
    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: agent.sync_status()["links"]["broker"], 15, "broker link up")
    released_events: list[str] = []
    sub = agent.bus.subscribe(10_000)

    halfway = threading.Event()
    errors: list[BaseException] = []

    def stream() -> None:
        try:
            for i in range(200):
                center.publisher.command(STATION, "mobile_order.release", _release(i),
                                         command_id=f"release:m{i:04d}", ttl_s=600)
                if i == 80:
                    halfway.set()
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            halfway.set()

    t = threading.Thread(target=stream)
    t.start()
    assert halfway.wait(30)
    broker.restart()  # SIGTERM (persistence saved) + start on the same port
    t.join(60)
    assert not errors, errors
    wait_until(agent, lambda: _released(agent) == 200, 40, "200 releases stored")
    wait_until(agent, lambda: agent.sync_status()["links"]["broker"], 15, "broker link up again")

    # the same command twice, and a second command for the same order: each acts once
    center.publisher.command(STATION, "mobile_order.release", _release(5), command_id="release:m0005")
    center.publisher.command(STATION, "mobile_order.release", _release(6), command_id="release-again:m0006")
    _marker(center, "after-dups")
    wait_until(agent, lambda: _inbox(agent, "marker:after-dups") is not None, 15, "marker handled")
    assert _released(agent) == 200
    assert _count(agent, "SELECT COUNT(*) FROM audit WHERE action = 'mobile_order.release'") == 200
    again = _inbox(agent, "release-again:m0006")
    assert again is not None and json.loads(again["result"])["status"] == "already_known"
    link_went_down = False
    while (ev := sub.get(timeout=0)) is not None:
        if ev.topic == "sync.link" and ev.data["link"] == "broker" and not ev.data["up"]:
            link_went_down = True
        if ev.topic == "center.mobile_order.release" and ev.data.get("status") == "applied" and \
                ev.data.get("command_id", "").startswith("release:"):
            released_events.append(ev.data["command_id"])
    sub.close()
    assert link_went_down, "the restart really cut the session"
    assert len(released_events) == len(set(released_events)) == 200


def test_expired_release_never_acts(broker, center, make_station) -> None:
    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: agent.sync_status()["links"]["broker"], 15, "broker link up")
    now = int(time.time() * 1000)
    stale = {"schema": 1, "id": "release:late", "kind": "mobile_order.release", "data": _release(999),
             "issued_at_ms": now - 200_000, "expires_at_ms": now - 80_000}
    center.publisher.publish(command_topic(STATION, "mobile_order.release"), stale, ttl_s=120)
    _marker(center, "after-expired")
    wait_until(agent, lambda: _inbox(agent, "marker:after-expired") is not None, 15, "marker handled")
    row = _inbox(agent, "release:late")
    assert row is not None and row["status"] == "expired"
    assert _released(agent) == 0
    # redelivery of the same expired command still never acts
    center.publisher.publish(command_topic(STATION, "mobile_order.release"), stale, ttl_s=120)
    _marker(center, "after-expired-2")
    wait_until(agent, lambda: _inbox(agent, "marker:after-expired-2") is not None, 15, "marker handled")
    assert _released(agent) == 0


def test_invalid_payloads_are_parked_and_do_not_block(broker, center, make_station) -> None:
    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: agent.sync_status()["links"]["broker"], 15, "broker link up")
    pub = center.publisher
    pub.publish(command_topic(STATION, "mobile_order.release"), b"\xff not json")
    pub.publish(command_topic(STATION, "mobile_order.release"), {"schema": 99, "id": "x1", "kind": "k", "data": {}})
    pub.publish(command_topic(STATION, "mobile_order.release"),
                {"schema": 1, "id": "bad-amount", "kind": "mobile_order.release",
                 "data": {**_release(1), "max_amount_fen": "lots"}})
    pub.publish(command_topic(STATION, "self.destruct"), {"schema": 1, "id": "unknown-kind",
                                                          "kind": "self.destruct", "data": {}})
    center.publisher.command(STATION, "mobile_order.release", _release(2), command_id="good")
    wait_until(agent, lambda: _inbox(agent, "good") is not None, 15, "the good command handled")
    assert _count(agent, "SELECT COUNT(*) FROM inbox WHERE status = 'parked'") == 4
    assert _released(agent) == 1
    reasons = [json.loads(r["result"])["reason"] for r in
               agent.store.query("SELECT result FROM inbox WHERE status = 'parked'")]
    assert any("not UTF-8 JSON" in r for r in reasons) and any("max_amount_fen" in r for r in reasons)


def test_config_applies_only_newer_versions(broker, center, make_station) -> None:
    pub = center.publisher
    pub.config(STATION, "prices", 3, {"prices_fen": {"92": 801, "95": 851}})
    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: _inbox(agent, "config:prices:3") is not None, 15, "retained config applied")
    pub.publish(config_topic(STATION, "prices"), {"schema": 1, "version": 2, "data": {"prices_fen": {"92": 1}}},
                retain=True)
    pub.config(STATION, "promotions", 1, {"rules": [{"id": "p1", "kind": "spend_and_get"}]})
    wait_until(agent, lambda: _inbox(agent, "config:promotions:1") is not None, 15, "promotions applied")
    row = agent.store.query_one("SELECT version, prices FROM price_sets ORDER BY version DESC LIMIT 1")
    assert row is not None and row["version"] == 3 and json.loads(row["prices"]) == {"92": 801, "95": 851}
    stale = _inbox(agent, "config:prices:2")
    assert stale is not None and stale["status"] == "stale"


def test_releases_lost_on_mqtt_are_pulled_over_http_after_reconnect(broker, center, make_station) -> None:
    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: agent.sync_status()["links"]["broker"], 15, "broker link up")
    now = int(time.time() * 1000)
    # The center knows these releases but the MQTT messages were lost (never published here).
    with center.state.lock:
        for oid, expires in (("lost-1", now + 600_000), ("lost-late", now - 1_000)):
            center.state.mobile_orders[oid] = {"order_id": oid, "station_id": STATION, "nozzle": 2, "grade": "95",
                                               "max_amount_fen": 10_000, "paid_fen": 10_000, "state": "released",
                                               "expires_at_ms": expires}
    broker.restart()
    wait_until(agent, lambda: _inbox(agent, "release:lost-late") is not None, 20, "resync after reconnect")
    wait_until(agent, lambda: _inbox(agent, "release:lost-1") is not None, 20, "resync after reconnect")
    assert _inbox(agent, "release:lost-1")["status"] == "applied"
    assert _inbox(agent, "release:lost-late")["status"] == "expired"
    assert _released(agent) == 1


def test_duplicate_payment_notify_acts_once(broker, center, make_station) -> None:
    import httpx

    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: agent.sync_status()["links"]["broker"], 15, "broker link up")
    seen: list[str] = []
    sub = agent.bus.subscribe()
    center.state.faults.duplicate_notify = True
    body = httpx.post(center.url + "/gopay", json={"out_trade_no": "pay-1", "amount_fen": 12_345,
                                                   "station_id": STATION}, timeout=5).json()
    trade_no = body["data"]["trade_no"]
    # the channel calls back twice more (duplicate notifies): still one trade, one result
    for _ in range(2):
        httpx.post(f"{center.url}/notify/wechat/{trade_no}", json={"status": "success", "amount_fen": 12_345},
                   timeout=5)
    _marker(center, "after-notify")
    wait_until(agent, lambda: _inbox(agent, "marker:after-notify") is not None, 15, "marker handled")
    while (ev := sub.get(timeout=0)) is not None:
        if ev.topic == "center.payment.result":
            seen.append(ev.data["command_id"])
    sub.close()
    assert seen == [f"notify:{trade_no}:success"]
    assert _count(agent, "SELECT COUNT(*) FROM inbox WHERE kind = 'payment.result'") == 1


def test_presence_is_retained_online_then_offline(broker, center, make_station) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    st = make_station(center.url, broker.port)
    agent = st.agent
    wait_until(agent, lambda: agent.sync_status()["links"]["broker"], 15, "broker link up")
    states: list[str] = []
    got = threading.Condition()

    def on_message(c, u, msg) -> None:
        with got:
            states.append(json.loads(msg.payload)["state"])
            got.notify_all()

    watcher = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="watcher", protocol=MQTTProtocolVersion.MQTTv5)
    watcher.on_message = on_message
    watcher.on_connect = lambda c, u, f, rc, p: c.subscribe(f"station/{STATION}/status", qos=1)
    watcher.connect("127.0.0.1", broker.port)
    watcher.loop_start()
    try:
        with got:
            assert got.wait_for(lambda: states[-1:] == ["online"], 10)  # retained
        assert st.sync is not None
        st.sync.stop()
        with got:
            assert got.wait_for(lambda: states[-1:] == ["offline"], 10)
    finally:
        watcher.disconnect()
        watcher.loop_stop()
