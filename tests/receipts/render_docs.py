"""Render docs/receipt.png from a real sale: ``.venv/bin/python -m tests.receipts.render_docs [out.png] [width]``.

The sale goes through the real services (member with a level price, a fill, a
shop item, spend-and-get, points, stored value + cash with change), then the
receipt is built from the committed order exactly as the print queue builds it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from agent.checkout.service import CheckoutService
from agent.clock import FixedClock, SeqIds
from agent.config import parse_config
from agent.printing import load_receipt
from agent.receipts import to_escpos, to_image
from agent.service import Agent
from agent.store import Store
from tests.receipts.conftest import CONFIG, Till


def demo_sale(till: Till) -> dict[str, Any]:
    now = till.clock.now_ms()
    till.agent.store.write(lambda db: db.execute(
        "INSERT INTO members(member_id, name, level, phone, balance_fen, points, updated_at_ms)"
        " VALUES ('m1', '王五', 'gold', '13800000001', 5000, 3000, ?)", [now]))
    fill = till.fill(30_420)
    order = till.checkout.create_order([{"kind": "fuel", "fill_id": fill},
                                        {"kind": "item", "sku": "6901234567892", "quantity": 2}],
                                       cashier="c01", member_id="m1")
    till.checkout.set_preferences(order["order_id"], points=300)
    quote = till.checkout.confirm(order["order_id"])
    cash = quote["payable_fen"] - 5000
    result = till.checkout.pay(order["order_id"], quote_id=quote["quote_id"], actor="c01", tenders=[
        {"tender": "stored_value", "amount_fen": 5000},
        {"tender": "cash", "amount_fen": cash, "given_fen": (cash // 10_000 + 1) * 10_000}])
    assert result["state"] == "paid", result
    return till.agent.orders.get(order["order_id"])


def main(out: str = "docs/receipt.png", width: int = 32) -> None:
    config = {**CONFIG, "station": {"id": "S0421", "name": "示例加油站"},
              "promotions": [*CONFIG["promotions"], {"id": "gold-92", "name": "金卡92#会员价", "kind": "level_price",
                                                     "grade": "92", "level": "gold", "price_fen": 759}]}
    with tempfile.TemporaryDirectory() as tmp:
        clock = FixedClock(1_767_254_400_000)
        agent = Agent(parse_config(config), Store(Path(tmp) / "f.db"), clock=clock, ids=SeqIds())
        try:
            till = Till(agent, clock, CheckoutService(agent, gateway=None))
            order = demo_sale(till)
            receipt = load_receipt(agent, order["order_id"])
            to_image(receipt, width).convert("1", dither=None).save(out, optimize=True)
            sys.stdout.write(receipt.text(width))
            sys.stdout.write(f"{len(to_escpos(receipt, 'gb18030', width))} ESC/POS bytes; image in {out}\n")
        finally:
            agent.close()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/receipt.png", int(sys.argv[2]) if len(sys.argv) > 2 else 32)
