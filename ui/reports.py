"""Reports view (报表) for supervisors and managers: day or month report with bar charts.

``GET /api/v1/manager/reports/day/{YYYY-MM-DD}`` or ``…/month/{YYYY-MM}`` (the
agent requires the supervisor role; a cashier gets its 403 as one clear
sentence).  Three ``BarChart`` widgets show sales by hour, sales by grade and
the meter variance per nozzle (red bars below the line: the meters measured
less than was recorded); the tables beside them come from
``managermodels.report_sections``.  ``today`` is a replaceable attribute (tests
pin the date).  Limits: one period at a time, no comparison with the previous one.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from ui.client import ApiClient, ApiError
from ui.i18n import error_text, tr
from ui.managermodels import grade_series, hour_series, report_sections, sections_html, variance_series
from ui.widgets.charts import BarChart

__all__ = ["ReportsPage"]

#: station local time (China, UTC+8, no DST), as the agent's report days (agent/reports.py TZ_OFFSET_MIN)
TZ_OFFSET_MIN = 480


def station_today() -> date:
    """Today at the station (the agent's day boundaries), whatever the device's time zone."""
    return (datetime.now(UTC) + timedelta(minutes=TZ_OFFSET_MIN)).date()


_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")


class ReportsPage(QFrame):
    """See the module docstring."""

    message = Signal(str, bool)
    back = Signal()

    def __init__(self, api: ApiClient, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reports_page")
        self.api = api
        self.today: Callable[[], date] = station_today  #: replaceable (tests)
        self.report: dict[str, Any] | None = None
        self.grade_names: dict[str, str] = {}
        root = QVBoxLayout(self)
        root.setContentsMargins(4, 4, 4, 4)
        head = QHBoxLayout()
        self.title = QLabel(self)
        self.title.setStyleSheet("font-size: 22px; font-weight: bold;")
        self.kind = QComboBox(self)
        self.kind.setObjectName("report_kind")
        self.kind.setMinimumHeight(40)
        self.kind.addItem("", "day")
        self.kind.addItem("", "month")
        self.kind.currentIndexChanged.connect(self._kind_changed)
        self.period = QLineEdit(self)
        self.period.setObjectName("report_period")
        self.period.setMinimumHeight(40)
        self.period.setMaximumWidth(150)
        self.period.returnPressed.connect(self.load)
        self.load_button = QPushButton(self)
        self.load_button.setObjectName("report_load")
        self.load_button.setMinimumHeight(40)
        self.load_button.clicked.connect(self.load)
        self.back_button = QPushButton(self)
        self.back_button.setObjectName("reports_back")
        self.back_button.setMinimumHeight(40)
        self.back_button.clicked.connect(self.back)
        self.totals = QLabel(self)
        self.totals.setObjectName("report_totals")
        self.totals.setStyleSheet("font-size: 16px; font-weight: bold; color: #0D47A1;")
        head.addWidget(self.title)
        head.addWidget(self.kind)
        head.addWidget(self.period)
        head.addWidget(self.load_button)
        head.addSpacing(10)
        head.addWidget(self.totals, 1)
        head.addWidget(self.back_button)
        root.addLayout(head)
        body = QHBoxLayout()
        charts = QGridLayout()
        self.hour_chart, self.grade_chart, self.variance_chart = BarChart(self), BarChart(self), BarChart(self)
        self.hour_chart.setObjectName("chart_hour")
        self.grade_chart.setObjectName("chart_grade")
        self.variance_chart.setObjectName("chart_variance")
        charts.addWidget(self.hour_chart, 0, 0, 1, 2)
        charts.addWidget(self.grade_chart, 1, 0)
        charts.addWidget(self.variance_chart, 1, 1)
        body.addLayout(charts, 3)
        self.view = QTextBrowser(self)
        self.view.setObjectName("report_tables")
        body.addWidget(self.view, 2)
        root.addLayout(body, 1)
        self.retranslate()

    def retranslate(self) -> None:
        self.title.setText(tr("rep.title"))
        self.kind.setItemText(0, tr("rep.day"))
        self.kind.setItemText(1, tr("rep.month"))
        self.load_button.setText(tr("rep.load"))
        self.back_button.setText(tr("btn.back"))
        self._show()

    def _kind_changed(self, _: int) -> None:
        self.period.setText(self._default_period())

    def _default_period(self) -> str:
        d = self.today()
        return d.isoformat() if self.kind.currentData() == "day" else d.isoformat()[:7]

    def show_default(self) -> None:
        """Today's day report (called when the page is shown)."""
        if not self.period.text().strip():
            self.period.setText(self._default_period())
        self.load()

    def load(self) -> None:
        kind = str(self.kind.currentData())
        period = self.period.text().strip()
        if not (_DAY if kind == "day" else _MONTH).match(period):
            self.message.emit(tr("rep.bad_day"), True)
            return
        self.api.call("GET", f"/api/v1/manager/reports/{kind}/{period}", on_ok=self._on_report, on_error=self._fail)

    def _on_report(self, report: Any) -> None:
        if isinstance(report, dict):
            self.report = report
            self._show()

    def _show(self) -> None:
        r = self.report
        if r is None:
            for c in (self.hour_chart, self.grade_chart, self.variance_chart):
                c.set_series(c.series)
            self.totals.setText("")
            self.view.setHtml("")
            return
        self.hour_chart.set_series(hour_series(r))
        self.grade_chart.set_series(grade_series(r, self.grade_names))
        self.variance_chart.set_series(variance_series(r))
        sections = report_sections(r, self.grade_names)
        kind = tr("rep.day") if r.get("kind") == "day" else tr("rep.month")
        summary: dict[str, str] = {row[0]: row[1] for row in sections[0].rows} if sections else {}
        self.totals.setText(f"{tr('rep.net')} {summary.get(tr('rep.net'), '')}   "
                            f"{tr('rep.orders')} {summary.get(tr('rep.orders'), '')}")
        self.view.setHtml(sections_html(tr("rep.period", kind=kind, label=r.get("label", "")),
                                        str((r.get("station") or {}).get("name") or ""), sections[1:]))

    def _fail(self, err: ApiError) -> None:
        text = tr("err.agent_down") if err.status == 0 else error_text(err.code, err.message, **err.details)
        self.message.emit(text, True)
