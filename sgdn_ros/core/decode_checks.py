"""The error decoding raises and the checks of its settings, shared by the decoder and the
peak search."""

from __future__ import annotations

from collections.abc import Callable
from numbers import Integral, Real


class DecodingError(ValueError):
    """Network outputs or decoding settings that cannot be decoded."""


def require_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise DecodingError(f"{name} must be an integer >= {minimum}, got {value!r}")


def require_number(
    name: str, value: object, meaning: str, valid: Callable[[float], bool]
) -> None:
    """NaN fails every check and booleans are refused, so a typo cannot slip through."""
    if isinstance(value, bool) or not isinstance(value, Real) or not valid(value):
        raise DecodingError(f"{name} must be {meaning}, got {value!r}")
