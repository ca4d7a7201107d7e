"""Pieces of the human-readable reasons the health checks report (check_refresh, check_green_group)."""

from __future__ import annotations

from collections.abc import Sequence

MAX_LISTED = 10  # items named in one reason; the rest are counted


def listed(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def target_group_name(arn: str) -> str:
    parts = arn.split(":")[-1].split("/")  # targetgroup/<name>/<id>
    return parts[1] if len(parts) > 1 else arn
