"""boto3 clients, created lazily once per process (cold start) and reused across invocations.

Every client an adapter holds, its own or one given to it (moto, Stubber, the rehearsal), passes through
`adapter_client`, which makes a throttled call raise `Throttled` (shared.aws.throttling).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from shared.aws.throttling import translate_throttling

# Standard retry mode: exponential backoff with jitter for throttling, inside each API call.
# Step-level retries (a whole task failing) belong to the state machine's Retry blocks.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra="immutable-ami-pipeline")


@cache
def client(service: str) -> Any:
    return translate_throttling(boto3.client(service, config=_CONFIG))


@cache
def regional_client(service: str, region: str) -> Any:
    """A client for another region (the AMI copies of `build.extraRegions`)."""
    return translate_throttling(boto3.client(service, region_name=region, config=_CONFIG))


def adapter_client(given: Any, service: str) -> Any:
    """The client an adapter uses: the one it was given, else the process's own, either way translating throttles."""
    return translate_throttling(given) if given is not None else client(service)
