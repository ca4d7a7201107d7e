"""How Auto Scaling reads the version a group, instance or refresh names: "7", "$Default", "$Latest" or none."""

from __future__ import annotations

from collections.abc import Iterable


def version_number(spec: str | None, numbers: Iterable[int], default: int | None) -> int | None:
    """The number `spec` stands for among a template's version `numbers` (whose default is `default`).

    No version means the default (that is what Auto Scaling launches); "$Latest" the highest of `numbers`; a
    number is itself (whether it still exists is the caller's question); None for anything else.
    """
    if spec in (None, "", "$Default"):
        return default
    if spec == "$Latest":
        return max(numbers, default=None)
    return int(spec) if spec.isdigit() else None
