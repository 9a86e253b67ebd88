from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

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


# Hostile input, as typed into an amount field or returned by a node. Each must be refused
# with AmountError (a form error), never another exception (a 500) and never a rounded value.
HOSTILE = [
    "1e999999",  # decimal.Overflow once scaled
    "-1e999999",
    "1E+999999999",  # past the Decimal context's Emax
    "9" * 5000,  # a huge integer: beyond any BIGINT
    "92233720368.54775808",  # one unit past BIGINT at 8 decimals
    "1.000000000000000000000000000001",  # 30-digit fraction: the context rounds it to 1
    "0.123456789012345678901234567890",
    "1e-999999",
    "0.000000001",
    "1_000",  # Decimal() accepts underscores; an amount field must not
    "١٢٣",  # Arabic-Indic digits: Decimal() accepts them too
    "１",  # full-width one
    "0x10",
    "1,5",
    "--1",
    "1 2",
    "sNaN",
    "-Infinity",
    "nan",
    "",
    " ",
    "\x00",
    "1" + "0" * 10_000,
]


@pytest.mark.parametrize("bad", HOSTILE)
def test_it_refuses_hostile_amount_strings_with_an_amount_error(bad):
    with pytest.raises(AmountError):
        to_units(bad, 8)


@pytest.mark.parametrize(
    "bad",
    [
        Decimal("1e999999"),
        Decimal("1.000000000000000000000000000001"),
        Decimal("-0.000000001"),
        Decimal("sNaN"),
        10**30,
        -(10**30),
    ],
)
def test_it_refuses_hostile_decimals_and_ints(bad):
    with pytest.raises(AmountError):
        to_units(bad, 8)


@pytest.mark.parametrize(
    "good, units",
    [
        ("21000000", 2_100_000_000_000_000),
        ("0.00000001", 1),
        ("1.10000000000000000000000000000000", 110_000_000),
        ("1e-8", 1),
        ("1.5E2", 15_000_000_000),
        (" 2.5 ", 250_000_000),
        ("-0.5", -50_000_000),
        ("0e-999999", 0),
        ("92233720368.54775807", 2**63 - 1),
        (".5", 50_000_000),
        ("5.", 500_000_000),
    ],
)
def test_it_accepts_exact_amounts_in_any_plain_notation(good, units):
    assert to_units(good, 8) == units


# Property-based: any exact amount round-trips; anything else is an AmountError, nothing else.
BIGINT = 2**63 - 1


@hsettings(max_examples=300, deadline=None)
@given(
    units=st.integers(min_value=-BIGINT, max_value=BIGINT),
    decimals=st.integers(min_value=0, max_value=10),
)
def test_it_round_trips_every_bigint_amount(units, decimals):
    text = format_units(units, decimals)
    assert to_units(text, decimals) == units
    assert to_units(Decimal(text), decimals) == units


@hsettings(max_examples=300, deadline=None)
@given(
    units=st.integers(min_value=-BIGINT, max_value=BIGINT),
    extra=st.integers(min_value=1, max_value=9),
    places=st.integers(min_value=1, max_value=40),
)
def test_it_refuses_any_sub_unit_digit_however_deep(units, extra, places):
    text = format_units(units, 8) + "0" * (places - 1) + str(extra)
    with pytest.raises(AmountError):
        to_units(text, 8)


@hsettings(max_examples=500, deadline=None)
@given(
    text=st.text(max_size=60) | st.from_regex(r"\A[+-]?\d{0,30}(\.\d{0,40})?([eE][+-]?\d{1,9})?\Z")
)
def test_it_answers_any_text_with_units_or_an_amount_error(text):
    try:
        units = to_units(text, 8)
    except AmountError:
        return
    assert isinstance(units, int) and -BIGINT <= units <= BIGINT
    assert Decimal(text.strip()) * 10**8 == units  # exact, never rounded
