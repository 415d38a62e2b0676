"""The station manager's services in one place: shifts, manual sales and pump tests, audit, timers.

``ManagerService`` composes ``ShiftService`` and ``ManualService`` and runs one timer thread
(``manager-timer``) that makes scheduled price sets effective (``PriceBook.apply_due``) and then
pushes them to idle pumps.  At start it audits a change of the configuration file since the last
run (``config.change``, hashes per section: who changed the file is not known to the agent, so
the actor is ``local-config``).

The audit log is read-only here: ``audit`` lists with filters; nothing edits or deletes an entry
(the table's triggers refuse it).  Sensitive entries reach the center through the outbox
(trigger ``audit_to_outbox``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any

from agent.manual import ManualService
from agent.service import Agent
from agent.shifts import ShiftService
from agent.store.records import add_audit

log = logging.getLogger(__name__)

__all__ = ["ManagerService"]


class ManagerService:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.shifts = ShiftService(agent)
        self.manual = ManualService(agent)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle
    def start(self, *, tick_s: float = 1.0) -> None:
        """Audit a changed config file, then run the price timer every ``tick_s`` seconds."""
        self.audit_config_change()
        self._thread = threading.Thread(target=self._run, args=(tick_s,), name="manager-timer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            try:
                self.tick()
            except Exception:  # the timer must survive anything
                log.exception("manager timer tick failed")

    def tick(self) -> int | None:
        """Make a due scheduled price set current and send it to idle pumps; returns its version."""
        fc = self.agent.forecourt
        if fc is None:
            return None
        version: int | None = fc.prices.apply_due()
        if version is not None:
            fc.apply_prices_to_idle()
        return version

    # ------------------------------------------------------------ audit
    def audit(self, *, actor: str | None = None, action: str | None = None, target: str | None = None,
              since_ms: int | None = None, until_ms: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
        """Audit entries, newest first, filtered (``action`` may end with ``*`` for a prefix)."""
        sql, args = "SELECT * FROM audit WHERE 1 = 1", list[Any]()
        if actor:
            sql += " AND actor = ?"
            args.append(actor)
        if action:
            if action.endswith("*"):
                sql += " AND action LIKE ? ESCAPE '\\'"
                args.append(action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
            else:
                sql += " AND action = ?"
                args.append(action)
        if target:
            sql += " AND target = ?"
            args.append(target)
        if since_ms is not None:
            sql += " AND at_ms >= ?"
            args.append(since_ms)
        if until_ms is not None:
            sql += " AND at_ms < ?"
            args.append(until_ms)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        rows = self.agent.store.query(sql, tuple(args))
        for r in rows:
            r["before"], r["after"] = json.loads(r["before"]), json.loads(r["after"])
        return rows

    def audit_config_change(self) -> bool:
        """Record ``config.change`` when the config differs from the one audited last; True when recorded."""
        cfg = self.agent.config.model_dump(mode="json")
        for account in cfg.get("cashiers", []):
            account.pop("pin", None)  # never put a PIN (even in a hash) into the log
        cfg.get("api", {}).pop("token", None)
        sections = {k: hashlib.sha256(json.dumps(v, sort_keys=True).encode()).hexdigest()[:16]
                    for k, v in sorted(cfg.items())}
        last = self.agent.store.query_one("SELECT after FROM audit WHERE action = 'config.change' AND target ="
                                          " 'config:file' ORDER BY id DESC LIMIT 1")
        before = json.loads(last["after"]).get("sections", {}) if last else {}
        if before == sections:
            return False
        changed = sorted(k for k in set(before) | set(sections) if before.get(k) != sections.get(k))
        now = self.agent.clock.now_ms()
        self.agent.store.write(lambda db: add_audit(
            db, at_ms=now, actor="local-config", action="config.change", target="config:file",
            before={"sections": before}, after={"sections": sections, "changed": changed}))
        return True
