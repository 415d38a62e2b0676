"""Receipts from real orders: ESC/POS bytes decoded back to what the customer reads."""

from __future__ import annotations

import pytest

from agent.money import format_fen, format_ml
from agent.printing import load_receipt
from agent.receipts import Receipt, Row, build_receipt, einvoice_url, layout, to_escpos, to_image
from tests.receipts.conftest import Till
from tests.receipts.escpos_decode import decode


def _fuel_and_water(till: Till) -> dict[str, object]:
    fill = till.fill(25_360)  # 25.36 L at 7.89 = 200.09
    return till.sell([{"kind": "fuel", "fill_id": fill}, {"kind": "item", "sku": "6901234567892", "quantity": 2}],
                     given_fen=20_000)


def test_printed_bytes_read_as_the_receipt(till: Till) -> None:
    order = _fuel_and_water(till)
    receipt = load_receipt(till.agent, str(order["order_id"]))
    out = decode(to_escpos(receipt, "gb18030", 32), "gb18030")
    lines = [ln.strip() for ln in out.lines]
    assert out.inits == 1 and out.chinese_mode and out.cuts == 1
    assert "测试加油站" in lines
    assert any(ln.startswith("小票号 No.") and ln.endswith(str(order["receipt_no"])) for ln in lines)
    assert "2026-01-01 16:00:00" in out.text  # Beijing time
    assert "张三 (c01)" in out.text
    assert "1号机 1号枪 92#" in lines
    assert any(ln.startswith("25.360L x 7.89/L") and ln.endswith("200.09") for ln in lines)
    assert any(ln.startswith("2 x 2.00") and ln.endswith("4.00") for ln in lines)
    assert any(ln.startswith("合计 Total") and ln.endswith("204.09") for ln in lines)
    assert any("满200减10" in ln and ln.endswith("-10.00") for ln in lines)
    assert any(ln.startswith("应付 PAYABLE") and ln.endswith("194.09") for ln in lines)
    assert any(ln.startswith("现金 Cash") and ln.endswith("194.09") for ln in lines)
    assert any(ln.startswith("实收 Given") and ln.endswith("200.00") for ln in lines)
    assert any(ln.startswith("找零 Change") and ln.endswith("5.91") for ln in lines)
    assert out.qr == [f"https://einvoice.example/req?station=T001&receipt={order['receipt_no']}&amount=194.09"]
    assert out.drawer_kicks == 1  # a cash sale opens the drawer
    assert "重印" not in out.text
    assert all(len(ln.encode("gb18030")) <= 32 for ln in out.lines), "a line wider than 58 mm paper"


def test_receipt_numbers_are_unique_per_device(till: Till) -> None:
    a = till.sell([{"kind": "amount", "amount_fen": 1000}])
    b = till.sell([{"kind": "amount", "amount_fen": 1000}])
    assert a["receipt_no"] != b["receipt_no"]
    assert str(a["receipt_no"]).startswith("T001-20260101-")


def test_reprint_is_marked_and_keeps_the_drawer_shut(till: Till) -> None:
    order = till.sell([{"kind": "amount", "amount_fen": 1000}], given_fen=5000)
    receipt = load_receipt(till.agent, str(order["order_id"]), reprint=True, reprint_no=2)
    out = decode(to_escpos(receipt, "gb18030", 48))
    assert "** 重印 DUPLICATE #2 **" in [ln.strip() for ln in out.lines]
    assert out.drawer_kicks == 0
    assert "重印时间 Reprinted" in out.text


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-8"])
def test_each_cjk_encoding_round_trips(till: Till, encoding: str) -> None:
    order = till.sell([{"kind": "item", "sku": "6901234567892"}])
    out = decode(to_escpos(load_receipt(till.agent, str(order["order_id"])), encoding, 32), encoding)
    assert "矿泉水 550ml" in out.text and "谢谢惠顾" in out.text and out.images == 0


def test_text_the_encoding_lacks_prints_as_an_image() -> None:
    # 𠮷 (U+20BB7) exists in GB18030 (4 bytes) but not in GBK
    receipt = Receipt("o1", "R1", (Row("𠮷野家 便当"), Row("矿泉水", "2.00")))
    gbk = decode(to_escpos(receipt, "gbk", 32), "gbk")
    assert gbk.images == 1 and "𠮷" not in gbk.text and "矿泉水" in gbk.text
    full = decode(to_escpos(receipt, "gb18030", 32))
    assert full.images == 0 and "𠮷野家 便当" in full.text
    raster = decode(to_escpos(receipt, "image", 32))
    assert raster.images == 2 and raster.text.strip() == "" and not raster.chinese_mode


def test_qr_as_image_for_printers_without_native_qr(till: Till) -> None:
    order = till.sell([{"kind": "amount", "amount_fen": 1000}])
    out = decode(to_escpos(load_receipt(till.agent, str(order["order_id"])), qr_native=False))
    assert out.qr == [] and out.images == 1


def test_unpaid_order_preview_is_not_a_receipt(till: Till) -> None:
    order = till.checkout.create_order([{"kind": "amount", "amount_fen": 1000}], cashier="c01")
    receipt = load_receipt(till.agent, str(order["order_id"]))
    assert "未付款 NOT PAID" in receipt.text() and receipt.qr_payload is None and not receipt.open_drawer


def test_amounts_are_formatted_from_fen_without_floats() -> None:
    assert [format_fen(x) for x in (0, 5, 99, 100, 123_456, -250)] == ["0.00", "0.05", "0.99", "1.00", "1234.56",
                                                                      "-2.50"]
    assert [format_ml(x) for x in (5, 1_000, 25_360)] == ["0.005", "1.000", "25.360"]
    assert einvoice_url("T 1", "R/1", 5) == "https://einvoice.example/req?station=T%201&receipt=R%2F1&amount=0.05"
    order = {"order_id": "o", "receipt_no": "R", "state": "paid", "created_at_ms": 0, "total_fen": 5,
             "discount_fen": 1, "payable_fen": 4, "quote": {"discounts": [{"stage": "order", "name": "减",
                                                                          "amount_fen": 1}]},
             "lines": [{"kind": "item", "name": "糖", "quantity": 1, "unit_price_fen": 5, "amount_fen": 5}]}
    text = build_receipt(order, [{"tender": "cash", "amount_fen": 4, "detail": {"given_fen": 100,
                                                                                "change_fen": 96}}],
                         {"id": "T", "name": "站"}, now_ms=0).text()
    for want in ("0.05", "-0.01", "0.04", "0.96", "1.00"):
        assert want in text


@pytest.mark.parametrize("width", [24, 32, 42, 48, 64])
def test_no_row_is_wider_than_the_paper(width: int) -> None:
    rows = [Row("一二三四五六七八九十" * 3, "12345.67"), Row("x" * 100, align="center"),
            Row("站名很长很长很长", size="large"), Row("应付 PAYABLE", "99999.99", size="tall"), Row(kind="rule")]
    for row in rows:
        for line in layout(row, width):
            assert len(line.encode("gb18030")) <= (width // 2 if row.size == "large" else width), line


def test_preview_image_is_printer_width(till: Till) -> None:
    order = _fuel_and_water(till)
    receipt = load_receipt(till.agent, str(order["order_id"]))
    for width, dots in ((32, 384), (48, 576)):
        img = to_image(receipt, width)
        assert img.width == dots + 24 and img.height > 800


def test_docs_receipt_image_is_a_58mm_receipt() -> None:
    from pathlib import Path

    from PIL import Image

    png = Path(__file__).resolve().parents[2] / "docs" / "receipt.png"
    with Image.open(png) as img:
        assert img.width == 384 + 24 and img.height > 1000  # 58 mm: 384 dots plus the preview margin
