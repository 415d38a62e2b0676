"""View-models and the translation catalog, without Qt."""

from __future__ import annotations

from typing import Any

import pytest

from ui import i18n
from ui.i18n import CATALOG, error_text, placeholders, set_language, tr
from ui.viewmodels import (
    TILE_COLOURS,
    Keypad,
    OrderDraft,
    PaymentDraft,
    Phase,
    PumpBoard,
    customer_view,
    parse_amount,
    pump_tile,
)


@pytest.fixture(autouse=True)
def _zh() -> Any:
    set_language("zh_CN")
    yield
    set_language("zh_CN")


def snap(**kw: Any) -> dict[str, Any]:
    base = {"pump_id": 3, "state": "idle", "nozzle": None, "grade": None, "volume_ml": 0, "amount_fen": 0,
            "price_fen": None, "locked": False, "lock_reason": "", "alarm": "", "fill_id": None, "unpaid": 0,
            "prices_ok": True, "nozzles": []}
    return base | kw


def test_catalog_has_both_languages_with_the_same_placeholders() -> None:
    for key, (zh, en) in CATALOG.items():
        assert zh and en, key
        assert placeholders(zh) == placeholders(en), key
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh) or key.startswith(("btn.language", "order.item")) \
            or not any(c.isalpha() for c in zh.replace("¥", "").replace("L", "")), key


def test_tr_switches_language_and_survives_bad_input() -> None:
    assert tr("pump.title", n=3) == "3号油机"
    set_language("en")
    assert tr("pump.title", n=3) == "Pump 3"
    assert tr("no.such.key") == "no.such.key"
    assert tr("pump.title") == "Pump {n}"  # missing argument: the raw text, no crash
    with pytest.raises(ValueError, match="unknown language"):
        set_language("fr")
    assert i18n.language() == "en"


def test_error_text_translates_known_codes_and_falls_back() -> None:
    assert error_text("pump_locked", "pump 2 is locked", pump=2) == "2号油机已锁定，不能授权"
    assert error_text("pump_locked", "pump 2 is locked") == "操作失败：pump 2 is locked"  # no pump number
    assert error_text("weird_code", "something broke") == "操作失败：something broke"
    assert error_text(None, "") == "操作失败：?"


@pytest.mark.parametrize(("kw", "display", "primary", "blink"), [
    ({}, "idle", "authorize", False),
    ({"state": "calling", "nozzle": 5, "grade": "92"}, "calling", "authorize", True),
    ({"state": "authorized"}, "authorized", "stop", False),
    ({"state": "started"}, "authorized", "stop", False),
    ({"state": "fuelling", "volume_ml": 12_345, "amount_fen": 9740}, "fuelling", "stop", False),
    ({"state": "idle", "unpaid": 2}, "unpaid", "add", False),
    ({"state": "calling", "unpaid": 1}, "calling", "authorize", True),
    ({"state": "offline"}, "offline", "", False),
    ({"state": "idle", "alarm": "E7: pulser"}, "error", "", False),
    ({"state": "idle", "locked": True, "lock_reason": "维修"}, "locked", "", False),
    ({"state": "end_of_transaction", "volume_ml": 1000, "amount_fen": 789}, "finishing", "", False),
    ({"state": "mystery"}, "error", "", False),
])
def test_pump_tile_states(kw: dict[str, Any], display: str, primary: str, blink: bool) -> None:
    t = pump_tile(snap(**kw), {"92": "92#汽油"})
    assert (t.display, t.primary, t.blink) == (display, primary, blink)
    assert (t.background, t.foreground) == TILE_COLOURS[display][:2]


def test_pump_tile_texts() -> None:
    t = pump_tile(snap(state="fuelling", nozzle=5, grade="92", volume_ml=12_345, amount_fen=9740, unpaid=1),
                  {"92": "92#汽油"})
    assert (t.title, t.status, t.detail, t.litres, t.amount, t.unpaid_text) == \
        ("3号油机", "加油中", "5号枪  92#汽油", "12.34 L", "¥97.40", "挂单 1")
    assert t.can_stop
    assert pump_tile(snap(state="idle", locked=True, lock_reason="维修")).detail == "维修"
    assert "价格未确认" in pump_tile(snap(prices_ok=False)).detail


def test_tile_colours_are_distinct() -> None:
    backgrounds = {k: v[0] for k, v in TILE_COLOURS.items() if k not in ("suspended",)}
    assert len(set(backgrounds.values())) == len(backgrounds)


def test_board_applies_events() -> None:
    b = PumpBoard()
    assert b.load([snap(pump_id=1), snap(pump_id=2)]) == {1, 2}
    assert b.apply("pump.progress", {"pump_id": 1, "volume_ml": 500, "amount_fen": 395, "price_fen": 789,
                                     "nozzle": 1}) == {1}
    assert b.snapshots[1]["amount_fen"] == 395
    assert b.apply("pump.progress", {"pump_id": 9, "volume_ml": 1}) == set()
    assert b.apply("pump.status", snap(pump_id=2, state="calling")) == {2}
    assert b.tile(2).display == "calling"
    assert b.apply("pump.alarm", {"pump_id": 2, "code": "E1", "text": "x"}) == {2}
    assert b.tile(2).display == "error"
    assert b.apply("pump.prices", {"pump_id": 1, "ok": False}) == {1}
    assert b.apply("order.created", {"order_id": "x"}) == set()
    assert [t.pump_id for t in b.tiles()] == [1, 2]


ORDER = {
    "order_id": "o1", "receipt_no": "T001-20261123-00001", "state": "init", "member_id": None,
    "total_fen": 20_000, "discount_fen": 300, "payable_fen": 19_700,
    "quote": {"discounts": [{"stage": "item", "name": "会员价 92#", "amount_fen": 300},
                            {"stage": "order", "name": "无", "amount_fen": 0}], "notes": ["n"]},
    "lines": [
        {"line_no": 1, "kind": "fuel", "name": "1号机 1号枪 92#", "sku": "92", "fill_id": "f1", "quantity": 1,
         "volume_ml": 24_000, "unit_price_fen": 789, "amount_fen": 18_936, "discount_fen": 300},
        {"line_no": 2, "kind": "item", "name": "矿泉水", "sku": "6901", "fill_id": None, "quantity": 2,
         "volume_ml": None, "unit_price_fen": 532, "amount_fen": 1064, "discount_fen": 0},
    ],
}


def test_order_draft_mirrors_the_agents_order() -> None:
    d = OrderDraft(grade_names={"92": "92#汽油"})
    assert d.is_empty()
    d.load_order(ORDER)
    assert (d.subtotal_fen, d.discount_fen, d.payable_fen) == (20_000, 300, 19_700)
    assert [x.name for x in d.discounts] == ["会员价 92#"]
    assert d.fill_ids() == ["f1"]
    assert d.lines[0].title(d.grade_names) == "1号机 1号枪 92#汽油"
    assert d.lines[0].detail() == "24.00 升 × ¥7.89/升"
    assert d.lines[1].detail() == "2 × ¥5.32"
    d.set_member({"member_id": "m1", "name": "张三"})
    assert d.member_name == "张三"
    d.clear()
    assert d.is_empty()
    assert d.order_id is None
    assert d.grade_names == {"92": "92#汽油"}


def test_payment_draft_combined_and_cash_change() -> None:
    p = PaymentDraft(19_700)
    p.add("stored_value", 5000, ref="m1")
    assert p.remaining_fen == 14_700
    with pytest.raises(ValueError, match="bad_amount"):
        p.add("qr_scan", 20_000)
    p.add("cash", 20_000)
    assert (p.paid_fen, p.remaining_fen, p.change_fen, p.complete) == (19_700, 0, 5300, True)
    assert p.legs[1].to_api() == {"tender": "cash", "amount_fen": 14_700, "given_fen": 20_000}
    with pytest.raises(ValueError, match="nothing left"):
        p.add("cash", 100)
    p.remove(1)
    assert not p.complete
    assert p.add("qr_scan", ref="28123").to_api() == {"tender": "qr_scan", "amount_fen": 14_700,
                                                      "auth_code": "28123"}


def test_keypad_and_amounts() -> None:
    k = Keypad()
    for key in "12.345":
        k.press(key)
    assert k.text == "12.34"
    assert k.fen() == 1234
    k.press("<")
    k.press(".")
    assert k.text == "12.3"
    k.press("C")
    assert k.fen() is None
    assert parse_amount("5") == 500
    for bad in ("0", "-1", "1.234", "abc", ""):
        with pytest.raises(ValueError, match="bad_amount"):
            parse_amount(bad)


def test_customer_view_phases() -> None:
    d = OrderDraft(grade_names={"92": "92#汽油"})
    assert customer_view(Phase.ORDER, None).phase is Phase.IDLE
    d.load_order(ORDER)
    v = customer_view(Phase.ORDER, d)
    assert (v.headline, v.payable, v.discount) == ("您的订单", "¥197.00", "-¥3.00")
    assert v.rows[0].title == "1号机 1号枪 92#汽油"
    assert v.discounts[0].amount == "-¥3.00"
    q = customer_view(Phase.QR, d, qr_payload="pay://x")
    assert (q.headline, q.qr_payload) == ("请扫码支付 ¥197.00", "pay://x")
    paid = customer_view(Phase.PAID, d, change_fen=300)
    assert paid.message == "找零 ¥3.00\n谢谢惠顾，一路平安！"
    assert customer_view(Phase.FAILED, d, reason="余额不足").message == "余额不足"
