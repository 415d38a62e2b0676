"""Versioned, forward-only schema migrations.

``PRAGMA user_version`` holds the schema version.  Each step runs in its own
``BEGIN IMMEDIATE`` transaction together with the version bump, so a failing
step leaves the database exactly as it was.  A database newer than this
program is refused (``SchemaTooNew``), never downgraded.

Rules: never edit a step that has shipped; add a new one.  Expand, then
contract, so a rolled-back program still runs on the expanded schema.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from agent.store.db import MigrationFailed, SchemaTooNew

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate"]

Step = Callable[[sqlite3.Connection], None]


def _v1_core(c: sqlite3.Connection) -> None:
    """Fills, orders with lines, the outbox and inbox, counters, audit."""
    for sql in (
        """CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)""",
        """CREATE TABLE fills (
            fill_id TEXT PRIMARY KEY,
            pump_id INTEGER NOT NULL,
            nozzle INTEGER,
            grade TEXT,
            state TEXT NOT NULL,
            volume_ml INTEGER NOT NULL DEFAULT 0 CHECK (volume_ml >= 0),
            amount_fen INTEGER NOT NULL DEFAULT 0 CHECK (amount_fen >= 0),
            price_fen INTEGER,
            price_set_version INTEGER,
            preset_amount_fen INTEGER,
            preset_volume_ml INTEGER,
            start_total_ml INTEGER,
            end_total_ml INTEGER,
            completion_key TEXT UNIQUE,
            order_id TEXT,
            authorized_at_ms INTEGER,
            finished_at_ms INTEGER,
            created_at_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX fills_pump_state ON fills(pump_id, state)",
        """CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            receipt_no TEXT NOT NULL UNIQUE,
            state TEXT NOT NULL CHECK (state IN ('init', 'paid', 'closed')),
            cashier TEXT,
            member_id TEXT,
            shift_id TEXT,
            total_fen INTEGER NOT NULL CHECK (total_fen >= 0),
            discount_fen INTEGER NOT NULL DEFAULT 0 CHECK (discount_fen >= 0),
            payable_fen INTEGER NOT NULL CHECK (payable_fen >= 0),
            request_key TEXT UNIQUE,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            paid_at_ms INTEGER
        )""",
        """CREATE TABLE order_lines (
            order_id TEXT NOT NULL REFERENCES orders(order_id),
            line_no INTEGER NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('fuel', 'item', 'amount')),
            name TEXT NOT NULL,
            sku TEXT,
            fill_id TEXT REFERENCES fills(fill_id),
            quantity INTEGER NOT NULL DEFAULT 1,
            volume_ml INTEGER NOT NULL DEFAULT 0,
            unit_price_fen INTEGER NOT NULL DEFAULT 0,
            amount_fen INTEGER NOT NULL CHECK (amount_fen >= 0),
            discount_fen INTEGER NOT NULL DEFAULT 0 CHECK (discount_fen >= 0 AND discount_fen <= amount_fen),
            PRIMARY KEY (order_id, line_no)
        )""",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            aggregate TEXT NOT NULL,
            aggregate_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'confirmed', 'parked')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at_ms INTEGER NOT NULL,
            confirmed_at_ms INTEGER
        )""",
        "CREATE INDEX outbox_pending ON outbox(state, id)",
        """CREATE TABLE inbox (
            command_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            payload TEXT NOT NULL,
            status TEXT NOT NULL,
            result TEXT,
            received_at_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at_ms INTEGER NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT NOT NULL,
            before TEXT NOT NULL DEFAULT '{}',
            after TEXT NOT NULL DEFAULT '{}'
        )""",
        # The audit log cannot be edited or deleted through SQL either.
        """CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit entries are immutable'); END""",
        """CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
           BEGIN SELECT RAISE(ABORT, 'audit entries are immutable'); END""",
    ):
        c.execute(sql)


def _v2_payments_shifts(c: sqlite3.Connection) -> None:
    """Payment legs, refunds and shifts."""
    for sql in (
        """CREATE TABLE payments (
            payment_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL REFERENCES orders(order_id),
            leg_no INTEGER NOT NULL,
            tender TEXT NOT NULL,
            amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
            state TEXT NOT NULL,
            provider_ref TEXT,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL,
            UNIQUE (order_id, leg_no)
        )""",
        """CREATE TABLE refunds (
            refund_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL REFERENCES orders(order_id),
            payment_id TEXT NOT NULL REFERENCES payments(payment_id),
            amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
            reason TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE shifts (
            shift_id TEXT PRIMARY KEY,
            cashier TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
            opened_at_ms INTEGER NOT NULL,
            closed_at_ms INTEGER,
            report TEXT
        )""",
        """CREATE TRIGGER shifts_closed_immutable BEFORE UPDATE ON shifts
           WHEN OLD.state = 'closed'
           BEGIN SELECT RAISE(ABORT, 'a closed shift is immutable'); END""",
    ):
        c.execute(sql)


def _v3_members_prices(c: sqlite3.Connection) -> None:
    """Member cache, coupons, versioned price sets; fills keep the price-set version."""
    for sql in (
        """CREATE TABLE members (
            member_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            level TEXT NOT NULL DEFAULT 'normal',
            phone TEXT,
            card_no TEXT,
            plates TEXT NOT NULL DEFAULT '[]',
            balance_fen INTEGER NOT NULL DEFAULT 0,
            points INTEGER NOT NULL DEFAULT 0,
            updated_at_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX members_phone ON members(phone)",
        """CREATE TABLE coupons (
            coupon_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('cash', 'rate')),
            value INTEGER NOT NULL CHECK (value > 0),
            min_spend_fen INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'available',
            locked_by_order TEXT,
            updated_at_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE price_sets (
            version INTEGER PRIMARY KEY,
            prices TEXT NOT NULL,
            source TEXT NOT NULL,
            effective_at_ms INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL
        )""",
    ):
        c.execute(sql)


def _v4_pump_settings(c: sqlite3.Connection) -> None:
    """Per-pump settings that survive restarts: lock (maintenance) and why."""
    c.execute(
        """CREATE TABLE pump_settings (
            pump_id INTEGER PRIMARY KEY,
            locked INTEGER NOT NULL DEFAULT 0,
            reason TEXT NOT NULL DEFAULT '',
            updated_at_ms INTEGER NOT NULL
        )"""
    )
    c.execute("ALTER TABLE fills ADD COLUMN start_total_fen INTEGER")
    c.execute("ALTER TABLE fills ADD COLUMN end_total_fen INTEGER")
    c.execute("ALTER TABLE fills ADD COLUMN note TEXT")


def _v5_sync(c: sqlite3.Connection) -> None:
    """Sync: per-aggregate outbox index, applied config versions, mobile orders from the center."""
    for sql in (
        # The relay sends the oldest pending message of each aggregate: this index answers
        # "is there an earlier pending message of this aggregate?" without a scan.
        "CREATE INDEX outbox_aggregate ON outbox(aggregate, aggregate_id, state, id)",
        "CREATE INDEX inbox_status ON inbox(status, received_at_ms)",
        """CREATE TABLE config_versions (
            name TEXT PRIMARY KEY,
            version INTEGER NOT NULL CHECK (version >= 0),
            payload TEXT NOT NULL,
            applied_at_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE mobile_orders (
            order_id TEXT PRIMARY KEY,
            command_id TEXT NOT NULL,
            nozzle INTEGER NOT NULL,
            grade TEXT NOT NULL,
            max_amount_fen INTEGER NOT NULL CHECK (max_amount_fen > 0),
            paid_fen INTEGER NOT NULL DEFAULT 0 CHECK (paid_fen >= 0),
            state TEXT NOT NULL CHECK (state IN ('released', 'fuelling', 'done', 'cancelled')),
            expires_at_ms INTEGER,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL
        )""",
    ):
        c.execute(sql)


def _v6_checkout(c: sqlite3.Connection) -> None:
    """Checkout: frozen quotes, payment sagas, cashiers and sessions, print jobs, points reservations."""
    for sql in (
        """CREATE TABLE quotes (
            quote_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL REFERENCES orders(order_id),
            payable_fen INTEGER NOT NULL CHECK (payable_fen >= 0),
            detail TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('frozen', 'used', 'released')),
            expires_at_ms INTEGER NOT NULL,
            created_at_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX quotes_order ON quotes(order_id, state)",
        """CREATE TABLE payment_sagas (
            saga_id TEXT PRIMARY KEY,
            order_id TEXT NOT NULL REFERENCES orders(order_id),
            quote_id TEXT NOT NULL REFERENCES quotes(quote_id),
            state TEXT NOT NULL CHECK (state IN ('running', 'paid', 'compensating', 'failed')),
            reason TEXT,
            request_key TEXT UNIQUE,
            created_at_ms INTEGER NOT NULL,
            updated_at_ms INTEGER NOT NULL
        )""",
        "CREATE INDEX sagas_state ON payment_sagas(state)",
        "ALTER TABLE payments ADD COLUMN saga_id TEXT",
        "ALTER TABLE payments ADD COLUMN detail TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE orders ADD COLUMN kind TEXT NOT NULL DEFAULT 'sale'",
        "ALTER TABLE orders ADD COLUMN quote TEXT",
        "ALTER TABLE orders ADD COLUMN prepay_pump_id INTEGER",
        "ALTER TABLE refunds ADD COLUMN tender TEXT",
        "ALTER TABLE refunds ADD COLUMN actor TEXT",
        "ALTER TABLE refunds ADD COLUMN updated_at_ms INTEGER",
        """CREATE TABLE cashiers (
            cashier_id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('cashier', 'supervisor', 'manager')),
            pin_hash TEXT NOT NULL,
            active INTEGER NOT NULL DEFAULT 1
        )""",
        """CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            cashier_id TEXT NOT NULL REFERENCES cashiers(cashier_id),
            created_at_ms INTEGER NOT NULL,
            ended_at_ms INTEGER
        )""",
        """CREATE TABLE print_jobs (
            id INTEGER PRIMARY KEY,
            order_id TEXT NOT NULL,
            reprint INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'printed', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            created_at_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE points_holds (
            order_id TEXT PRIMARY KEY,
            member_id TEXT NOT NULL,
            points INTEGER NOT NULL CHECK (points > 0),
            state TEXT NOT NULL CHECK (state IN ('held', 'settled', 'released'))
        )""",
    ):
        c.execute(sql)


def _v7_manager(c: sqlite3.Connection) -> None:
    """Station manager: shifts with meter readings, late bucket, pump tests, manual sales, day closes.

    Triggers do the bookkeeping that must be atomic with other modules' writes:

    * ``orders_paid_shift`` — an order becomes ``paid`` → it is linked to the open shift of its
      cashier (else the open station shift) in the same transaction; an order created before that
      shift opened is marked ``shift_late`` (the late bucket).  With no open shift it stays unlinked
      and the next shift to open adopts it as late.  It never lands in a closed shift.
    * ``refunds_shift`` — a refund belongs to the shift open when it was made (actor's, else the
      order cashier's, else the station's).
    * ``fills_pump_test`` — a fill registered as a pump test is stored as ``test`` the moment the
      forecourt commits it ``finished`` (excluded from sales, never unpaid).
    * ``audit_to_outbox`` — sensitive audit entries are queued for the center with the entry.
    """
    for sql in (
        "ALTER TABLE shifts ADD COLUMN scope TEXT NOT NULL DEFAULT 'cashier'",
        "ALTER TABLE shifts ADD COLUMN parent_id TEXT",
        "ALTER TABLE shifts ADD COLUMN opened_by TEXT",
        "ALTER TABLE shifts ADD COLUMN closed_by TEXT",
        "ALTER TABLE shifts ADD COLUMN float_fen INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE shifts ADD COLUMN declared_cash_fen INTEGER",
        "ALTER TABLE shifts ADD COLUMN open_readings TEXT NOT NULL DEFAULT '{}'",
        "ALTER TABLE shifts ADD COLUMN close_readings TEXT",
        "ALTER TABLE shifts ADD COLUMN forced INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE shifts ADD COLUMN next_shift_id TEXT",
        "ALTER TABLE shifts ADD COLUMN open_key TEXT",
        "CREATE UNIQUE INDEX shifts_one_open ON shifts(scope, cashier) WHERE state = 'open'",
        "CREATE UNIQUE INDEX shifts_open_key ON shifts(open_key)",
        """CREATE TRIGGER shifts_closed_no_delete BEFORE DELETE ON shifts WHEN OLD.state = 'closed'
           BEGIN SELECT RAISE(ABORT, 'a closed shift is immutable'); END""",
        "ALTER TABLE orders ADD COLUMN shift_late INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX orders_shift ON orders(shift_id)",
        "CREATE INDEX orders_paid_at ON orders(paid_at_ms)",
        "ALTER TABLE refunds ADD COLUMN shift_id TEXT",
        "CREATE INDEX refunds_shift ON refunds(shift_id)",
        "ALTER TABLE fills ADD COLUMN kind TEXT NOT NULL DEFAULT 'pump'",
        "CREATE INDEX fills_finished_at ON fills(finished_at_ms)",
        "ALTER TABLE price_sets ADD COLUMN cancelled_at_ms INTEGER",
        """CREATE TABLE pump_tests (
            test_id TEXT PRIMARY KEY,
            fill_id TEXT NOT NULL UNIQUE REFERENCES fills(fill_id),
            pump_id INTEGER NOT NULL,
            nozzle INTEGER,
            actor TEXT NOT NULL,
            note TEXT NOT NULL DEFAULT '',
            created_at_ms INTEGER NOT NULL
        )""",
        """CREATE TABLE day_closes (
            day TEXT PRIMARY KEY,
            report TEXT NOT NULL,
            closed_by TEXT NOT NULL,
            closed_at_ms INTEGER NOT NULL
        )""",
        """CREATE TRIGGER day_closes_no_update BEFORE UPDATE ON day_closes
           BEGIN SELECT RAISE(ABORT, 'a day close is immutable'); END""",
        """CREATE TRIGGER day_closes_no_delete BEFORE DELETE ON day_closes
           BEGIN SELECT RAISE(ABORT, 'a day close is immutable'); END""",
        """CREATE TRIGGER orders_paid_shift AFTER UPDATE OF state ON orders
           WHEN NEW.state = 'paid' AND NEW.shift_id IS NULL
           BEGIN
             UPDATE orders SET shift_id = (
                 SELECT s.shift_id FROM shifts s WHERE s.state = 'open'
                 AND ((s.scope = 'cashier' AND s.cashier = NEW.cashier) OR s.scope = 'station')
                 ORDER BY s.scope = 'cashier' DESC, s.opened_at_ms DESC LIMIT 1)
             WHERE order_id = NEW.order_id;
             UPDATE orders SET shift_late = 1 WHERE order_id = NEW.order_id AND shift_id IS NOT NULL
                 AND created_at_ms < (SELECT s.opened_at_ms FROM shifts s WHERE s.shift_id = orders.shift_id);
           END""",
        """CREATE TRIGGER refunds_shift AFTER INSERT ON refunds WHEN NEW.shift_id IS NULL
           BEGIN
             UPDATE refunds SET shift_id = (
                 SELECT s.shift_id FROM shifts s WHERE s.state = 'open' AND (s.scope = 'station'
                   OR (s.scope = 'cashier' AND s.cashier IN (NEW.actor,
                       (SELECT o.cashier FROM orders o WHERE o.order_id = NEW.order_id))))
                 ORDER BY s.scope = 'cashier' AND s.cashier = NEW.actor DESC, s.scope = 'cashier' DESC,
                          s.opened_at_ms DESC LIMIT 1)
             WHERE refund_id = NEW.refund_id;
           END""",
        """CREATE TRIGGER fills_pump_test AFTER UPDATE OF state ON fills
           WHEN NEW.state IN ('finished', 'paid') AND EXISTS (SELECT 1 FROM pump_tests t WHERE t.fill_id = NEW.fill_id)
           BEGIN UPDATE fills SET state = 'test', kind = 'test' WHERE fill_id = NEW.fill_id; END""",
        """CREATE TRIGGER audit_to_outbox AFTER INSERT ON audit
           WHEN NEW.action NOT IN ('pump.authorize', 'cashier.login')
           BEGIN
             INSERT INTO outbox(event_id, aggregate, aggregate_id, kind, payload, created_at_ms)
             VALUES ('audit:' || NEW.id, 'audit', CAST(NEW.id AS TEXT), 'audit.entry',
                     json_object('id', NEW.id, 'at_ms', NEW.at_ms, 'actor', NEW.actor, 'action', NEW.action,
                                 'target', NEW.target, 'before', json(NEW.before), 'after', json(NEW.after)),
                     NEW.at_ms)
             ON CONFLICT(event_id) DO NOTHING;
           END""",
        "CREATE INDEX audit_at ON audit(at_ms)",
    ):
        c.execute(sql)


def _v8_terminals(c: sqlite3.Connection) -> None:
    """Several checkout terminals per station: which terminal took an order, which a session is bound to.

    Expand only (nullable columns), so an older program still runs on it.  An
    order inserted without ``terminal_id`` gets it from its actor: ``terminal:<id>``
    (a terminal's own credential), else the newest open session of its cashier
    that is bound to a terminal (a cashier works on one terminal at a time; with
    the same cashier on two terminals the newest login wins).  The trigger runs
    inside the order's own transaction, before its outbox payload is built, so
    the ``order.created`` message carries the terminal too.
    """
    for sql in (
        "ALTER TABLE orders ADD COLUMN terminal_id TEXT",
        "ALTER TABLE sessions ADD COLUMN terminal_id TEXT",
        "CREATE INDEX orders_terminal ON orders(terminal_id, created_at_ms)",
        """CREATE TRIGGER orders_terminal_from_actor AFTER INSERT ON orders
           WHEN NEW.terminal_id IS NULL AND NEW.cashier IS NOT NULL
           BEGIN
             UPDATE orders SET terminal_id = CASE
                 WHEN NEW.cashier LIKE 'terminal:%' THEN substr(NEW.cashier, 10)
                 ELSE (SELECT s.terminal_id FROM sessions s
                       WHERE s.cashier_id = NEW.cashier AND s.ended_at_ms IS NULL AND s.terminal_id IS NOT NULL
                       ORDER BY s.created_at_ms DESC LIMIT 1)
               END
             WHERE order_id = NEW.order_id;
           END""",
    ):
        c.execute(sql)


def _v9_fill_baseline(c: sqlite3.Connection) -> None:
    """Each fill keeps the pump's totalizers read before it was authorized (R7), as JSON per nozzle.

    With them a fill that ended while the agent was down is recovered from the totalizers even when
    the nozzle had no earlier fill on record.
    """
    c.execute("ALTER TABLE fills ADD COLUMN start_totals TEXT")


def _v10_refund_keys(c: sqlite3.Connection) -> None:
    """A refund request may carry a request key: repeating it returns the refunds already made."""
    c.execute("ALTER TABLE refunds ADD COLUMN request_key TEXT")
    c.execute("CREATE INDEX refunds_request_key ON refunds(request_key)")


def _v11_invoices(c: sqlite3.Connection) -> None:
    """Invoices (发票) issued by the center, one per order.

    A row is written as ``requested`` before the center is asked (keyed by the order id, so asking
    again cannot issue a second invoice) and becomes ``issued`` with the center's invoice number.
    """
    for sql in (
        """CREATE TABLE invoices (
            order_id TEXT PRIMARY KEY REFERENCES orders(order_id),
            state TEXT NOT NULL CHECK (state IN ('requested', 'issued')),
            invoice_no TEXT UNIQUE,
            title TEXT NOT NULL,
            tax_id TEXT,
            email TEXT,
            amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
            actor TEXT NOT NULL,
            request_key TEXT,
            created_at_ms INTEGER NOT NULL,
            issued_at_ms INTEGER,
            CHECK (state = 'requested' OR invoice_no IS NOT NULL)
        )""",
        "CREATE INDEX invoices_state ON invoices(state)",
    ):
        c.execute(sql)


#: Index i holds the step that takes the schema from version i to i + 1.
MIGRATIONS: tuple[Step, ...] = (_v1_core, _v2_payments_shifts, _v3_members_prices, _v4_pump_settings,
                                  _v5_sync, _v6_checkout, _v7_manager, _v8_terminals, _v9_fill_baseline,
                                  _v10_refund_keys, _v11_invoices)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Apply every pending step up to ``target``; return the resulting version."""
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this program's {SCHEMA_VERSION}: "
            "install the newer Forecourt version (the data was not touched)"
        )
    for version in range(current, target):
        step = MIGRATIONS[version]
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except Exception as exc:
            conn.execute("ROLLBACK")
            raise MigrationFailed(f"migration to version {version + 1} ({step.__name__}) failed: {exc}") from exc
    return max(current, target)
