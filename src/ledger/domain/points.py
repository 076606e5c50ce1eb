"""Points: Decimal with exactly two places, through one door.

Floats never enter: `points()` refuses them, and the wire format carries points as strings ("12.50").
The scale is chosen once, here; quantization rounds half-up, the way people round scores by hand.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

__all__ = ["POINTS_LIMIT", "POINTS_PATTERN", "ZERO", "points", "quantize"]

SCALE = Decimal("0.01")
ZERO = Decimal("0.00")
# No single event may move a cadre by a million points; larger figures are typing mistakes.
POINTS_LIMIT = Decimal("999999.99")
# The whole string: in Python `$` alone also matches before a final line break; `(?!\n)` refuses that,
# and keeps the pattern an ECMA-262 one for the OpenAPI document (where `\Z` does not exist).
POINTS_PATTERN = r"^-?[0-9]{1,6}(\.[0-9]{1,2})?$(?!\n)"
_POINTS_RE = re.compile(POINTS_PATTERN)


def quantize(value: Decimal) -> Decimal:
    """`value` rounded half-up to two places."""
    return value.quantize(SCALE, rounding=ROUND_HALF_UP)


def points(value: str | int | Decimal) -> Decimal:
    """Points from a string, int or Decimal, with two places; a float is a programming error."""
    if isinstance(value, float):
        raise TypeError("points are never floats: pass a string such as '12.50'")
    if isinstance(value, str):
        if not _POINTS_RE.fullmatch(value):
            raise ValueError(f"not a points value with at most two places: {value!r}")
        return quantize(Decimal(value))
    try:
        result = quantize(Decimal(value))
    except InvalidOperation as error:  # pragma: no cover - Decimal(int) always works
        raise ValueError(f"not a points value: {value!r}") from error
    if not result.is_finite() or abs(result) > POINTS_LIMIT:
        raise ValueError(f"points out of range: {value!r}")
    return result
