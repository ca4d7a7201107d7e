"""Fixtures shared by every test suite.

No test may reach AWS: credentials are fake, the region is fixed and sockets are disabled
(pytest-socket, see pyproject.toml). moto, botocore's Stubber or in-memory fakes stand in for AWS.

Every synth of the session (in-process, or app.py run by the rehearsal or a test) reads the Image Builder
version ledger from one temporary copy, read-only (see pytest_configure): the repository's
imagebuilder/versions.json is never written, and each synth sees the committed versions whatever other
configurations the session synthesized before.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from stacks.image_versions import FILE_VARIABLE, READONLY_VARIABLE, ledger_file

# Metrics and Logger read their namespace/service once, at import: set them first, as the stack does.
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "web-app")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ImmutableAmiPipeline")
import shared.observability

REGION = "eu-west-1"
ACCOUNT = "123456789012"
_LEDGER_COPY = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Point the version ledger at a per-session copy, before any synth and before xdist starts its workers.

    The workers inherit the variables from the controlling process, so all of them read the same copy.
    """
    if hasattr(config, "workerinput") and os.environ.get(FILE_VARIABLE):  # an xdist worker: the controller's copy
        return
    folder = Path(tempfile.mkdtemp(prefix="immutable-ami-versions-"))
    copy = folder / "versions.json"
    if ledger_file().is_file():
        shutil.copyfile(ledger_file(), copy)
    config.stash[_LEDGER_COPY] = folder
    os.environ[FILE_VARIABLE] = str(copy)
    os.environ[READONLY_VARIABLE] = "1"


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_LEDGER_COPY, None)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


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
