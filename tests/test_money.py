from decimal import Decimal

import pytest

from ledger.money import AmountError, format_units, from_units, to_units


def test_it_converts_decimal_and_string_amounts_exactly():
    assert to_units(Decimal("20999999.99999999"), 8) == 2099999999999999
    assert to_units("0.00000001", 8) == 1
    assert to_units(Decimal("1.50000000"), 8) == 150000000
    assert to_units(3, 8) == 300000000


def test_it_refuses_floats():
    with pytest.raises(AmountError, match="float"):
        to_units(0.1, 8)


def test_it_refuses_sub_unit_precision():
    with pytest.raises(AmountError, match="more than 8 decimals"):
        to_units(Decimal("0.000000001"), 8)
    with pytest.raises(AmountError):
        to_units("1.123456789", 8)


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", "", True])
def test_it_refuses_things_that_are_not_amounts(bad):
    with pytest.raises(AmountError):
        to_units(bad, 8)


def test_it_formats_with_all_decimals():
    assert format_units(150000000, 8) == "1.50000000"
    assert format_units(1, 8) == "0.00000001"
    assert format_units(2100000000000000, 8) == "21000000.00000000"
    assert from_units(-5, 2) == Decimal("-0.05")
