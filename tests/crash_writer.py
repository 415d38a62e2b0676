"""Child process for the crash test: writes orders in a loop, printing each id after its commit."""

from __future__ import annotations

import sys

from agent.clock import SystemClock, UuidIds
from agent.events import EventBus
from agent.orders import LineRequest, OrderService
from agent.store import Store


def main() -> None:
    store = Store(sys.argv[1])
    orders = OrderService(store, SystemClock(), UuidIds(), EventBus(), "CRASH")
    print("ready", flush=True)
    n = 0
    while True:
        n += 1
        order = orders.create([LineRequest(kind="amount", amount_fen=100 + n % 900),
                               LineRequest(kind="item", sku="6901234", name="矿泉水", unit_price_fen=200,
                                           quantity=1 + n % 3)])
        sys.stdout.write(order["order_id"] + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
