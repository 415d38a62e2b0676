"""View-models of the login, shift-close and report screens (pure Python, no Qt).

* ``PinEntry`` — the PIN typed on the login keypad (digits only, 4–12, shown masked).
* ``CashierSession`` — who is logged in (from ``POST /api/v1/session/login``) and what the role may do.
* ``blocker_lines`` — the shift pre-check's blockers as one translated sentence each plus what to
  do (the agent's English text is the fallback for a code the catalog does not know).
* ``report_sections`` — a shift / day / month report (``agent.reports``) as titled tables: summary,
  by grade, by tender, by cashier, cash over/short (shift), meter variance per nozzle; and
  ``sections_html`` renders them for a ``QTextBrowser`` (escaped, no external resources).
* ``BarSeries`` and ``hour_series`` / ``grade_series`` / ``variance_series`` — what the bar charts
  of the reports view draw (``ui.widgets.charts.BarChart``).

Money stays integer fen and volume integer mL until formatted here.  Limits: the report's shape
is the agent's (``agent/reports.py``); an absent section is skipped, never invented.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from ui.i18n import CATALOG, tr
from ui.viewmodels import litres, money

__all__ = [
    "ROLE_RANK",
    "BarSeries",
    "CashierSession",
    "PinEntry",
    "Section",
    "blocker_lines",
    "grade_series",
    "hour_series",
    "report_sections",
    "sections_html",
    "tender_name",
    "variance_series",
]

#: the agent's role order (agent/cashiers.py ROLES)
ROLE_RANK = {"cashier": 1, "terminal": 1, "supervisor": 2, "manager": 3, "station": 4}


class PinEntry:
    """PIN keypad entry: digits only, at most ``MAX`` of them; ``masked`` is what the screen shows."""

    MIN, MAX = 4, 12

    def __init__(self) -> None:
        self.pin = ""

    def press(self, key: str) -> str:
        if key == "C":
            self.pin = ""
        elif key == "<":
            self.pin = self.pin[:-1]
        elif key.isdigit() and len(key) == 1 and len(self.pin) < self.MAX:
            self.pin += key
        return self.masked

    @property
    def masked(self) -> str:
        return "●" * len(self.pin)

    @property
    def complete(self) -> bool:
        return self.MIN <= len(self.pin) <= self.MAX


@dataclass(frozen=True)
class CashierSession:
    """The logged-in cashier (the token stays with the API worker and here, never on screen)."""

    cashier_id: str
    name: str
    role: str
    token: str = field(repr=False)

    @classmethod
    def from_login(cls, body: dict[str, Any]) -> CashierSession:
        return cls(str(body["cashier_id"]), str(body.get("name") or body["cashier_id"]),
                   str(body.get("role") or "cashier"), str(body["token"]))

    def may(self, role: str) -> bool:
        """Whether this session's role is at least ``role`` (the agent decides; this only greys buttons)."""
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK.get(role, 99)

    @property
    def role_text(self) -> str:
        return tr(f"role.{self.role}")

    @property
    def label(self) -> str:
        return tr("session.label", name=self.name, id=self.cashier_id, role=self.role_text)


def blocker_lines(blockers: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(what blocks, what to do)`` per pre-check blocker, translated when the code is known."""
    out = []
    for b in blockers:
        code = str(b.get("code") or "")
        ctx = {"pump": b.get("pump_id", "?"), "nozzle": b.get("nozzle", "?"),
               "amount": money(int(b.get("amount_fen") or 0)), "shift": str(b.get("shift_id") or "")[-6:],
               "order": str(b.get("order_id") or "")[-8:]}
        what = tr(f"blocker.{code}", **ctx) if f"blocker.{code}" in _known() else str(b.get("message") or code)
        todo = tr(f"blocker.{code}.do", **ctx) if f"blocker.{code}.do" in _known() else str(b.get("action") or "")
        out.append((what, todo))
    return out


def _known() -> dict[str, tuple[str, str]]:
    return CATALOG


def tender_name(tender: str) -> str:
    key = f"pay.{tender}"
    return tr(key) if key in _known() else tender


@dataclass(frozen=True)
class Section:
    """One titled table of a report; ``numeric`` marks right-aligned columns, ``alert`` rows are red."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()
    alert: tuple[int, ...] = ()


def _ml(v: Any) -> str:
    return "—" if v is None else litres(int(v))


def _signed_ml(v: Any) -> str:
    if v is None:
        return "—"
    n = int(v)
    return ("+" if n > 0 else "") + litres(n) if n >= 0 else "-" + litres(-n)


def _signed_fen(v: Any) -> str:
    if v is None:
        return "—"
    n = int(v)
    return ("+" if n > 0 else "") + money(n) if n >= 0 else "-" + money(-n)


def report_sections(report: dict[str, Any], grade_names: dict[str, str] | None = None) -> list[Section]:
    """A shift / day / month report as tables, in the order a manager reads them."""
    names = grade_names or {}
    out: list[Section] = []
    totals, orders, refunds = report.get("totals") or {}, report.get("orders") or {}, report.get("refunds") or {}
    fuel = report.get("fuel") or {}
    summary = [
        (tr("rep.orders"), str(int(orders.get("count") or 0))),
        (tr("rep.gross"), money(int(orders.get("gross_fen") or 0))),
        (tr("rep.discount"), money(int(orders.get("discount_fen") or 0))),
        (tr("rep.fuel_volume"), litres(int(fuel.get("volume_ml") or 0))),
        (tr("rep.refunds"), money(int(refunds.get("amount_fen") or 0))),
        (tr("rep.net"), money(int(totals.get("net_fen") or 0))),
    ]
    inv = report.get("invoices") or {}
    if inv.get("count"):
        summary.append((tr("rep.invoices", n=int(inv["count"])), money(int(inv.get("amount_fen") or 0))))
    out.append(Section(tr("rep.summary"), (tr("rep.item"), tr("rep.value")), tuple(summary), (False, True)))
    if report.get("by_grade"):
        out.append(Section(tr("rep.by_grade"), (tr("rep.grade"), tr("rep.fills"), tr("rep.volume"),
                                                 tr("rep.amount"), tr("rep.discount")),
                           tuple((names.get(str(g["grade"]), str(g["grade"])), str(g["fills"]),
                                  litres(int(g["volume_ml"])), money(int(g["amount_fen"])),
                                  money(int(g.get("discount_fen") or 0))) for g in report["by_grade"]),
                           (False, True, True, True, True)))
    if report.get("by_tender"):
        out.append(Section(tr("rep.by_tender"), (tr("rep.tender"), tr("rep.legs"), tr("rep.paid"),
                                                  tr("rep.refunded"), tr("rep.net")),
                           tuple((tender_name(str(t["tender"])), str(t["legs"]), money(int(t["paid_fen"])),
                                  money(int(t["refunded_fen"])), money(int(t["net_fen"])))
                                 for t in report["by_tender"]),
                           (False, True, True, True, True)))
    if report.get("by_cashier"):
        out.append(Section(tr("rep.by_cashier"), (tr("rep.cashier"), tr("rep.orders"), tr("rep.amount"),
                                                   tr("rep.refunded")),
                           tuple((str(c["cashier"]), str(c["orders"]), money(int(c["payable_fen"])),
                                  money(int(c.get("refunded_fen") or 0))) for c in report["by_cashier"]),
                           (False, True, True, True)))
    cash = report.get("cash")
    if isinstance(cash, dict):
        over = cash.get("over_short_fen")
        rows = ((tr("rep.float"), money(int(cash.get("float_fen") or 0))),
                (tr("rep.expected"), money(int(cash.get("expected_fen") or 0))),
                (tr("rep.declared"), "—" if cash.get("declared_fen") is None else money(int(cash["declared_fen"]))),
                (tr("rep.over_short"), _signed_fen(over)))
        out.append(Section(tr("rep.cash"), (tr("rep.item"), tr("rep.value")), rows, (False, True),
                           (3,) if over else ()))
    if report.get("forced"):
        left = report.get("blockers_at_close") or []
        rows_f = [(tr("rep.forced_by"), str(report.get("closed_by") or "")),
                  (tr("rep.forced_reason"), str(report.get("force_reason") or "—"))]
        rows_f += [(tr("rep.forced_open"), f"{what} — {todo}") for what, todo in blocker_lines(left)]
        out.append(Section(tr("rep.forced"), (tr("rep.item"), tr("rep.value")), tuple(rows_f), (False, False),
                           tuple(range(len(rows_f)))))
    meter = report.get("meter") or []
    if meter:
        rows_m, alert = [], []
        for i, m in enumerate(meter):
            var = m.get("variance_ml")
            if var:
                alert.append(i)
            meter_ml = _ml(m.get("meter_ml"))
            if "manual" in (m.get("open_source"), m.get("close_source")):
                meter_ml = tr("rep.manual_mark", ml=meter_ml)
            rows_m.append((tr("pump.nozzle", n=m["nozzle"]), tr("pump.title", n=m["pump_id"]),
                           names.get(str(m["grade"]), str(m["grade"])), meter_ml, _ml(m.get("sold_ml")),
                           _ml(m.get("test_ml")), _signed_ml(var)))
        out.append(Section(tr("rep.meter"), (tr("rep.nozzle"), tr("rep.pump"), tr("rep.grade"), tr("rep.meter_ml"),
                                              tr("rep.sold_ml"), tr("rep.test_ml"), tr("rep.variance")),
                           tuple(rows_m), (False, False, False, True, True, True, True), tuple(alert)))
    return out


def sections_html(heading: str, subtitle: str, sections: list[Section]) -> str:
    """Simple HTML (Qt rich text subset) for a ``QTextBrowser``; every text is escaped."""
    e = html.escape
    parts = [f"<h2 style='margin:0'>{e(heading)}</h2>"]
    if subtitle:
        parts.append(f"<p style='color:#555'>{e(subtitle)}</p>")
    for s in sections:
        parts.append(f"<h3 style='margin-top:10px; margin-bottom:2px'>{e(s.title)}</h3>")
        parts.append("<table cellspacing='0' cellpadding='3' border='1' style='border-collapse:collapse;"
                     " border-color:#BBB' width='100%'>")
        parts.append("<tr style='background:#ECEFF1'>" + "".join(
            f"<th align='{'right' if _num(s, i) else 'left'}'>{e(h)}</th>" for i, h in enumerate(s.headers)) + "</tr>")
        for r, row in enumerate(s.rows):
            colour = " style='color:#B71C1C; font-weight:bold'" if r in s.alert else ""
            parts.append(f"<tr{colour}>" + "".join(
                f"<td align='{'right' if _num(s, i) else 'left'}'>{e(c)}</td>" for i, c in enumerate(row)) + "</tr>")
        parts.append("</table>")
    return "".join(parts)


def _num(s: Section, i: int) -> bool:
    return i < len(s.numeric) and s.numeric[i]


# ---------------------------------------------------------------- charts
@dataclass(frozen=True)
class BarSeries:
    """Bars to draw: ``values`` in the unit of ``kind`` (``money`` fen, ``volume`` mL); may be negative."""

    title: str
    labels: tuple[str, ...]
    values: tuple[int, ...]
    kind: str = "money"
    #: draw every n-th category label (24 hours do not all fit under the bars)
    label_every: int = 1

    def value_text(self, v: int) -> str:
        """Short text over a bar: whole yuan, or litres with one decimal and a sign for variances."""
        if self.kind == "money":
            return f"¥{round(v / 100):,}"
        sign = "+" if v > 0 and self.kind == "variance" else ""
        return f"{sign}{v / 1000:.1f}"

    @property
    def empty(self) -> bool:
        return not any(self.values)


def hour_series(report: dict[str, Any]) -> BarSeries:
    hours = sorted(report.get("by_hour") or [], key=lambda h: int(h["hour"]))
    return BarSeries(tr("chart.by_hour"), tuple(f"{int(h['hour']):02d}" for h in hours),
                     tuple(int(h.get("payable_fen") or 0) for h in hours), "money", label_every=3)


def grade_series(report: dict[str, Any], grade_names: dict[str, str] | None = None) -> BarSeries:
    names = grade_names or {}
    grades = report.get("by_grade") or []
    return BarSeries(tr("chart.by_grade"), tuple(names.get(str(g["grade"]), str(g["grade"])) for g in grades),
                     tuple(int(g.get("amount_fen") or 0) for g in grades), "money")


def variance_series(report: dict[str, Any]) -> BarSeries:
    meter = report.get("meter") or []
    return BarSeries(tr("chart.variance"), tuple(tr("pump.nozzle", n=m["nozzle"]) for m in meter),
                     tuple(int(m.get("variance_ml") or 0) for m in meter), "variance")
