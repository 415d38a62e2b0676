"""Money and volume arithmetic: the one module that owns rounding.

Units, everywhere in the product:

* money: integer **fen** (1 yuan = 100 fen);
* volume: integer **millilitres**;
* unit price: integer **fen per litre**.

No float ever carries money.  The rules written down here are the only
rounding rules in the code base:

* ``amount_for_volume``: fen = volume_ml × price / 1000, rounded half up
  (a pump's own amount is authoritative; this is used to quote and to check).
* ``volume_for_amount``: the volume a preset amount buys, rounded **down**
  so the pump never dispenses more than was paid for.
* ``percent_of``: a discount rate in basis points, rounded half up.
* ``apportion``: a discount split over lines in proportion to their amounts
  (seed 001), floor per line, the remainder to the last line, no line below
  zero, and the parts sum exactly to the discount.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "MoneyError",
    "amount_for_volume",
    "apportion",
    "format_fen",
    "format_ml",
    "parse_yuan",
    "percent_of",
    "volume_for_amount",
]


class MoneyError(ValueError):
    """An amount, volume or price outside what the rules allow."""


def _check_int(name: str, value: int, *, minimum: int = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MoneyError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise MoneyError(f"{name} must be >= {minimum}, got {value}")


def _div_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounding half away from zero (inputs non-negative)."""
    return (2 * numerator + denominator) // (2 * denominator)


def amount_for_volume(volume_ml: int, price_fen_per_l: int) -> int:
    """Fen for a volume at a unit price, rounded half up.

    >>> amount_for_volume(23_360, 107)   # 23.36 L at 1.07 yuan/L
    2500
    """
    _check_int("volume_ml", volume_ml)
    _check_int("price_fen_per_l", price_fen_per_l)
    return _div_half_up(volume_ml * price_fen_per_l, 1000)


def volume_for_amount(amount_fen: int, price_fen_per_l: int) -> int:
    """Millilitres an amount buys at a unit price, rounded down.

    >>> volume_for_amount(10_000, 789)   # 100 yuan at 7.89/L
    12674
    """
    _check_int("amount_fen", amount_fen)
    _check_int("price_fen_per_l", price_fen_per_l, minimum=1)
    return amount_fen * 1000 // price_fen_per_l


def percent_of(amount_fen: int, basis_points: int) -> int:
    """``basis_points``/10000 of an amount, rounded half up (500 bp = 5 %)."""
    _check_int("amount_fen", amount_fen)
    _check_int("basis_points", basis_points)
    return _div_half_up(amount_fen * basis_points, 10_000)


def apportion(discount_fen: int, line_amounts_fen: Sequence[int]) -> list[int]:
    """Split a discount over lines in proportion to their amounts (seed 001).

    Each line but the last gets ``floor(discount × amount / total)``; the last
    takes the remainder.  Should the remainder exceed the last line's amount
    (possible when the last line is tiny), the excess moves back to earlier
    lines, so that no line's share exceeds its amount, no share is negative,
    and the shares sum exactly to the discount.

    >>> apportion(100, [300, 300, 400])
    [30, 30, 40]
    >>> apportion(10, [1, 1, 1])
    Traceback (most recent call last):
    ...
    agent.money.MoneyError: discount 10 exceeds the lines' total 3
    """
    _check_int("discount_fen", discount_fen)
    for i, a in enumerate(line_amounts_fen):
        _check_int(f"line_amounts_fen[{i}]", a)
    total = sum(line_amounts_fen)
    if discount_fen > total:
        raise MoneyError(f"discount {discount_fen} exceeds the lines' total {total}")
    if not line_amounts_fen:
        return []
    if total == 0:
        return [0] * len(line_amounts_fen)
    shares = [discount_fen * a // total for a in line_amounts_fen[:-1]]
    shares.append(discount_fen - sum(shares))
    # Move any excess of the last share back onto earlier lines with room left.
    excess = shares[-1] - line_amounts_fen[-1]
    i = len(shares) - 2
    while excess > 0 and i >= 0:
        room = line_amounts_fen[i] - shares[i]
        take = min(room, excess)
        shares[i] += take
        shares[-1] -= take
        excess -= take
        i -= 1
    return shares


def format_fen(amount_fen: int) -> str:
    """``12345`` → ``"123.45"`` (display only)."""
    sign = "-" if amount_fen < 0 else ""
    a = abs(amount_fen)
    return f"{sign}{a // 100}.{a % 100:02d}"


def format_ml(volume_ml: int) -> str:
    """``12345`` → ``"12.345"`` litres (display only)."""
    sign = "-" if volume_ml < 0 else ""
    v = abs(volume_ml)
    return f"{sign}{v // 1000}.{v % 1000:03d}"


def parse_yuan(text: str) -> int:
    """Parse a typed amount such as ``"12.5"`` or ``"100"`` into fen, exactly.

    Rejects more than two decimals, signs, exponents and anything not a plain
    decimal number, so a typo never becomes a silently rounded amount.
    """
    t = text.strip()
    if not t or t.count(".") > 1 or not t.replace(".", "").isdigit() or not t.isascii():
        raise MoneyError(f"not an amount: {text!r}")
    whole, _, frac = t.partition(".")
    if len(frac) > 2:
        raise MoneyError(f"at most two decimals (fen): {text!r}")
    return int(whole or "0") * 100 + int((frac + "00")[:2])
