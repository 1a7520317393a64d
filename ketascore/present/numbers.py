"""How numbers are printed for people: the one rule of the terminal tables, the HTML report
and the pictures.

- A statistic (a mean, a standard deviation, a mean change, the bounds of a confidence
  interval) has one decimal, always: ``31.0 (4.7)``, never ``31 (4.7)`` beside ``31.5 (4.7)``.
- A percentage (a rate, a percent change) is a whole number.
- A subject's own value (a score, a baseline) is printed as it is: a whole number as such,
  a prorated score with up to two decimals; a value carried forward is marked (``33†``:
  LOCF, ``31‡``: BOCF).

Rounding goes half away from zero on the number's decimal value, as SAS's ROUND function
and its ``w.d`` formats round (2.25 gives 2.3, -2.25 gives -2.3, 0.15 gives 0.2), rather than
Python's rounding of the binary value (``f"{2.25:.1f}"`` is 2.2); a result of zero is
printed without a sign. Machine-readable outputs (JSON, CSV, ADaM) keep every digit.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from ketascore.core.values import Num, format_number

STAT_DIGITS = 1
# the mark of a value carried forward, by ChangeRow.imputed (ADaM DTYPE)
CARRIED_MARKS = {"LOCF": "†", "BOCF": "‡"}


def rounded(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, half away from zero on its decimal value."""
    exact = Decimal(repr(float(value)))  # the shortest decimal that reads back as value
    text = f"{exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP):f}"
    return text.removeprefix("-") if Decimal(text) == 0 else text


def stat(value: float | None, missing: str = "-") -> str:
    """A mean, SD, mean change or interval bound: one decimal."""
    return missing if value is None else rounded(value, STAT_DIGITS)


def mean_sd(mean: float | None, sd: float | None, missing: str = "-") -> str:
    """``31.5 (4.7)``; the SD of a single value is ``-``."""
    return f"{stat(mean, missing)} ({stat(sd, missing)})"


def percent(value: float | None, missing: str = "-", *, sign: bool = False) -> str:
    """A percentage as a whole number, without the % sign (``+6`` with ``sign``)."""
    if value is None:
        return missing
    text = rounded(value, 0)
    if sign and not text.startswith("-") and text != "0":
        text = "+" + text
    return text


def value(number: Num | None, missing: str = "-") -> str:
    """A subject's value: whole numbers as they are, fractions with up to two decimals."""
    if number is None:
        return missing
    if isinstance(number, float) and not number.is_integer():
        return rounded(number, 2).rstrip("0").rstrip(".")
    return format_number(number)


def count_rate(count: int, total: int, rate: float | None, missing: str = "-") -> str:
    """``9/20 (45%)``: a count of a total and its percentage."""
    if not total:
        return missing
    return f"{count}/{total} ({percent(rate, missing)}%)"
