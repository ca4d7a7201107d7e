"""EC2 and Auto Scaling API rate limits, as token buckets on the rehearsal's simulated clock.

EC2 (Amazon EC2 Developer Guide, "Request throttling for the Amazon EC2 API",
https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html):
- request rate limiting is per account, per Region and per API: "each API is evaluated individually ... Each
  request that you make removes one token from the API's bucket"; a bucket refills at a set rate up to its
  maximum capacity, and a request finding it empty fails with `RequestLimitExceeded`;
- the numbers are the page's table "Request token bucket sizes and refill rates": its categories (non-mutating
  100/20 per second, unfiltered and unpaginated non-mutating 50/10, mutating 50/5) and its "Uncategorized
  actions" (DeregisterImage, DeleteSnapshot, CreateLaunchTemplateVersion, ModifyLaunchTemplate 100/5,
  CreateTags 100/10, ...);
- RunInstances and TerminateInstances also draw on a resource token bucket, one token per instance
  ("Resource token bucket sizes and refill rates": RunInstances 1000/2, TerminateInstances 1000/20).
  The page says a bucket gains "a set number of tokens ... every second"; its token bucket link (Wikipedia)
  adds one token every 1/rate seconds: refill here is continuous, which is that within a token.
- The page does not say whether DeregisterImage's DeleteAssociatedSnapshots draws on DeleteSnapshot's bucket.
  Its model is per request and that call is one DeregisterImage request, so here it draws one DeregisterImage
  token only.

Auto Scaling (Amazon EC2 Auto Scaling API Reference, "Welcome", section "API request rate"): a token bucket, one
bucket shared by every Auto Scaling API of the account and Region (DescribeAutoScalingGroups and
DescribeScheduledActions "use tokens from the same bucket"); its size and refill rate are not published, and a
throttled request answers `Throttling` (the API Reference's "Common Errors"). The docs being silent, the shared
bucket here takes EC2's smallest general category (mutating actions: 50 tokens, 5 per second): the conservative
reading, for the rehearsal's few Auto Scaling calls.

botocore's own retries sleep in one place, `botocore.endpoint.Endpoint._needs_retry` (`time.sleep(delay)`,
whatever the retry mode computes; adaptive mode's client-side limiter sleeps elsewhere, and no step uses it).
`retry_sleeps_on` replaces that `time` with a stand-in whose `sleep` advances the simulated clock, after checking
the source still sleeps there: if botocore moves it, the rehearsal fails loudly instead of really sleeping.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import time
import types
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlparse

EC2_THROTTLING_PAGE = "https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html"


@dataclass(frozen=True)
class BucketSpec:
    capacity: float
    refill_per_second: float


# The EC2 page's categories.
NON_MUTATING = BucketSpec(100, 20)  # Describe*, List*, Search*, Get* not in another category
UNFILTERED_NON_MUTATING = BucketSpec(50, 10)  # the subset below, asked without a filter or pagination
MUTATING = BucketSpec(50, 5)  # every other mutating action
UNFILTERED_SUBSET = frozenset(
    {
        "DescribeInstances",
        "DescribeInstanceStatus",
        "DescribeNetworkInterfaces",
        "DescribeSecurityGroups",
        "DescribeSnapshots",
        "DescribeSpotInstanceRequests",
        "DescribeVolumes",
    }
)
# The EC2 page's "Uncategorized actions" the workflow (or a scenario's world) can call.
EC2_UNCATEGORIZED = {
    "CopyImage": BucketSpec(100, 1),
    "CreateLaunchTemplateVersion": BucketSpec(100, 5),
    "CreateSnapshot": BucketSpec(100, 5),
    "CreateTags": BucketSpec(100, 10),
    "CreateVolume": BucketSpec(100, 5),
    "DeleteSnapshot": BucketSpec(100, 5),
    "DeleteTags": BucketSpec(100, 10),
    "DeleteVolume": BucketSpec(100, 5),
    "DeregisterImage": BucketSpec(100, 5),
    "ModifyImageAttribute": BucketSpec(100, 5),
    "ModifyLaunchTemplate": BucketSpec(100, 5),
    "ModifySnapshotAttribute": BucketSpec(100, 5),
    "RunInstances": BucketSpec(5, 2),
    "StartInstances": BucketSpec(5, 2),
    "TerminateInstances": BucketSpec(100, 5),
}
# The EC2 page's "Resource token bucket sizes and refill rates": one token per instance the request names.
EC2_RESOURCE_BUCKETS = {
    "RunInstances": BucketSpec(1000, 2),
    "StartInstances": BucketSpec(1000, 2),
    "StopInstances": BucketSpec(1000, 20),
    "TerminateInstances": BucketSpec(1000, 20),
}
# Auto Scaling: one shared bucket, size unpublished; EC2's mutating category as the conservative reading.
AUTOSCALING_SHARED = BucketSpec(50, 5)
_NON_MUTATING_PREFIXES = ("Describe", "List", "Search", "Get")


def request_buckets(service: str, operation: str, params: Mapping[str, str]) -> list[tuple[str, BucketSpec, int]]:
    """The buckets a request draws on: (bucket key, its size and refill, tokens taken). Empty: not limited here."""
    if service == "autoscaling":
        return [("autoscaling", AUTOSCALING_SHARED, 1)]
    if service != "ec2":
        return []
    out: list[tuple[str, BucketSpec, int]] = []
    if operation in EC2_UNCATEGORIZED:
        out.append((f"ec2.{operation}", EC2_UNCATEGORIZED[operation], 1))
    elif operation in UNFILTERED_SUBSET and not _filtered_or_paginated(params):
        out.append((f"ec2.{operation}:unfiltered", UNFILTERED_NON_MUTATING, 1))
    elif operation.startswith(_NON_MUTATING_PREFIXES):
        out.append((f"ec2.{operation}", NON_MUTATING, 1))
    else:
        out.append((f"ec2.{operation}", MUTATING, 1))
    if operation in EC2_RESOURCE_BUCKETS:
        out.append((f"ec2.{operation}:resources", EC2_RESOURCE_BUCKETS[operation], _instances(operation, params)))
    return out


def _filtered_or_paginated(params: Mapping[str, str]) -> bool:
    return any(k.startswith("Filter.") or k in ("MaxResults", "NextToken") for k in params)


def _instances(operation: str, params: Mapping[str, str]) -> int:
    if operation == "RunInstances":
        return max(1, int(params.get("MaxCount", "1")))
    return max(1, sum(1 for k in params if k.startswith("InstanceId.")))


class TokenBucket:
    """Starts full (a quiet account); refills continuously at its rate up to its capacity."""

    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.spec = spec
        self.tokens = float(spec.capacity)
        self._last = now

    def level(self, now: float) -> float:
        elapsed = max(0.0, now - self._last)
        self.tokens = min(float(self.spec.capacity), self.tokens + elapsed * self.spec.refill_per_second)
        self._last = max(self._last, now)
        return self.tokens


class RateLimits:
    """Every EC2 and Auto Scaling bucket of the emulated account and Region, on the clock `now` (seconds)."""

    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()
        self.admitted: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()

    def admit(self, service: str, operation: str, params: Mapping[str, str]) -> bool:
        """Take the request's tokens and answer True, or take none and answer False (the request is throttled).

        A request that draws on two buckets (request and resource) needs both: "If you exceed a specific bucket
        limit for an API ... the action of the API is limited" (EC2 page, "Resource rate limiting")."""
        wanted = request_buckets(service, operation, params)
        if not wanted:
            return True
        key = f"{service}.{operation}"
        with self._lock:
            now = self._now()
            buckets = [(self._bucket(name, spec, now), n) for name, spec, n in wanted]
            if any(bucket.level(now) < n for bucket, n in buckets):
                self.throttled[key] += 1
                return False
            for bucket, n in buckets:
                bucket.tokens -= n
            self.admitted[key] += 1
            return True

    def level(self, bucket_key: str) -> float | None:
        """Tokens in a bucket now (None before its first request: it is full)."""
        with self._lock:
            bucket = self._buckets.get(bucket_key)
            return None if bucket is None else bucket.level(self._now())

    def _bucket(self, name: str, spec: BucketSpec, now: float) -> TokenBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = TokenBucket(spec, now)
        return bucket


def request_of(request: Any) -> tuple[str, str, dict[str, str]] | None:
    """(service, operation, parameters) of a serialized EC2 or Auto Scaling query request, else None."""
    host = urlparse(str(request.url)).hostname or ""
    service = host.split(".")[0]
    if service not in ("ec2", "autoscaling"):
        return None
    body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
    params = dict(parse_qsl(body, keep_blank_values=True))
    operation = params.get("Action")
    return (service, operation, params) if operation else None


# -- botocore's retry sleep, on the simulated clock ----------------------------------------------------------


class SimulatedTime(types.ModuleType):
    """Stands in for the `time` module inside botocore.endpoint: `sleep` calls the innermost simulated sleep,
    the rest is the real module."""

    def __init__(self) -> None:
        super().__init__("time")

    def sleep(self, seconds: float) -> None:
        with _guard:
            sleep = _sleeps[-1] if _sleeps else None
        if sleep is None:  # every emulation left meanwhile: nobody simulates this sleep
            time.sleep(seconds)
        else:
            sleep(float(seconds))

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


_RETRY_SLEEP = "time.sleep(handler_response)"
_guard = threading.Lock()
_sleeps: list[Callable[[float], None]] = []


def check_retry_sleep() -> Any:
    """botocore.endpoint, after checking its retry loop still sleeps through its module's `time.sleep`."""
    import botocore.endpoint

    source = inspect.getsource(botocore.endpoint.Endpoint._needs_retry)
    if _RETRY_SLEEP not in source or not isinstance(getattr(botocore.endpoint, "time", None), types.ModuleType):
        raise RuntimeError(
            "botocore.endpoint.Endpoint._needs_retry no longer sleeps with time.sleep(handler_response): the "
            "rehearsal cannot put botocore's retry backoff on simulated time (rehearsal/rate_limits.py)"
        )
    return botocore.endpoint


@contextlib.contextmanager
def retry_sleeps_on(sleep: Callable[[float], None]) -> Iterator[None]:
    """botocore's retry backoff calls `sleep` (simulated time) instead of sleeping, while inside (innermost wins)."""
    endpoint = check_retry_sleep()
    with _guard:
        _sleeps.append(sleep)
        if not isinstance(endpoint.time, SimulatedTime):
            endpoint.time = SimulatedTime()
    try:
        yield
    finally:
        with _guard:
            _sleeps.remove(sleep)
            if not _sleeps:
                endpoint.time = time


class SimulatedSeconds:
    """A clock that moves only when something sleeps on it: seconds of waiting, no real time (the benchmark's)."""

    def __init__(self) -> None:
        self._seconds = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._seconds += max(0.0, float(seconds))
