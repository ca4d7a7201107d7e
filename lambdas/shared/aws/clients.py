"""boto3 clients, created lazily once per process (cold start) and reused across invocations."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Standard retry mode: exponential backoff with jitter for throttling, inside each API call.
# Step-level retries (a whole task failing) belong to the state machine's Retry blocks.
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra="immutable-ami-pipeline")


@cache
def client(service: str) -> Any:
    return boto3.client(service, config=_CONFIG)
