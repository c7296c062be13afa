"""Checks of settings and arguments shared across the layers: one rule and one message for
"an integer of at least", "a number that is", whatever error type the caller's users catch."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real


def require_int(name: str, value: object, minimum: int,
                error: type[ValueError] = ValueError) -> None:
    """Booleans are refused: ``True`` is not a count."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {value!r}")


def require_number(name: str, value: object, meaning: str, valid: Callable[[float], bool],
                   error: type[ValueError] = ValueError) -> None:
    """NaN fails every check and booleans are refused, so a typo cannot slip through."""
    if isinstance(value, bool) or not isinstance(value, Real) or not valid(value):
        raise error(f"{name} must be {meaning}, got {value!r}")
