"""A local matcher for the EventBridge pattern subset this project uses (exact-value lists, nested objects).

EventBridge's TestEventPattern is an AWS call; tests may not make one. `supported()` refuses any
other pattern construct (prefix, anything-but, numeric, exists...), so a pattern that outgrows this
matcher fails loudly instead of being matched wrongly.
"""

from __future__ import annotations

from typing import Any


def supported(pattern: dict[str, Any]) -> bool:
    for value in pattern.values():
        if isinstance(value, dict):
            if not supported(value):
                return False
        elif not (isinstance(value, list) and all(isinstance(v, str | int | float | bool) for v in value)):
            return False
    return True


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    assert supported(pattern), f"pattern uses constructs this matcher does not implement: {pattern}"
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, dict):
            if not isinstance(actual, dict) or not matches(expected, actual):
                return False
        elif isinstance(actual, list):
            if not any(a in expected for a in actual):
                return False
        elif actual not in expected:
            return False
    return True
