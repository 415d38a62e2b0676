"""Report exports: CSV (machine-readable, integer fen/mL), receipt-printer text (ESC/POS), PDF with charts.

The PDF is drawn with reportlab (platypus tables + reportlab.graphics bar charts: sales by hour,
sales by grade, meter variance per nozzle) — no plotting library.  Chinese text needs a CJK
font: the first of ``CJK_FONTS`` found on the machine is embedded (Debian ``fonts-wqy-microhei``
or ``fonts-noto-cjk``); without one the PDF falls back to reportlab's built-in ``STSong-Light``
CID font, which a viewer must supply (poppler needs ``poppler-data``).

Limits: amounts are printed as yuan with two decimals through ``agent.money.format_fen`` and
charted as whole yuan (display only).  Printing supports ``file://`` (append bytes) and
``tcp://host:port`` (raw port 9100) printer URLs.
"""

from __future__ import annotations

import csv
import io
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from agent.errors import Unavailable
from agent.money import format_fen, format_ml
from agent.reports import TZ_OFFSET_MIN

__all__ = ["CSV_COLUMNS", "print_bytes", "receipt_bytes", "receipt_lines", "to_csv", "to_pdf"]

CSV_COLUMNS = ("section", "key", "value", "count", "volume_ml", "amount_fen", "discount_fen", "refunded_fen",
               "net_fen", "meter_ml", "sold_ml", "test_ml", "variance_ml")
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
TITLES = {"shift": "班结报表 Shift report", "day": "日结报表 Day report", "month": "月报 Month report"}


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    t = datetime.fromtimestamp(ms // 1000, UTC) + timedelta(minutes=TZ_OFFSET_MIN)
    return t.strftime("%Y-%m-%d %H:%M")


def _meta(report: dict[str, Any]) -> list[tuple[str, str]]:
    kind = report.get("kind", "shift")
    out = [("kind", kind), ("station", str(report.get("station", {}).get("id", "")))]
    if kind == "shift":
        out += [("shift_id", report["shift_id"]), ("scope", report["scope"]), ("cashier", str(report["cashier"])),
                ("opened_at", _when(report["opened_at_ms"])), ("closed_at", _when(report.get("closed_at_ms")))]
        if report.get("forced"):  # closed over open items by a manager: who, why, and what was left
            out += [("forced_by", str(report.get("closed_by") or "")),
                    ("force_reason", str(report.get("force_reason") or "")),
                    ("left_open", str(len(report.get("blockers_at_close") or [])))]
    else:
        out += [("period", report["label"]), ("from", _when(report["start_ms"])), ("to", _when(report["end_ms"]))]
    return out


# ------------------------------------------------------------------ CSV
def to_csv(report: dict[str, Any]) -> str:
    """One CSV with a ``section`` column; sums of a section's rows equal the report's totals."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for k, v in _meta(report):
        w.writerow({"section": "meta", "key": k, "value": v})
    for g in report["by_grade"]:
        w.writerow({"section": "grade", "key": g["grade"], "count": g["fills"], "volume_ml": g["volume_ml"],
                    "amount_fen": g["amount_fen"], "discount_fen": g["discount_fen"]})
    for n in report["by_nozzle"]:
        w.writerow({"section": "nozzle", "key": n["nozzle"], "value": n["grade"], "count": n["fills"],
                    "volume_ml": n["volume_ml"], "amount_fen": n["amount_fen"], "discount_fen": n["discount_fen"]})
    for t in report["by_tender"]:
        w.writerow({"section": "tender", "key": t["tender"], "count": t["legs"], "amount_fen": t["paid_fen"],
                    "refunded_fen": t["refunded_fen"], "net_fen": t["net_fen"]})
    for c in report["by_cashier"]:
        w.writerow({"section": "cashier", "key": c["cashier"], "count": c["orders"], "amount_fen": c["payable_fen"],
                    "refunded_fen": c["refunded_fen"], "net_fen": c["payable_fen"] - c["refunded_fen"]})
    for h in report["by_hour"]:
        if h["orders"]:
            w.writerow({"section": "hour", "key": f"{h['hour']:02d}", "count": h["orders"],
                        "amount_fen": h["payable_fen"]})
    for r in report["refunds"]["by_reason"]:
        w.writerow({"section": "refund", "key": r["reason"], "count": r["count"], "refunded_fen": r["amount_fen"]})
    for d in report["discounts"]["by_rule"]:
        w.writerow({"section": "discount", "key": d["rule_id"], "value": d["name"], "count": d["times"],
                    "discount_fen": d["amount_fen"]})
    for m in report["meter"]:
        w.writerow({"section": "meter", "key": m["nozzle"], "value": m["grade"], "meter_ml": m["meter_ml"],
                    "sold_ml": m["sold_ml"], "test_ml": m["test_ml"], "variance_ml": m["variance_ml"]})
    inv = report.get("invoices") or {}
    if inv.get("count"):
        w.writerow({"section": "invoice", "key": "issued", "count": inv["count"], "amount_fen": inv["amount_fen"]})
    t = report["totals"]
    w.writerow({"section": "total", "key": "sales", "count": report["orders"]["count"],
                "volume_ml": report["fuel"]["volume_ml"], "amount_fen": t["paid_fen"],
                "discount_fen": report["discounts"]["total_fen"], "refunded_fen": t["refunded_fen"],
                "net_fen": t["net_fen"], "variance_ml": report["meter_variance_ml"]})
    if "cash" in report:
        c = report["cash"]
        w.writerow({"section": "cash", "key": "expected", "amount_fen": c["expected_fen"]})
        w.writerow({"section": "cash", "key": "declared", "amount_fen": c["declared_fen"]})
        w.writerow({"section": "cash", "key": "over_short", "amount_fen": c["over_short_fen"]})
    w.writerow({"section": "late", "key": "orders", "count": report["late"]["count"],
                "amount_fen": report["late"]["payable_fen"]})
    return buf.getvalue()


# ------------------------------------------------------------------ receipt printer
def receipt_lines(report: dict[str, Any], width: int = 32) -> list[str]:
    """The report as plain lines for a receipt printer ``width`` characters wide (CJK counts double)."""
    def row(left: str, right: str) -> str:
        used = sum(2 if ord(ch) > 0x2E7F else 1 for ch in left + right)
        return left + " " * max(1, width - used) + right

    lines = [TITLES.get(report.get("kind", "shift"), "Report"), "-" * width]
    lines += [row(k, v) for k, v in _meta(report) if k != "kind"]
    lines += ["-" * width, row("订单 orders", str(report["orders"]["count"])),
              row("优惠 discounts", format_fen(report["discounts"]["total_fen"])),
              row("退款 refunds", format_fen(report["totals"]["refunded_fen"])),
              row("实收 net", format_fen(report["totals"]["net_fen"]))]
    inv = report.get("invoices") or {}
    if inv.get("count"):
        lines.append(row(f"发票 invoices {inv['count']}", format_fen(int(inv["amount_fen"]))))
    lines.append("-" * width)
    lines += [row(f"{g['grade']}# {format_ml(g['volume_ml'])}L", format_fen(g["amount_fen"]))
              for g in report["by_grade"]]
    lines.append("-" * width)
    lines += [row(t["tender"], format_fen(t["net_fen"])) for t in report["by_tender"]]
    if "cash" in report:
        c = report["cash"]
        lines += ["-" * width, row("应有现金 expected", format_fen(c["expected_fen"]))]
        if c["declared_fen"] is not None:
            lines += [row("实点现金 declared", format_fen(c["declared_fen"])),
                      row("长短款 over/short", format_fen(c["over_short_fen"]))]
    lines.append("-" * width)
    for m in report["meter"]:
        var = "-" if m["variance_ml"] is None else format_ml(m["variance_ml"])
        lines.append(row(f"{m['nozzle']}号枪 meter", f"{var}L"))
    if report["late"]["count"]:
        lines.append(row("迟到订单 late", f"{report['late']['count']} / {format_fen(report['late']['payable_fen'])}"))
    return [*lines, "", ""]


def receipt_bytes(report: dict[str, Any], *, encoding: str = "gb18030", width: int = 32) -> bytes:
    """ESC/POS: initialise, Chinese mode (FS &), the lines in the printer's CJK encoding, feed and cut."""
    body = "\n".join(receipt_lines(report, width)).encode(encoding, errors="replace")
    return b"\x1b@" + b"\x1c&" + body + b"\n\n\n\x1dV\x00"


def print_bytes(url: str, data: bytes, timeout_s: float = 5.0) -> None:
    """Send raw bytes to the configured printer (``file:///path`` appends, ``tcp://host:9100``)."""
    u = urlparse(url)
    try:
        if u.scheme == "file":
            with Path(u.path).open("ab") as fh:
                fh.write(data)
        elif u.scheme == "tcp" and u.hostname:
            with socket.create_connection((u.hostname, u.port or 9100), timeout=timeout_s) as s:
                s.sendall(data)
        else:
            raise Unavailable("no receipt printer configured ([printer] url)", code="no_printer")
    except OSError as exc:
        raise Unavailable(f"printer {url}: {exc}", code="printer_unavailable") from exc


# ------------------------------------------------------------------ PDF
def _font() -> str:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfbase.ttfonts import TTFont

    if "CJK" in pdfmetrics.getRegisteredFontNames():
        return "CJK"
    for path in CJK_FONTS:
        if Path(path).exists():
            pdfmetrics.registerFont(TTFont("CJK", path, subfontIndex=0))
            return "CJK"
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


def _bar_chart(title: str, labels: list[str], values: list[int], font: str, unit: str) -> Any:
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.shapes import Drawing, String
    from reportlab.lib import colors

    d = Drawing(500, 170)
    d.add(String(0, 155, f"{title} ({unit})", fontName=font, fontSize=10))
    chart = VerticalBarChart()
    chart.x, chart.y, chart.width, chart.height = 45, 25, min(440, 36 * max(1, len(values)) + 20), 115
    chart.data = [values or [0]]
    chart.categoryAxis.categoryNames = labels or [""]
    chart.categoryAxis.labels.fontName = font
    chart.categoryAxis.labels.fontSize = 7
    chart.valueAxis.labels.fontSize = 7
    low, high = min([0, *values]), max([0, *values])
    chart.valueAxis.valueMin, chart.valueAxis.valueMax = low, high if high > low else low + 1
    chart.bars[0].fillColor = colors.HexColor("#2f6db5")
    chart.barLabelFormat = "%d"
    chart.barLabels.fontSize = 6
    chart.barLabels.nudge = 6
    d.add(chart)
    return d


def _table(rows: list[list[str]], font: str) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    t = Table(rows, hAlign="LEFT")
    t.setStyle(TableStyle([("FONTNAME", (0, 0), (-1, -1), font), ("FONTSIZE", (0, 0), (-1, -1), 8),
                           ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e6ecf5")),
                           ("GRID", (0, 0), (-1, -1), 0.25, colors.grey), ("ALIGN", (1, 1), (-1, -1), "RIGHT")]))
    return t


def to_pdf(report: dict[str, Any]) -> bytes:
    """An A4 PDF: header, summary, three charts, then the detail tables."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer

    font = _font()
    h1 = ParagraphStyle("h1", fontName=font, fontSize=15, leading=20)
    h2 = ParagraphStyle("h2", fontName=font, fontSize=11, leading=16, spaceBefore=6)
    body = ParagraphStyle("body", fontName=font, fontSize=8, leading=11)
    y = format_fen
    story: list[Any] = [Paragraph(TITLES.get(report.get("kind", "shift"), "Report"), h1),
                        Paragraph("  ".join(f"{k}: {v}" for k, v in _meta(report) if k != "kind"), body),
                        Spacer(1, 6)]
    summary = [["项目 item", "值 value"], ["订单数 orders", str(report["orders"]["count"])],
               ["应收 gross", y(report["orders"]["gross_fen"])],
               ["优惠 discounts", y(report["discounts"]["total_fen"])],
               ["收款 paid", y(report["totals"]["paid_fen"])], ["退款 refunds", y(report["totals"]["refunded_fen"])],
               ["实收 net", y(report["totals"]["net_fen"])], ["油品 fuel L", format_ml(report["fuel"]["volume_ml"])],
               ["迟到订单 late", f"{report['late']['count']} / {y(report['late']['payable_fen'])}"],
               ["表差 meter variance L", format_ml(report["meter_variance_ml"])]]
    inv = report.get("invoices") or {}
    if inv.get("count"):
        summary.append([f"发票 invoices ({inv['count']})", y(int(inv["amount_fen"]))])
    if "cash" in report:
        c = report["cash"]
        summary += [["应有现金 cash expected", y(c["expected_fen"])],
                    ["实点现金 declared", "-" if c["declared_fen"] is None else y(c["declared_fen"])],
                    ["长短款 over/short", "-" if c["over_short_fen"] is None else y(c["over_short_fen"])]]
    story += [_table(summary, font), Spacer(1, 8)]
    hours = report["by_hour"]
    story.append(_bar_chart("按小时销售 Sales by hour", [f"{h['hour']:02d}" for h in hours],
                            [h["payable_fen"] // 100 for h in hours], font, "元 yuan"))
    story.append(_bar_chart("按油品销售 Sales by grade", [f"{g['grade']}#" for g in report["by_grade"]],
                            [g["amount_fen"] // 100 for g in report["by_grade"]], font, "元 yuan"))
    story.append(_bar_chart("表差 Meter variance by nozzle", [f"{m['nozzle']}号" for m in report["meter"]],
                            [m["variance_ml"] or 0 for m in report["meter"]], font, "mL"))
    story.append(Paragraph("按油品 By grade", h2))
    story.append(_table([["油品 grade", "笔数 fills", "升 L", "金额 amount", "优惠 discount"]] + [
        [g["grade"], str(g["fills"]), format_ml(g["volume_ml"]), y(g["amount_fen"]), y(g["discount_fen"])]
        for g in report["by_grade"]], font))
    story.append(Paragraph("按油枪 By nozzle", h2))
    story.append(_table([["油枪 nozzle", "油品 grade", "笔数 fills", "升 L", "金额 amount"]] + [
        [str(n["nozzle"]), str(n["grade"]), str(n["fills"]), format_ml(n["volume_ml"]), y(n["amount_fen"])]
        for n in report["by_nozzle"]], font))
    story.append(Paragraph("按支付方式 By tender", h2))
    story.append(_table([["支付 tender", "笔数 legs", "收款 paid", "退款 refunded", "净额 net"]] + [
        [t["tender"], str(t["legs"]), y(t["paid_fen"]), y(t["refunded_fen"]), y(t["net_fen"])]
        for t in report["by_tender"]], font))
    story.append(Paragraph("按收银员 By cashier", h2))
    story.append(_table([["收银员 cashier", "订单 orders", "应收 payable", "退款 refunded"]] + [
        [c["cashier"], str(c["orders"]), y(c["payable_fen"]), y(c["refunded_fen"])] for c in report["by_cashier"]],
        font))
    story.append(Paragraph("泵码对账 Meter reconciliation (L)", h2))
    story.append(_table([["油枪", "开班 open", "交班 close", "泵码 meter", "销售 sold", "自检 test", "差 variance"]] + [
        [str(m["nozzle"]), _l(m.get("open_ml"), m.get("open_source")), _l(m.get("close_ml"), m.get("close_source")),
         _l(m["meter_ml"]), _l(m["sold_ml"]), _l(m["test_ml"]), _l(m["variance_ml"])] for m in report["meter"]], font))
    if any("manual" in (m.get("open_source"), m.get("close_source")) for m in report["meter"]):
        story.append(Paragraph("* 手工录入的泵码 typed from the dispenser's counter", body))
    if report.get("forced"):
        story.append(Paragraph("强制班结 Forced close", h2))
        story.append(_table([["操作人 by", "原因 reason"], [str(report.get("closed_by") or ""),
                                                          str(report.get("force_reason") or "")]]
                            + [[str(b.get("code", "")), str(b.get("message", ""))]
                               for b in report.get("blockers_at_close") or []], font))
    if report["refunds"]["by_reason"] or report["discounts"]["by_rule"]:
        story.append(Paragraph("退款与优惠 Refunds and discounts", h2))
        story.append(_table([["类别 kind", "项 key", "次数 times", "金额 amount"]]
                            + [["refund", r["reason"], str(r["count"]), y(r["amount_fen"])]
                               for r in report["refunds"]["by_reason"]]
                            + [["discount", f"{d['rule_id']} {d['name']}", str(d["times"]), y(d["amount_fen"])]
                               for d in report["discounts"]["by_rule"]], font))
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=A4, title=TITLES.get(report.get("kind", "shift"), "Report"),
                            leftMargin=36, rightMargin=36, topMargin=36, bottomMargin=36, invariant=True)
    doc.build(story)
    return buf.getvalue()


def _l(ml: int | None, source: str | None = None) -> str:
    return "-" if ml is None else format_ml(ml) + ("*" if source == "manual" else "")
