"""Secrets Manager: read a secret's string value, and a small per-process cache of one secret.

The cache answers from memory for `max_age_seconds`; `refresh()` fetches again on demand (a rotated
secret is then seen at once) but at most once per `min_refresh_seconds`, so a flood of callers that
present a wrong value cannot turn every call into a GetSecretValue request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client
from shared.errors import SecretNotFound

# ResourceNotFoundException: no such secret; InvalidRequestException: the secret is scheduled for deletion.
_NOT_FOUND_CODES = frozenset({"ResourceNotFoundException", "InvalidRequestException"})


class Secrets:
    def __init__(self, secretsmanager: Any = None) -> None:
        self._secretsmanager = adapter_client(secretsmanager, "secretsmanager")

    def get_string(self, secret_id: str) -> str:
        """The SecretString of the secret's current (AWSCURRENT) version."""
        try:
            response = self._secretsmanager.get_secret_value(SecretId=secret_id)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            if error.get("Code") in _NOT_FOUND_CODES:
                raise SecretNotFound(f"secret {secret_id}: {error.get('Code')}: {error.get('Message', '')}") from exc
            raise
        value = response.get("SecretString")
        if not value:
            raise SecretNotFound(f"secret {secret_id} has no string value (SecretString is empty or absent)")
        return str(value)


class CachedSecret:
    """One secret's string value, kept in memory between invocations of the same process."""

    def __init__(
        self,
        secret_id: str,
        *,
        max_age_seconds: float,
        min_refresh_seconds: float,
        secrets: Secrets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret_id = secret_id
        self._max_age = max_age_seconds
        self._min_refresh = min_refresh_seconds
        self._given_secrets = secrets
        self._clock = clock
        self._value: str | None = None
        self._fetched_at = 0.0

    @property
    def _secrets(self) -> Secrets:
        if self._given_secrets is None:
            self._given_secrets = Secrets()
        return self._given_secrets

    def _fetch(self) -> str:
        self._value = self._secrets.get_string(self._secret_id)
        self._fetched_at = self._clock()
        return self._value

    def get(self) -> str:
        """The cached value, fetched again once it is older than `max_age_seconds`."""
        if self._value is None or self._clock() - self._fetched_at >= self._max_age:
            return self._fetch()
        return self._value

    def refresh(self) -> str | None:
        """Fetch now; the new value when it differs from the cached one, else None.

        None without a request when the cached value is younger than `min_refresh_seconds`: it is current.
        """
        previous = self._value
        if previous is not None and self._clock() - self._fetched_at < self._min_refresh:
            return None
        value = self._fetch()
        return value if value != previous else None
