from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.money import (
    MoneyError,
    amount_for_volume,
    apportion,
    format_fen,
    format_ml,
    parse_yuan,
    percent_of,
    volume_for_amount,
)

lines = st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=30)


@given(lines, st.data())
def test_apportion_sums_exactly_never_negative_never_above_line(amounts: list[int], data: st.DataObject) -> None:
    discount = data.draw(st.integers(min_value=0, max_value=sum(amounts)))
    shares = apportion(discount, amounts)
    assert sum(shares) == discount
    assert len(shares) == len(amounts)
    assert all(0 <= s <= a for s, a in zip(shares, amounts, strict=True))


@given(st.lists(st.integers(min_value=1, max_value=1_000_000), min_size=2, max_size=20), st.data())
def test_apportion_is_proportional_up_to_one_fen_except_last(amounts: list[int], data: st.DataObject) -> None:
    discount = data.draw(st.integers(min_value=0, max_value=sum(amounts)))
    shares = apportion(discount, amounts)
    total = sum(amounts)
    for s, a in zip(shares[:-1], amounts[:-1], strict=True):
        exact = discount * a / total
        # floor share, possibly topped up by the last line's overflow
        assert s >= int(exact) or s == a


def test_apportion_seed_example_remainder_on_last_line() -> None:
    assert apportion(100, [300, 300, 400]) == [30, 30, 40]
    assert apportion(10, [333, 333, 334]) == [3, 3, 4]
    assert apportion(1, [1, 1, 1]) == [0, 0, 1]
    # the last line is too small for the remainder: the excess moves back
    assert apportion(5, [3, 3, 1]) == [2, 2, 1]


def test_apportion_rejects_discount_above_total_and_bad_types() -> None:
    with pytest.raises(MoneyError):
        apportion(11, [5, 5])
    with pytest.raises(MoneyError):
        apportion(-1, [5])
    with pytest.raises(MoneyError):
        apportion(1, [1.5])  # type: ignore[list-item]
    assert apportion(0, []) == []


def test_amount_for_volume_rounds_half_up() -> None:
    assert amount_for_volume(23_360, 107) == 2500  # the Gilbarco golden frame: 23.36 L × 1.07
    assert amount_for_volume(1, 500) == 1  # 0.5 fen rounds up
    assert amount_for_volume(1, 499) == 0
    assert amount_for_volume(0, 789) == 0
    with pytest.raises(MoneyError):
        amount_for_volume(-1, 789)


@given(st.integers(min_value=0, max_value=10**8), st.integers(min_value=1, max_value=20_000))
def test_preset_volume_never_costs_more_than_the_amount(amount: int, price: int) -> None:
    vol = volume_for_amount(amount, price)
    assert vol * price <= amount * 1000  # exact value of that volume never exceeds what was paid


def test_percent_and_formatting() -> None:
    assert percent_of(10_000, 500) == 500
    assert percent_of(999, 50) == 5  # 4.995 → 5
    assert format_fen(12_345) == "123.45"
    assert format_fen(-5) == "-0.05"
    assert format_ml(12_345) == "12.345"


@pytest.mark.parametrize(("text", "fen"), [("12.5", 1250), ("100", 10_000), ("0.01", 1), (" 7.89 ", 789), (".5", 50)])
def test_parse_yuan(text: str, fen: int) -> None:
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", ["", "1.234", "-1", "1e3", "1,5", "abc", "1.2.3", "１２"])
def test_parse_yuan_rejects(text: str) -> None:
    with pytest.raises(MoneyError):
        parse_yuan(text)
