"""Checks on what a run logs (keys, values, steps), done in the caller's line.

A point is turned into exactly what the database stores (a `str` key, a `float`, an `int` step)
before it is buffered, so a bad one fails where it was logged and can never sit in the buffer
blocking the writes behind it. numpy scalars and 0-d tensors are accepted and converted.
"""
from __future__ import annotations

import json
import numbers
import operator
from typing import Any

from dlx.states import STEP_MAX, STEP_MIN

KEY_LENGTH = 250  # the key columns are String(250); PostgreSQL refuses longer ones


def checked_key(key: Any, what: str = "metric") -> str:
    """A non-empty `str` of at most 250 characters that UTF-8 can encode."""
    if type(key) is str and 0 < len(key) <= KEY_LENGTH and key.isascii():  # the common case, first
        return key
    if not isinstance(key, str):
        raise TypeError(f"{what} key: must be a string, got {type(key).__name__} {_short(key)}")
    if not key:
        raise ValueError(f"{what} key: must not be empty")
    if len(key) > KEY_LENGTH:
        raise ValueError(f"{what} key: at most {KEY_LENGTH} characters, got {len(key)} ({key[:40]!r}...)")
    _check_encodable(key, f"{what} key {key!r}")
    return key


def checked_value(key: str, value: Any) -> float:
    """A real number (bools count as 0/1; NaN and infinities are kept) as a Python float."""
    if type(value) is float:  # the common case, first: logging is on the training loop's hot path
        return value
    if not isinstance(value, numbers.Real) and getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        value = value.item()  # a 0-d numpy array or tensor
    if not isinstance(value, numbers.Real):
        raise TypeError(f"metric {key!r}: value must be a real number, got {type(value).__name__} {_short(value)}")
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"metric {key!r}: value {_short(value)} is too large for a float") from None


def checked_step(step: Any, key: str = "") -> int:
    """A whole number (int, numpy integer, 0-d integer tensor) within signed 64 bits, as a Python int."""
    if type(step) is int and STEP_MIN <= step <= STEP_MAX:
        return step
    where = f"metric {key!r}: step" if key else "step"
    if isinstance(step, bool):
        raise TypeError(f"{where} must be a whole number, got bool {step}")
    try:
        value = operator.index(step)
    except TypeError:
        raise TypeError(f"{where} must be a whole number, got {type(step).__name__} {_short(step)}") from None
    if not STEP_MIN <= value <= STEP_MAX:
        raise ValueError(f"{where} {value} is outside the signed 64-bit range the database stores")
    return value


def checked_param(key: str, value: Any) -> str:
    """A parameter as stored: strings as they are, anything else as JSON (numpy values converted)."""
    if isinstance(value, str):
        _check_encodable(value, f"param {key!r}")
        return value
    try:
        return json.dumps(value, default=_plain)
    except (TypeError, ValueError) as err:
        raise TypeError(f"param {key!r}: {err}") from None


def checked_text(key: str, value: Any, what: str = "tag") -> str:
    text = str(value)
    _check_encodable(text, f"{what} {key!r}")
    return text


def _plain(value: Any) -> Any:
    """numpy scalars and arrays, tensors: their Python equivalent, for JSON."""
    if getattr(value, "ndim", None) is not None and hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} {_short(value)} cannot be stored as JSON")


def _check_encodable(text: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise ValueError(f"{where}: not valid text (UTF-8 cannot encode {err.object[err.start:err.end]!r})") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
