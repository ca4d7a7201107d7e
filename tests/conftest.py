"""Fixtures shared by every test suite.

No test may reach AWS: credentials are fake, the region is fixed and sockets are disabled
(pytest-socket, see pyproject.toml). moto, botocore's Stubber or in-memory fakes stand in for AWS.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import pytest

# Metrics and Logger read their namespace/service once, at import: set them first, as the stack does.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "web-app")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ImmutableAmiPipeline")
import shared.observability

REGION = "eu-west-1"
ACCOUNT = "123456789012"

SAMPLE_DEPLOY_CONFIG = {
    "application": "web-app",
    "source": {"type": "codecommit", "repository": "web-app", "branch": "main"},
    "stages": [
        {
            "name": "test",
            "targets": [{"autoScalingGroupName": "web-app-test", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"}],
        },
        {
            "name": "prod",
            "approval": True,
            "targets": [{"autoScalingGroupName": "web-app-prod", "launchTemplateId": "lt-0bbbbbbbbbbbbbbb2"}],
        },
    ],
    "refresh": {"minHealthyPercentage": 90, "instanceWarmupSeconds": 60},
    "retention": {"keepImages": 3, "keepLaunchTemplateVersions": 3},
}


@pytest.fixture(autouse=True)
def _aws_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a fixed region for every test, and the environment the stack sets on functions."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "web-app")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "ImmutableAmiPipeline")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("DEPLOY_CONFIG", json.dumps(SAMPLE_DEPLOY_CONFIG))


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture(autouse=True)
def _reset_metrics() -> None:
    """Powertools Metrics is a process-wide singleton: start every test with no buffered metrics."""
    shared.observability.metrics.clear_metrics()
    shared.observability.metrics.clear_default_dimensions()
