"""The public GitHub webhook function: its reserved concurrency follows `webhook.reservedConcurrency`.

The function URL has auth NONE, so anyone can invoke the function; a reservation caps how much of the account's
concurrency a flood of requests can take from the deploy steps (checkov CKV_AWS_115). `null` deploys without one,
for an account whose concurrency quota cannot spare it (a reservation must leave 100 unreserved executions).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import GITHUB_SOURCE, Synthesized, synthesize, variant

WEBHOOK_HANDLER = "github_webhook.handler.lambda_handler"


def webhook_function(synthesized: Synthesized) -> dict[str, Any]:
    (function,) = [
        f
        for f in synthesized.resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == WEBHOOK_HANDLER
    ]
    return function


def checkov_skips(resource: dict[str, Any]) -> set[str]:
    return {entry["id"] for entry in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])}


@pytest.fixture(scope="module")
def synthesized_webhook_variants(tmp_path_factory: pytest.TempPathFactory) -> dict[Any, Synthesized]:
    """A GitHub source with webhook.reservedConcurrency set to 7, and to null."""
    return {
        value: synthesize(
            variant(source=GITHUB_SOURCE, webhook={"reservedConcurrency": value}),
            Path(tmp_path_factory.mktemp(f"cdk-webhook-{value}")),
        )
        for value in (7, None)
    }


def test_webhook_function_reserves_two_concurrent_executions_by_default(synthesized_github: Synthesized) -> None:
    # Given a GitHub source without a webhook key / Then the function reserves the default 2, and checkov's
    # CKV_AWS_115 (a function without reserved concurrency) is met rather than skipped
    function = webhook_function(synthesized_github)
    assert function["Properties"]["ReservedConcurrentExecutions"] == 2
    assert "CKV_AWS_115" not in checkov_skips(function)


def test_webhook_function_reserves_the_configured_concurrency(
    synthesized_webhook_variants: dict[Any, Synthesized],
) -> None:
    function = webhook_function(synthesized_webhook_variants[7])
    assert function["Properties"]["ReservedConcurrentExecutions"] == 7
    assert "CKV_AWS_115" not in checkov_skips(function)


def test_null_reserved_concurrency_deploys_the_webhook_without_a_reservation(
    synthesized_webhook_variants: dict[Any, Synthesized],
) -> None:
    # Given webhook.reservedConcurrency null (an account whose quota leaves no 100 unreserved besides it)
    function = webhook_function(synthesized_webhook_variants[None])
    # Then the function has no reservation (it shares the account's unreserved pool) and the check is skipped
    assert "ReservedConcurrentExecutions" not in function["Properties"]
    assert "CKV_AWS_115" in checkov_skips(function)


def test_only_the_webhook_reserves_concurrency(synthesized_github: Synthesized) -> None:
    # The workflow's own functions are bounded by its executions: a reservation of theirs would only take from the
    # account's unreserved pool (and each must leave 100 unreserved)
    reserving = [
        f["Properties"]["Handler"]
        for f in synthesized_github.resources("AWS::Lambda::Function").values()
        if "ReservedConcurrentExecutions" in f["Properties"]
    ]
    assert reserving == [WEBHOOK_HANDLER]
