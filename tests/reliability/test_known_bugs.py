"""Bugs found by the reliability harness, pinned as strict xfails until fixed (docs/reliability.md)."""

from __future__ import annotations

import pytest

from sync.center_sim.state import CenterState

# (aggregate, kind, payload) exactly as the agent enqueues them:
# agent/checkout/refunds.py: enqueue(aggregate="order", kind="order.refunded", ...)
# agent/checkout/saga.py:    enqueue(aggregate="member", kind="member.points_settled", ...)
EMITTED = [
    ("order", "order.refunded", {"refund_id": "r1", "order_id": "o1", "payment_id": "p1", "amount_fen": 100,
                                 "tender": "cash", "reason": "x"}),
    ("member", "member.points_settled", {"member_id": "m1", "order_id": "o1", "used": 0, "earned": 12}),
]


@pytest.mark.parametrize(("aggregate", "kind", "payload"), EMITTED)
def test_center_accepts_every_message_kind_the_agent_emits(aggregate: str, kind: str,
                                                           payload: dict[str, object]) -> None:
    status, reason = CenterState().apply_upload({"event_id": f"{kind}:1", "out_type": aggregate, "out_id": "o1",
                                                 "kind": kind, "payload": payload})
    assert status == "ok", reason
