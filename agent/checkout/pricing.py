"""Pricing: the best discount combination for an order, recomputed on every change (seeds 000/001).

A pure function of the order's lines, the member, the cached rules, the
member's coupons and the points the customer wants to use.  The stages run
in the seeds' fixed order, each on what the previous left:

1. **item promotions** per fuel line — member level price or a per-litre
   discount; the best single one per line;
2. **order promotions** — spend-and-get (满额减) on the subtotal; the best one;
3. **coupons** — the chosen coupon, or, when none was chosen, the single
   coupon worth most (cash off, or a rate in basis points, with a minimum spend);
4. **points** — as many as asked, capped by the balance and a share of the
   payable; one point is worth ``point_value_fen``.

Stored value and cash then pay the payable.  Every order-level discount is
apportioned to the lines with ``agent.money.apportion`` (proportional, the
remainder on the last line), so line discounts always sum to the total and
no line goes below zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.money import amount_for_volume, apportion, percent_of

__all__ = ["CouponInfo", "PricingError", "PricingLine", "Quote", "Rule", "best_quote"]


class PricingError(ValueError):
    """A chosen coupon or points amount cannot be applied."""


@dataclass(frozen=True)
class PricingLine:
    line_no: int
    kind: str  #: fuel | item | amount
    amount_fen: int
    grade: str | None = None
    volume_ml: int = 0


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    kind: str  #: level_price | per_litre | spend_and_get
    grade: str = ""
    level: str = ""
    price_fen: int = 0
    off_fen_per_l: int = 0
    threshold_fen: int = 0
    off_fen: int = 0


@dataclass(frozen=True)
class CouponInfo:
    coupon_id: str
    name: str
    kind: str  #: cash | rate
    value: int  #: fen off, or basis points off
    min_spend_fen: int = 0


@dataclass(frozen=True)
class Discount:
    stage: str  #: item | order | coupon | points
    rule_id: str
    name: str
    amount_fen: int


@dataclass(frozen=True)
class Quote:
    total_fen: int
    line_discounts: tuple[int, ...]
    discounts: tuple[Discount, ...]
    coupon_id: str | None = None
    points_used: int = 0
    points_earned: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def discount_fen(self) -> int:
        return sum(self.line_discounts)

    @property
    def payable_fen(self) -> int:
        return self.total_fen - self.discount_fen

    def as_dict(self) -> dict[str, object]:
        return {
            "total_fen": self.total_fen, "discount_fen": self.discount_fen, "payable_fen": self.payable_fen,
            "line_discounts": list(self.line_discounts),
            "discounts": [{"stage": d.stage, "rule_id": d.rule_id, "name": d.name, "amount_fen": d.amount_fen}
                          for d in self.discounts],
            "coupon_id": self.coupon_id, "points_used": self.points_used, "points_earned": self.points_earned,
            "notes": list(self.notes),
        }


def _item_discount(line: PricingLine, rule: Rule, level: str | None) -> int:
    if line.kind != "fuel" or line.grade != rule.grade or line.volume_ml <= 0:
        return 0
    if rule.level and rule.level != level:
        return 0
    if rule.kind == "level_price":
        return max(0, line.amount_fen - amount_for_volume(line.volume_ml, rule.price_fen))
    if rule.kind == "per_litre":
        return min(line.amount_fen, amount_for_volume(line.volume_ml, rule.off_fen_per_l))
    return 0


def _spread(discount: int, remaining: list[int], into: list[int]) -> None:
    shares = apportion(discount, remaining)
    for i, s in enumerate(shares):
        into[i] += s
        remaining[i] -= s


def _coupon_value(c: CouponInfo, base: int) -> int:
    if base < c.min_spend_fen:
        return 0
    value = c.value if c.kind == "cash" else percent_of(base, c.value)
    return min(value, base)


def best_quote(
    lines: Sequence[PricingLine],
    rules: Sequence[Rule],
    *,
    level: str | None = None,
    coupons: Sequence[CouponInfo] = (),
    coupon_id: str | None = None,
    use_coupon: bool = True,
    points_balance: int = 0,
    points_to_use: int = 0,
    point_value_fen: int = 1,
    max_points_percent: int = 50,
) -> Quote:
    """Compute the quote; raise PricingError for a coupon or points request that cannot apply."""
    total = sum(ln.amount_fen for ln in lines)
    line_disc = [0] * len(lines)
    remaining = [ln.amount_fen for ln in lines]
    discounts: list[Discount] = []
    notes: list[str] = []

    # 1. item promotions: the best single one per line
    for i, line in enumerate(lines):
        best: tuple[int, Rule] | None = None
        for rule in rules:
            if rule.kind in ("level_price", "per_litre"):
                d = _item_discount(line, rule, level)
                if d > 0 and (best is None or d > best[0]):
                    best = (d, rule)
        if best is not None:
            line_disc[i] += best[0]
            remaining[i] -= best[0]
            discounts.append(Discount("item", best[1].id, best[1].name, best[0]))

    # 2. order promotions: the best spend-and-get on what is left
    subtotal = sum(remaining)
    order_best: tuple[int, Rule] | None = None
    for rule in rules:
        if rule.kind == "spend_and_get" and subtotal >= rule.threshold_fen and rule.off_fen > 0:
            d = min(rule.off_fen, subtotal)
            if order_best is None or d > order_best[0]:
                order_best = (d, rule)
    if order_best is not None:
        _spread(order_best[0], remaining, line_disc)
        discounts.append(Discount("order", order_best[1].id, order_best[1].name, order_best[0]))

    # 3. coupons: the chosen one, or the best one
    chosen: CouponInfo | None = None
    base = sum(remaining)
    if coupon_id is not None:
        chosen = next((c for c in coupons if c.coupon_id == coupon_id), None)
        if chosen is None:
            raise PricingError(f"coupon {coupon_id} is not available to this member")
        if _coupon_value(chosen, base) == 0:
            raise PricingError(f"coupon {coupon_id} needs a spend of at least {chosen.min_spend_fen} fen")
    elif use_coupon and coupons:
        ranked = sorted(coupons, key=lambda c: (-_coupon_value(c, base), c.coupon_id))
        if _coupon_value(ranked[0], base) > 0:
            chosen = ranked[0]
    if chosen is not None:
        value = _coupon_value(chosen, base)
        _spread(value, remaining, line_disc)
        discounts.append(Discount("coupon", chosen.coupon_id, chosen.name, value))

    # 4. points
    used = 0
    if points_to_use < 0:
        raise PricingError("points must be >= 0")
    if points_to_use > 0:
        if points_to_use > points_balance:
            raise PricingError(f"only {points_balance} points available")
        if point_value_fen <= 0:
            raise PricingError("points cannot be redeemed at this station")
        cap_fen = sum(remaining) * max_points_percent // 100
        used = min(points_to_use, cap_fen // point_value_fen)
        if used < points_to_use:
            notes.append(f"points capped at {used} ({max_points_percent} % of the payable)")
        if used > 0:
            _spread(used * point_value_fen, remaining, line_disc)
            discounts.append(Discount("points", "points", "积分抵扣", used * point_value_fen))

    payable = sum(remaining)
    return Quote(total_fen=total, line_discounts=tuple(line_disc), discounts=tuple(discounts),
                 coupon_id=chosen.coupon_id if chosen else None, points_used=used,
                 points_earned=payable // 100, notes=tuple(notes))
