"""The one clock the blue-green steps read (health timeouts, soak, retention order).

A function looked up at call time (`clock.now()`), so the rehearsal can run these steps on its
simulated time, the way it already shifts the start times AWS reports for builds and refreshes.
"""

from __future__ import annotations

from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)
