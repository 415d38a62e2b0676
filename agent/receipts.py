"""Receipts: a small printable model built from a committed order, rendered to ESC/POS bytes or an image.

Pure: no database, no clock (``now_ms`` is passed in), no I/O except reading
a font file for ``to_image``.  ``agent.printing`` loads the order and sends
the bytes.

Model::

    Receipt(order_id, receipt_no, rows=(Row, ...), open_drawer, reprint)
    Row(kind="text",  left="应付 PAYABLE", right="178.70", bold=True, size="tall")
    Row(kind="rule")                  a dashed line across the paper
    Row(kind="qr", left=<payload>)    the e-invoice request QR code
    Row(kind="feed")                  an empty line

Text width: a receipt is laid out in *columns* of the printer's font A
(32 on 58 mm paper, 48 on 80 mm).  On a Chinese printer every non-ASCII
character prints full width (two columns) — that is how the printer's Chinese
mode works, so ``_cols`` counts it so, including ambiguous-width signs such
as ``×`` (the templates use ASCII ``x`` instead).

ESC/POS Chinese text (python-escpos issues #190, #281, #491, #678): the
library's code-page encoder knows only single-byte code pages, so this module
uses ``escpos.printer.Dummy`` for the *commands* (init, size, bold, align, QR,
image, drawer, cut) and writes the text bytes itself, encoded in the
printer's CJK encoding (``gb18030``, ``gbk`` or ``utf-8``) between FS & (enter
Chinese mode) and FS . (leave it).  Chinese glyph size follows FS ! n, so it is
sent next to ESC ! for tall/large rows.  A row the encoding cannot represent
(GBK lacks some rare characters), or every row with ``encoding="image"`` (a
printer without a Chinese font), is printed as a raster image instead.

Limits: the e-invoice QR only carries the *request* URL (the center issues the
invoice); times are printed in China Standard Time unless ``tz`` is given;
``to_image`` needs a CJK font (wqy-microhei, Noto CJK) or Chinese shows as boxes.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from PIL import Image, ImageDraw, ImageFont

from agent.money import format_fen, format_ml

__all__ = [
    "CHINA_TZ",
    "EINVOICE_URL",
    "ENCODINGS",
    "Receipt",
    "Row",
    "build_receipt",
    "einvoice_url",
    "layout",
    "to_escpos",
    "to_image",
]

#: Stations keep Beijing time on their receipts.
CHINA_TZ = _dt.timezone(_dt.timedelta(hours=8), "CST")

#: The e-invoice request the customer's phone opens; the center issues the invoice (online only).
EINVOICE_URL = "https://einvoice.example/req?station={station}&receipt={receipt}&amount={amount}"

#: ``to_escpos`` encodings; "image" prints every text row as a raster image.
ENCODINGS = ("gb18030", "gbk", "utf-8", "image")

FS_CHINESE_ON = b"\x1c&"  #: FS & — enter Chinese character mode
FS_CHINESE_OFF = b"\x1c."  #: FS . — leave Chinese character mode
DOTS_PER_COLUMN = 12  #: font A is 12 dots wide: 32 columns = 384 dots (58 mm), 48 = 576 dots (80 mm)

Align = Literal["left", "center", "right"]
Size = Literal["normal", "tall", "large"]  #: tall = double height; large = double width and height
Kind = Literal["text", "rule", "qr", "feed"]

TENDER_LABELS = {
    "cash": "现金 Cash",
    "stored_value": "储值卡 Stored value",
    "qr_scan": "扫码支付 QR pay",
    "qr_show": "扫码支付 QR pay",
    "plate_pay": "无感支付 Plate pay",
}
STAGE_LABELS = {"item": "单品", "order": "满减", "coupon": "优惠券", "points": "积分"}


@dataclass(frozen=True)
class Row:
    """One row of a receipt: text (left part, optional right-aligned part), a rule, a QR code or a feed."""

    left: str = ""
    right: str = ""
    align: Align = "left"  #: for rows without a right part
    bold: bool = False
    size: Size = "normal"
    kind: Kind = "text"


@dataclass(frozen=True)
class Receipt:
    order_id: str
    receipt_no: str
    rows: tuple[Row, ...]
    open_drawer: bool = False  #: kick the cash drawer (original cash sales only)
    reprint: bool = False

    @property
    def qr_payload(self) -> str | None:
        return next((r.left for r in self.rows if r.kind == "qr"), None)

    def text(self, width: int = 32) -> str:
        """The plain-text preview a cashier sees: the printed lines, the QR as ``[QR] <payload>``."""
        out: list[str] = []
        for row in self.rows:
            if row.kind == "qr":
                out.append(f"[QR] {row.left}")
            else:
                out.extend(layout(row, width))
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------- model
def einvoice_url(station_id: str, receipt_no: str, payable_fen: int) -> str:
    return EINVOICE_URL.format(station=quote(station_id, safe=""), receipt=quote(receipt_no, safe=""),
                               amount=format_fen(payable_fen))


def _time(ms: int, tz: _dt.tzinfo) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, tz=tz).strftime("%Y-%m-%d %H:%M:%S")


def _mask(value: str) -> str:
    """``13800000001`` → ``138****0001``: a receipt left on the counter does not give the member away."""
    return value[:3] + "****" + value[-4:] if len(value) >= 8 else "****"


def build_receipt(order: Mapping[str, Any], payments: Sequence[Mapping[str, Any]], station: Mapping[str, Any], *,
                  now_ms: int, reprint: bool = False, reprint_no: int = 0, cashier_name: str | None = None,
                  member: Mapping[str, Any] | None = None, tz: _dt.tzinfo = CHINA_TZ) -> Receipt:
    """The receipt of one order (``OrderService.get``) and its confirmed payment legs (``payments`` rows).

    ``station`` has ``id`` and ``name``; ``member`` (optional) has ``phone``/``card_no``.  An order that
    is not paid gets a NOT PAID banner, no e-invoice QR and no drawer kick (a preview, never a sale).
    """
    paid = order.get("state") == "paid"
    quote_ = order.get("quote") or {}
    rows: list[Row] = []
    add = rows.append
    rule = Row(kind="rule")
    name = str(station.get("name") or station.get("id") or "")
    add(Row(name, align="center", bold=True, size="large" if len(name) <= 7 else "tall"))
    add(Row(f"油站 Station {station.get('id', '')}", align="center"))
    add(Row("销售小票 SALES RECEIPT", align="center", bold=True))
    if reprint:
        add(Row(f"** 重印 DUPLICATE{f' #{reprint_no}' if reprint_no > 1 else ''} **", align="center", bold=True,
                size="tall"))
    if not paid:
        add(Row("** 未付款 NOT PAID - 预览 PREVIEW **", align="center", bold=True))
    add(rule)
    add(Row("小票号 No.", str(order["receipt_no"])))
    add(Row("时间 Time", _time(int(order.get("paid_at_ms") or order["created_at_ms"]), tz)))
    cashier = str(order.get("cashier") or "-")
    add(Row("收银员 Cashier", f"{cashier_name} ({cashier})" if cashier_name else cashier))
    if order.get("kind") == "prepay" and order.get("prepay_pump_id"):
        add(Row("预付加油 Prepay", f"{order['prepay_pump_id']}号机 Pump {order['prepay_pump_id']}"))
    add(rule)
    add(Row("品名 Item", "金额 Amount", bold=True))
    for ln in order.get("lines", []):
        amount = format_fen(int(ln["amount_fen"]))
        if ln["kind"] == "fuel" and ln.get("volume_ml"):
            add(Row(str(ln["name"])))
            add(Row(f"  {format_ml(int(ln['volume_ml']))}L x {format_fen(int(ln['unit_price_fen'] or 0))}/L",
                    amount))
        elif ln["kind"] == "item":
            add(Row(str(ln["name"])))
            add(Row(f"  {ln['quantity']} x {format_fen(int(ln['unit_price_fen']))}", amount))
        else:
            add(Row(str(ln["name"]), amount))
    add(rule)
    total = int(order.get("total_fen", 0))
    discount = int(order.get("discount_fen", 0))
    payable = int(order.get("payable_fen", total - discount))
    add(Row("合计 Total", format_fen(total)))
    if discount:
        add(Row("优惠明细 Discounts:"))
        for d in quote_.get("discounts", []):
            label = STAGE_LABELS.get(str(d.get("stage")), "")
            what = f"{d['name']} {quote_.get('points_used', 0)}分" if d.get("stage") == "points" else d["name"]
            add(Row(f"  {label} {what}".rstrip(), "-" + format_fen(int(d["amount_fen"]))))
        add(Row("优惠合计 Discount", "-" + format_fen(discount)))
    add(Row("应付 PAYABLE", format_fen(payable), bold=True, size="tall"))
    add(rule)
    cash = False
    for p in payments:
        detail = p.get("detail") or {}
        add(Row(TENDER_LABELS.get(str(p["tender"]), str(p["tender"])), format_fen(int(p["amount_fen"]))))
        if p["tender"] == "cash":
            cash = True
            if "given_fen" in detail:
                add(Row("  实收 Given", format_fen(int(detail["given_fen"]))))
                add(Row("  找零 Change", format_fen(int(detail.get("change_fen", 0)))))
        elif p["tender"] == "stored_value" and "balance_fen" in detail:
            add(Row("  余额 Balance", format_fen(int(detail["balance_fen"]))))
    if not payments and paid:
        add(Row("支付 Paid", format_fen(payable)))
    if order.get("member_id"):
        who = (member or {}).get("phone") or (member or {}).get("card_no") or str(order["member_id"])
        add(Row("会员 Member", _mask(str(who))))
        if quote_.get("points_used"):
            add(Row("使用积分 Points used", f"-{int(quote_['points_used'])}"))
        add(Row("本单积分 Points earned", f"+{int(quote_.get('points_earned', 0))}"))
    add(rule)
    if paid:
        add(Row(einvoice_url(str(station.get("id", "")), str(order["receipt_no"]), payable), kind="qr"))
        add(Row("扫码申请电子发票", align="center"))
        add(Row("Scan for an e-invoice", align="center"))
    add(Row("谢谢惠顾 欢迎再次光临", align="center", bold=True))
    add(Row("Thank you - drive safely", align="center"))
    if reprint:
        add(Row("重印时间 Reprinted", _time(now_ms, tz)))
    add(Row(kind="feed"))
    return Receipt(order_id=str(order["order_id"]), receipt_no=str(order["receipt_no"]), rows=tuple(rows),
                   open_drawer=paid and cash and not reprint, reprint=reprint)


# ---------------------------------------------------------------- layout
def _cols(text: str) -> int:
    """Printed width in font-A columns: ASCII 1, anything else 2 (full width in the printer's Chinese mode)."""
    return sum(1 if ord(c) < 0x80 else 2 for c in text)


def _wrap(text: str, width: int) -> list[str]:
    out, cur, n = [], "", 0
    for c in text:
        w = _cols(c)
        if n + w > width:
            out.append(cur)
            cur, n = "", 0
        cur, n = cur + c, n + w
    out.append(cur)
    return out


def _pieces(row: Row, width: int) -> list[tuple[str, str, Align]]:
    """A text row split into printed lines: (left text, right-aligned text, alignment of the left text)."""
    w = width // 2 if row.size == "large" else width
    if row.right:
        if _cols(row.left) + 1 + _cols(row.right) <= w:
            return [(row.left, row.right, "left")]
        return [(t, "", "left") for t in _wrap(row.left, w)] + [("", row.right, "left")]
    return [(t, "", row.align) for t in _wrap(row.left, w)]


def layout(row: Row, width: int) -> list[str]:
    """The printed lines of one row at ``width`` columns (a large row has half as many)."""
    if row.kind == "feed":
        return [""]
    if row.kind == "rule":
        return ["-" * width]
    w = width // 2 if row.size == "large" else width
    out = []
    for left, right, align in _pieces(row, width):
        pad = w - _cols(left) - _cols(right)
        if right:
            out.append(left + " " * pad + right)
        elif align == "center":
            out.append(" " * (pad // 2) + left)
        elif align == "right":
            out.append(" " * pad + left)
        else:
            out.append(left)
    return out


# ---------------------------------------------------------------- ESC/POS
def to_escpos(receipt: Receipt, encoding: str = "gb18030", width: int = 32, *, qr_native: bool = True,
              font_path: str | Path | None = None) -> bytes:
    """ESC/POS bytes of a receipt for a ``width``-column printer whose Chinese mode takes ``encoding``.

    Commands come from python-escpos's ``Dummy`` printer; text is encoded here (see the module
    docstring).  ``qr_native=False`` prints the QR code as a raster image (printers without GS ( k).
    """
    from escpos.printer import Dummy  # local: pulls in PIL/qrcode helpers only when printing

    if encoding not in ENCODINGS:
        raise ValueError(f"encoding: expected one of {ENCODINGS}, got {encoding!r}")
    p = Dummy()
    p.hw("INIT")
    text_mode = encoding != "image"
    if text_mode:
        p._raw(FS_CHINESE_ON)
    for row in receipt.rows:
        if row.kind == "qr":
            p.set(align="center")
            p.qr(row.left, native=qr_native, size=6 if width >= 40 else 5, center=False)
            p.set(align="left")
            continue
        lines = layout(row, width)
        data = _encode("\n".join(lines), encoding) if text_mode else None
        if data is None:
            p.image(_render((row,), width, font_path=font_path), impl="bitImageRaster")
            continue
        tall, wide = row.size in ("tall", "large"), row.size == "large"
        if tall or row.bold:
            p.set(bold=row.bold, double_height=tall, double_width=wide)
            p._raw(b"\x1c!" + bytes([(0x04 if wide else 0) | (0x08 if tall else 0)]))  # FS ! : Chinese size
        p._raw(data + b"\n")
        if tall or row.bold:
            p.set(bold=False, normal_textsize=True)
            p._raw(b"\x1c!\x00")
    if text_mode:
        p._raw(FS_CHINESE_OFF)
    if receipt.open_drawer:
        p.cashdraw(2)
    p.cut()
    out: bytes = p.output
    return out


def _encode(text: str, encoding: str) -> bytes | None:
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        return None


# ---------------------------------------------------------------- image
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJKsc-Regular.otf",
)


def _font(size: int, font_path: str | Path | None) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in ([font_path] if font_path else []) + list(FONT_CANDIDATES):
        if path and Path(path).exists():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default()  # no CJK font: Chinese shows as boxes (see the module docstring)


def _render(rows: Sequence[Row], width: int, *, font_path: str | Path | None = None,
            margin: int = 0) -> Image.Image:
    """Rows drawn at printer resolution (``width`` × 12 dots wide), black on white.

    Text is drawn at the printer's cell size (24-dot full-width characters) and stretched for
    tall (×2 height) and large (×2 both) rows, as the printer does.
    """
    import qrcode

    px = width * DOTS_PER_COLUMN
    cell = DOTS_PER_COLUMN * 2  # a full-width character is 24 dots
    font = _font(cell - 2, font_path)
    parts: list[Image.Image] = []
    for row in rows:
        if row.kind == "qr":
            qr = qrcode.QRCode(border=1, box_size=6 if width >= 40 else 5)
            qr.add_data(row.left)
            qimg = qr.make_image().get_image().convert("L")
            tile = Image.new("L", (px, qimg.height), 255)
            tile.paste(qimg, ((px - qimg.width) // 2, 0))
            parts.append(tile)
        elif row.kind == "rule":
            tile = Image.new("L", (px, cell), 255)
            ImageDraw.Draw(tile).line([(0, cell // 2), (px, cell // 2)], fill=0, width=2)
            parts.append(tile)
        elif row.kind == "feed":
            parts.append(Image.new("L", (px, cell), 255))
        else:
            w_px = (width // 2 if row.size == "large" else width) * DOTS_PER_COLUMN
            stroke = 1 if row.bold else 0
            for left, right, align in _pieces(row, width):
                tile = Image.new("L", (w_px, cell + 4), 255)
                d = ImageDraw.Draw(tile)
                lw = d.textlength(left, font=font)
                x = {"left": 0.0, "center": (w_px - lw) / 2, "right": w_px - lw}[align]
                d.text((x, 2), left, font=font, fill=0, stroke_width=stroke, stroke_fill=0)
                if right:
                    d.text((w_px - d.textlength(right, font=font), 2), right, font=font, fill=0,
                           stroke_width=stroke, stroke_fill=0)
                if row.size != "normal":
                    tile = tile.resize((w_px * (2 if row.size == "large" else 1), tile.height * 2))
                if tile.width < px:
                    full = Image.new("L", (px, tile.height), 255)
                    full.paste(tile, ((px - tile.width) // 2 if align == "center" else 0, 0))
                    tile = full
                parts.append(tile)
    height = sum(t.height for t in parts) + 2 * margin
    img = Image.new("L", (px + 2 * margin, height), 255)
    y = margin
    for t in parts:
        img.paste(t, (margin, y))
        y += t.height
    return img


def to_image(receipt: Receipt, width: int = 32, *, font_path: str | Path | None = None) -> Image.Image:
    """The receipt as a grayscale image at printer resolution (preview, docs, raster fallback)."""
    return _render(receipt.rows, width, font_path=font_path, margin=DOTS_PER_COLUMN)
