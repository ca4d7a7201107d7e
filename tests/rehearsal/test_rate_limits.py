"""The emulated API rate limits: the EC2 page's buckets, throttled calls on simulated time, botocore's sleep seam."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from rehearsal import rate_limits
from rehearsal.emulated_aws import REGION, EmulatedAws
from rehearsal.rate_limits import RateLimits, SimulatedSeconds, request_buckets


class ManualClock:
    def __init__(self) -> None:
        self.at = 0.0

    def now(self) -> float:
        return self.at


def test_deregister_image_bursts_100_then_refills_5_per_second() -> None:
    # Given EC2's documented DeregisterImage bucket (100 tokens, 5 per second), full at the start
    clock = ManualClock()
    limits = RateLimits(clock.now)
    # When 101 requests arrive at once
    admitted = [limits.admit("ec2", "DeregisterImage", {}) for _ in range(101)]
    # Then the first 100 pass and the 101st is throttled
    assert admitted == [True] * 100 + [False]
    # and a fifth of a second later exactly one more passes
    clock.at = 0.2
    assert limits.admit("ec2", "DeregisterImage", {}) is True
    assert limits.admit("ec2", "DeregisterImage", {}) is False
    # and other APIs have buckets of their own
    assert limits.admit("ec2", "DeleteSnapshot", {}) is True
    assert limits.throttled == {"ec2.DeregisterImage": 2}


def test_each_api_takes_its_category_from_the_ec2_page() -> None:
    # Given the calls the workflow makes / When classified / Then each draws on its documented bucket
    def spec(operation: str, params: dict[str, str] | None = None) -> tuple[float, float]:
        (_, bucket, _), *_ = request_buckets("ec2", operation, params or {})
        return bucket.capacity, bucket.refill_per_second

    assert spec("DescribeImages") == (100, 20)
    assert spec("DescribeImageReferences") == (100, 20)
    assert spec("DescribeInstances") == (50, 10)  # unfiltered and unpaginated
    assert spec("DescribeInstances", {"Filter.1.Name": "image-id"}) == (100, 20)
    assert spec("DescribeInstances", {"MaxResults": "1000"}) == (100, 20)
    assert spec("DeregisterImage") == spec("DeleteSnapshot") == (100, 5)
    assert spec("CreateLaunchTemplateVersion") == spec("ModifyLaunchTemplate") == (100, 5)
    assert spec("CreateTags") == (100, 10)
    assert spec("DeleteLaunchTemplateVersions") == (50, 5)  # a mutating action the page does not list
    # and RunInstances also takes one resource token per instance
    assert [(k, n) for k, _, n in request_buckets("ec2", "RunInstances", {"MaxCount": "3"})] == [
        ("ec2.RunInstances", 1),
        ("ec2.RunInstances:resources", 3),
    ]


def test_auto_scaling_calls_share_one_bucket() -> None:
    # Given Auto Scaling's one shared bucket (its size unpublished: 50 tokens, 5 per second here)
    limits = RateLimits(ManualClock().now)
    # When its describe and refresh calls together exceed it
    outcomes = [
        limits.admit("autoscaling", op, {}) for op in ["DescribeAutoScalingGroups", "StartInstanceRefresh"] * 26
    ]
    # Then the 51st call of any of them is throttled
    assert outcomes.count(True) == 50
    assert outcomes[50] is False


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[EmulatedAws, list[float]]]:
    """An emulated account whose clock never moves by itself: a throttled request waits only by sleeping."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    slept: list[float] = []
    with mock_aws():
        aws = EmulatedAws({}, "", lambda _: None, sim_now=lambda: 0.0)
        aws.sim_sleep = slept.append
        aws.install()
        aws.counting = True
        try:
            yield aws, slept
        finally:
            aws.uninstall()


def _ec2(attempts: int) -> Any:
    config = Config(retries={"mode": "standard", "total_max_attempts": attempts})
    return boto3.client("ec2", region_name=REGION, config=config)


def test_a_throttled_call_costs_simulated_time_and_raises_once_botocores_retries_are_spent(
    emulated: tuple[EmulatedAws, list[float]],
) -> None:
    aws, slept = emulated
    ec2 = _ec2(attempts=4)
    volume = ec2.create_volume(Size=8, AvailabilityZone=f"{REGION}a")["VolumeId"]
    # Given CreateTags' bucket (100 tokens) spent, and a clock that only sleeping moves
    for n in range(100):
        ec2.create_tags(Resources=[volume], Tags=[{"Key": "k", "Value": str(n)}])
    started = time.perf_counter()
    # When one more call is made
    with pytest.raises(ClientError) as raised:
        ec2.create_tags(Resources=[volume], Tags=[{"Key": "k", "Value": "one too many"}])
    # Then EC2's documented code comes back after botocore's 4 attempts, its 3 backoffs slept on simulated time
    assert raised.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert len(slept) == 3
    assert sum(slept) > 0
    assert time.perf_counter() - started < 1.0  # nothing really slept
    assert aws.rate_limits.throttled["ec2.CreateTags"] == 4


def test_a_call_the_emulation_answers_is_limited_and_retried_the_same_way(
    emulated: tuple[EmulatedAws, list[float]],
) -> None:
    aws, slept = emulated
    ec2 = _ec2(attempts=3)
    # Given DeregisterImage's bucket spent (the emulation answers DeregisterImage before botocore's endpoint)
    for n in range(100):
        with pytest.raises(ClientError, match=r"InvalidAMIID\.NotFound"):
            ec2.deregister_image(ImageId=f"ami-{n:017x}")
    # When one more call is made / Then it is retried twice on simulated time, then throttled
    with pytest.raises(ClientError) as raised:
        ec2.deregister_image(ImageId="ami-0000000000000ffff")
    assert raised.value.response["Error"]["Code"] == "RequestLimitExceeded"
    assert len(slept) == 2
    assert aws.rate_limits.throttled["ec2.DeregisterImage"] == 3


def test_a_throttled_call_succeeds_once_the_simulated_wait_refilled_its_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a simulated clock that sleeping advances, and CreateTags' bucket spent
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    clock = SimulatedSeconds()
    with mock_aws():
        aws = EmulatedAws({}, "", lambda _: None, sim_now=clock.now)
        aws.sim_sleep = clock.sleep
        aws.install()
        aws.counting = True
        try:
            ec2 = _ec2(attempts=10)
            volume = ec2.create_volume(Size=8, AvailabilityZone=f"{REGION}a")["VolumeId"]
            for n in range(120):
                ec2.create_tags(Resources=[volume], Tags=[{"Key": "k", "Value": str(n)}])
        finally:
            aws.uninstall()
    # Then every call went through, and the 20 beyond the burst cost at least 20 / 10 per second of waiting
    assert aws.rate_limits.admitted["ec2.CreateTags"] == 120
    assert aws.rate_limits.throttled["ec2.CreateTags"] > 0
    assert clock.now() >= 2.0 - 1e-9


def test_retry_sleep_seam_fails_loudly_if_botocore_no_longer_sleeps_there(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the seam works on this botocore
    rate_limits.check_retry_sleep()
    # When botocore's retry loop no longer reads as the seam expects
    monkeypatch.setattr(rate_limits.inspect, "getsource", lambda _: "def _needs_retry(self): return False")
    # Then installing the seam fails with a message naming the module, instead of really sleeping
    with pytest.raises(RuntimeError, match=r"rate_limits\.py"), rate_limits.retry_sleeps_on(lambda _: None):
        pass


def test_retry_sleep_seam_restores_the_real_time_module() -> None:
    import botocore.endpoint

    # Given / When the seam is entered and left / Then botocore sleeps for real again
    with rate_limits.retry_sleeps_on(lambda _: None):
        assert isinstance(botocore.endpoint.time, rate_limits.SimulatedTime)
    assert botocore.endpoint.time is time
