"""What every emulation of the rehearsal shares: the emulated account, botocore answers, moto's backends, and
attributes replaced for the duration of a block."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from botocore.awsrequest import AWSResponse

ACCOUNT = "123456789012"  # moto's default account
REGION = "eu-west-1"
_INHERITED = object()  # an attribute the owner did not have itself: deleted again afterwards


def _ok(parsed: dict[str, Any]) -> tuple[AWSResponse, dict[str, Any]]:
    parsed.setdefault("ResponseMetadata", {"HTTPStatusCode": 200, "RequestId": str(uuid.uuid4())})
    return AWSResponse(None, 200, {}, None), parsed


def _error(code: str, message: str, status: int = 400) -> tuple[AWSResponse, dict[str, Any]]:
    parsed = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return AWSResponse(None, status, {}, None), parsed


class _Raw:
    """The raw body botocore reads from an HTTP response."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Any:
        yield self._content

    def read(self, *_: Any) -> bytes:
        return self._content


def _backends() -> tuple[Any, Any]:
    from moto.autoscaling.models import autoscaling_backends
    from moto.ec2.models import ec2_backends

    return ec2_backends[ACCOUNT][REGION], autoscaling_backends[ACCOUNT][REGION]


@contextlib.contextmanager
def replaced(replacements: Iterable[tuple[Any, str, Any]]) -> Iterator[None]:
    """Each (owner, name, value) set for the duration of the block; afterwards each owner has what it had again
    (an attribute it only inherited is deleted, so the inherited one shows through)."""
    replacements = list(replacements)
    saved = [(owner, name, vars(owner).get(name, _INHERITED)) for owner, name, _ in replacements]
    for owner, name, value in replacements:
        setattr(owner, name, value)
    try:
        yield
    finally:
        for owner, name, original in saved:
            if original is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, original)


def _role(group_name: str) -> str | None:
    """The blue-green role tag of a group in moto (None for a group without one, or gone)."""
    _, asg = _backends()
    group = asg.autoscaling_groups.get(group_name)
    if group is None:
        return None
    return next((t["Value"] for t in group.tags if t["Key"] == "immutable-ami:role"), None)


class EmulationState:
    """What the emulations share: the scenario, the simulated clock, the log and what each has started."""

    scenario: dict[str, Any]
    application: str
    builder_instance_id: str
    log: Callable[[str], None]
    sim_now: Callable[[], float]
    sim_datetime: Callable[[], datetime]
    timed: bool
    refreshes: dict[str, Any]
    builds: dict[str, Any]
    pipelines: dict[str, tuple[str, str]]  # image pipeline ARN → ("base" or "app", "<recipe name>/<version>")
    lags: dict[tuple[str, str], float]
    deleted_versions: dict[str, set[int]]
    snapshots_deleted: list[str]
    _build_tokens: dict[str, str]
    _ids: Iterator[int]

    def _observed(self, key: tuple[str, str], ended_at: float) -> None:
        """The workflow saw a finished build or refresh: how long after it finished (its lag)."""
        self.lags.setdefault(key, max(0.0, self.sim_now() - ended_at))

    def _remaining(self, sim_start: float, duration: float) -> float:
        """Simulated seconds until a resource started at `sim_start` and taking `duration` is done."""
        return max(0.0, sim_start + duration - self.sim_now())
