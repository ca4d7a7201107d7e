"""The one clock the steps read (health timeouts, soak, retention order) and the one way they wait (pacing).

Functions looked up at call time (`clock.now()`, `clock.sleep(s)`), so the rehearsal can run these steps on its
simulated time, the way it already shifts the start times AWS reports for builds and refreshes.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def epoch_seconds() -> int:
    """`now()` in whole seconds since the epoch: the expiry times the lock and wait items carry."""
    return int(now().timestamp())


def sleep(seconds: float) -> None:
    """Wait inside a step (only to pace calls to a documented API rate; waiting for AWS belongs to the ASL)."""
    if seconds > 0:
        time.sleep(seconds)
