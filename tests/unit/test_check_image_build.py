"""check_image_build: map Image Builder's status, pick this region's AMI, tag it; never wait."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from check_image_build import logic
from check_image_build.models import CheckImageBuildEnvironment, CheckImageBuildInput
from moto import mock_aws

from shared import clock, tags
from shared.aws.imagebuilder import ImageBuilder, ImageTags
from shared.config import ConfigurationError
from shared.environment import load_environment
from shared.errors import ImageBuildNotFound, InvalidInput
from tests.conftest import ACCOUNT, REGION
from tests.unit.test_start_image_build import BASE_AMI, COMMIT, EXECUTION, request_dict

# One botocore session for the module: each service model is loaded once (see test_start_image_build).
SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
BUILD_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/web-app-app/1.0.0/7"
OTHER_ACCOUNT = "210987654321"


def build_dict(
    pipeline: str = "app", *, arn: str | None = BUILD_ARN, commit: str | None = COMMIT, dry_run: bool = False
) -> dict[str, Any]:
    """start_image_build's output, as the state machine passes it on."""
    return {
        "pipeline": pipeline,
        "imageBuildVersionArn": arn,
        "commit": commit,
        "clientToken": f"{pipeline}-0123456789abcdef",
        "dryRun": dry_run,
    }


def check_input(
    *, build: dict[str, Any] | None = None, base_ami_id: str | None = None, dry_run: bool = False, **request_change: Any
) -> CheckImageBuildInput:
    return CheckImageBuildInput.model_validate(
        {
            "executionId": EXECUTION,
            "dryRun": dry_run,
            "build": build if build is not None else build_dict(),
            "request": request_dict(**request_change),
            "baseAmiId": base_ami_id,
        }
    )


def image_response(status: str, amis: list[dict[str, Any]] | None = None, **state: Any) -> dict[str, Any]:
    """GetImage's answer, in the shape of botocore's imagebuilder model."""
    image: dict[str, Any] = {
        "arn": BUILD_ARN,
        "name": "web-app-app",
        "version": "1.0.0/7",
        "state": {"status": status, **state},
    }
    if amis is not None:
        image["outputResources"] = {"amis": amis}
    return {"requestId": "r-1", "image": image}


def ami_entry(image_id: str, region: str = REGION, account: str = ACCOUNT) -> dict[str, Any]:
    return {"region": region, "image": image_id, "name": "web-app-app 2025-01-01", "accountId": account}


class Aws:
    """A real Image Builder client behind a Stubber (moto has none) and moto EC2 for the AMI and its tags."""

    def __init__(self) -> None:
        self.imagebuilder = SESSION.client("imagebuilder")
        self.stub = Stubber(self.imagebuilder)

    @cached_property
    def ec2(self) -> Any:
        return SESSION.client("ec2")

    def register(self) -> str:
        return str(
            self.ec2.register_image(
                Name="web-app-app",
                RootDeviceName="/dev/xvda",
                BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
            )["ImageId"]
        )

    def expect_get(self, response: dict[str, Any]) -> None:
        self.stub.add_response("get_image", response, {"imageBuildVersionArn": BUILD_ARN})

    def run(self, request: CheckImageBuildInput, ec2: Any = None) -> dict[str, Any]:
        with self.stub:
            output = logic.run(request, REGION, ImageBuilder(self.imagebuilder), ImageTags(ec2 or self.ec2))
            self.stub.assert_no_pending_responses()
        return output.model_dump(by_alias=True, mode="json")

    def tags_of(self, image_id: str) -> dict[str, str]:
        image = self.ec2.describe_images(ImageIds=[image_id])["Images"][0]
        return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield Aws()


def no_ec2() -> Any:
    """An EC2 client behind a Stubber with no responses: any call fails the test."""
    ec2 = SESSION.client("ec2")
    Stubber(ec2).activate()
    return ec2


# --- status mapping ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imagebuilder_status", "status"),
    [
        ("PENDING", "BUILDING"),
        ("CREATING", "BUILDING"),
        ("BUILDING", "BUILDING"),
        ("TESTING", "BUILDING"),
        ("DISTRIBUTING", "BUILDING"),
        ("INTEGRATING", "BUILDING"),
        ("CANCELLED", "CANCELLED"),
        ("FAILED", "FAILED"),
        ("DEPRECATED", "FAILED"),
        ("DELETED", "FAILED"),
        ("DISABLED", "FAILED"),
    ],
)
def test_status_maps_every_unfinished_or_unusable_image_builder_status(
    aws: Aws, imagebuilder_status: str, status: str
) -> None:
    # Given Image Builder reports the status with a reason
    aws.expect_get(image_response(imagebuilder_status, reason=f"because {imagebuilder_status.lower()}"))
    # When the build is checked (no EC2 call may happen)
    output = aws.run(check_input(), no_ec2())
    # Then the status is mapped and the reason passed on, with no AMI
    assert output == {
        "status": status,
        "amiId": None,
        "imageBuildVersionArn": BUILD_ARN,
        "reason": f"because {imagebuilder_status.lower()}",
        "pipeline": "app",
        "baseUnchanged": False,
        "elapsedSeconds": 0,
    }


def test_elapsed_seconds_count_from_the_build_start_on_the_shared_clock(
    aws: Aws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a build started at t and the shared clock (the rehearsal's simulated one) at t + 4 h 1 s
    started = 1_796_000_000
    monkeypatch.setattr(clock, "now", lambda: datetime.fromtimestamp(started + 14_401, UTC))
    aws.expect_get(image_response("BUILDING"))
    # When the still-running build is checked
    output = aws.run(check_input(build={**build_dict(), "startedAt": started}), no_ec2())
    # Then the state machine is told how long the bake has run, to end it at build.timeoutMinutes
    assert (output["status"], output["elapsedSeconds"]) == ("BUILDING", 14_401)


def test_status_map_covers_every_status_of_the_imagebuilder_model() -> None:
    # Given the ImageStatus enum of botocore's Image Builder model
    model = SESSION.client("imagebuilder").meta.service_model
    enum = set(model.shape_for("ImageStatus").enum)
    # Then every value is mapped, and nothing that does not exist
    assert set(logic.STATUS_MAP) == enum


def test_unknown_status_is_reported_as_still_building(aws: Aws) -> None:
    # Given a status this code does not know (a future addition to the API)
    response = image_response("PENDING")
    response["image"]["state"]["status"] = "SOMETHING_NEW"
    aws.stub.add_response("get_image", response, {"imageBuildVersionArn": BUILD_ARN})
    # When checked
    output = aws.run(check_input(), no_ec2())
    # Then the state machine is told to ask again (its bounded wait ends it), not that the build failed
    assert output["status"] == "BUILDING"


def test_failed_build_reports_image_builders_reason_and_the_stage_that_failed(aws: Aws) -> None:
    # Given a build that failed during its tests
    aws.expect_get(
        image_response(
            "FAILED",
            reason="Image testing failed: the app did not answer on :8080",
            failureContext={"imageStatus": "TESTING"},
        )
    )
    # When checked
    output = aws.run(check_input(), no_ec2())
    # Then the reason names both
    assert output["status"] == "FAILED"
    assert output["reason"] == "Image testing failed: the app did not answer on :8080 (failed while TESTING)"


def test_status_without_a_reason_still_explains_itself(aws: Aws) -> None:
    aws.expect_get(image_response("CANCELLED"))
    output = aws.run(check_input(), no_ec2())
    assert (output["status"], output["reason"]) == ("CANCELLED", "Image Builder status CANCELLED")


# --- available: region pick and tags -------------------------------------------------------------------


def test_available_build_picks_this_regions_ami_of_this_account_and_tags_it(aws: Aws) -> None:
    # Given a build distributed to another region, to another account in this region, and to us
    ours = aws.register()
    aws.expect_get(
        image_response(
            "AVAILABLE",
            amis=[
                ami_entry("ami-0aaaaaaaaaaaaaaa1", region="us-east-1"),
                ami_entry("ami-0bbbbbbbbbbbbbbb2", account=OTHER_ACCOUNT),
                ami_entry(ours),
            ],
        )
    )
    # When checked
    output = aws.run(check_input(base_ami_id=BASE_AMI))
    # Then this region's AMI of this account is reported and tagged with what the workflow knows
    assert output == {
        "status": "AVAILABLE",
        "amiId": ours,
        "imageBuildVersionArn": BUILD_ARN,
        "reason": f"{ours} is available in {REGION}",
        "pipeline": "app",
        "baseUnchanged": False,
        "elapsedSeconds": 0,
    }
    assert aws.tags_of(ours) == {
        tags.COMMIT: COMMIT,
        tags.BRANCH: "main",
        tags.TRIGGER: "codecommit",
        tags.EXECUTION: EXECUTION,
        tags.BASE_IMAGE: BASE_AMI,
        tags.IMAGE_BUILD: BUILD_ARN,
    }


def test_available_build_without_an_ami_in_this_region_fails_with_the_reason(aws: Aws) -> None:
    # Given a build that distributed only to us-east-1 and to another account here
    aws.expect_get(
        image_response(
            "AVAILABLE",
            amis=[
                ami_entry("ami-0aaaaaaaaaaaaaaa1", region="us-east-1"),
                ami_entry("ami-0bbbbbbbbbbbbbbb2", account=OTHER_ACCOUNT),
            ],
        )
    )
    # When checked (nothing may be tagged)
    output = aws.run(check_input(), no_ec2())
    # Then the build counts as failed, and the reason says where the AMIs went
    assert output["status"] == "FAILED"
    assert output["amiId"] is None
    assert output["reason"] == (
        f"the image build is AVAILABLE but distributed no AMI to {REGION} "
        f"(AMIs: ami-0aaaaaaaaaaaaaaa1 in us-east-1, ami-0bbbbbbbbbbbbbbb2 in {REGION})"
    )


def test_available_build_with_no_output_resources_fails(aws: Aws) -> None:
    aws.expect_get(image_response("AVAILABLE"))
    output = aws.run(check_input(), no_ec2())
    assert (output["status"], output["reason"]) == (
        "FAILED",
        f"the image build is AVAILABLE but distributed no AMI to {REGION} (AMIs: none)",
    )


def test_tags_skip_null_values_and_take_the_resolved_commit_of_a_rebuild(aws: Aws) -> None:
    # Given the rebuild-base chain's app bake: the request has no commit, the build resolved it; no base AMI known
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry(ours)]))
    request = check_input(action="rebuild-base", trigger="schedule")
    # When checked
    aws.run(request)
    # Then the resolved commit is tagged, and no empty base image tag is written
    assert aws.tags_of(ours) == {
        tags.COMMIT: COMMIT,
        tags.BRANCH: "main",
        tags.TRIGGER: "schedule",
        tags.EXECUTION: EXECUTION,
        tags.IMAGE_BUILD: BUILD_ARN,
    }


def test_base_image_is_tagged_without_app_commit_or_branch(aws: Aws) -> None:
    # Given the base bake of rebuild-base
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry(ours)]))
    # When checked
    output = aws.run(check_input(build=build_dict("base", commit=None), action="rebuild-base", trigger="schedule"))
    # Then only what is true of a base image is tagged
    assert output["pipeline"] == "base"
    assert aws.tags_of(ours) == {tags.TRIGGER: "schedule", tags.EXECUTION: EXECUTION, tags.IMAGE_BUILD: BUILD_ARN}


def test_checking_an_available_build_again_is_harmless(aws: Aws) -> None:
    # Given an available build already checked (and tagged) once
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry(ours)]))
    first = aws.run(check_input())
    # When checked again (a retried state)
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry(ours)]))
    second = aws.run(check_input())
    # Then the answer and the tags are the same
    assert first == second
    assert aws.tags_of(ours)[tags.COMMIT] == COMMIT


def test_ami_not_visible_to_ec2_yet_is_reported_as_still_building(aws: Aws) -> None:
    # Given EC2 does not list the just-distributed AMI yet
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry("ami-0ccccccccccccccc3")]))
    ec2 = SESSION.client("ec2")
    with Stubber(ec2) as ec2_stub:
        ec2_stub.add_client_error("create_tags", service_error_code="InvalidAMIID.NotFound", service_message="gone?")
        # When checked
        output = aws.run(check_input(), ec2)
    # Then the state machine asks again later
    assert (output["status"], output["amiId"]) == ("BUILDING", None)
    assert "ami-0ccccccccccccccc3 is built but not visible to EC2 yet" in output["reason"]


def test_tag_request_has_the_documented_shape() -> None:
    # Given EC2 behind a Stubber that checks the exact request
    ec2 = SESSION.client("ec2")
    with Stubber(ec2) as stub:
        stub.add_response(
            "create_tags",
            {},
            {"Resources": ["ami-0ccccccccccccccc3"], "Tags": [{"Key": tags.EXECUTION, "Value": "x" * 256}]},
        )
        # When a value longer than EC2 allows is tagged
        ImageTags(ec2).tag_image("ami-0ccccccccccccccc3", {tags.EXECUTION: "x" * 300})
        stub.assert_no_pending_responses()


# --- dry run and bad input -----------------------------------------------------------------------


def test_dry_run_build_has_nothing_to_check(aws: Aws) -> None:
    # Given start_image_build's dry-run answer (no build)
    request = check_input(build=build_dict(arn=None, dry_run=True), dry_run=True)
    # When checked (no Image Builder or EC2 call may happen)
    output = aws.run(request, no_ec2())
    # Then it reports nothing built, so the dry run can go on
    assert output == {
        "status": "AVAILABLE",
        "amiId": None,
        "imageBuildVersionArn": None,
        "reason": "dry run: no image was built, so there is no AMI",
        "pipeline": "app",
        "baseUnchanged": False,
        "elapsedSeconds": 0,
    }


def test_dry_run_of_a_real_build_reads_but_does_not_tag(aws: Aws) -> None:
    # Given a real build checked with dryRun set
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry("ami-0ccccccccccccccc3")]))
    # When checked (no EC2 call may happen)
    output = aws.run(check_input(dry_run=True), no_ec2())
    # Then the AMI is named, nothing is tagged
    assert (output["status"], output["amiId"]) == ("AVAILABLE", "ami-0ccccccccccccccc3")


def test_missing_build_arn_outside_a_dry_run_is_invalid(aws: Aws) -> None:
    with pytest.raises(InvalidInput, match=r"build\.imageBuildVersionArn: required"):
        aws.run(check_input(build=build_dict(arn=None)), no_ec2())


@pytest.mark.parametrize("code", ["ResourceNotFoundException", "InvalidRequestException"])
def test_unknown_build_is_reported_as_image_build_not_found(code: str) -> None:
    imagebuilder = SESSION.client("imagebuilder")
    with Stubber(imagebuilder) as stub:
        stub.add_client_error("get_image", service_error_code=code)
        with pytest.raises(ImageBuildNotFound, match=code):
            ImageBuilder(imagebuilder).get_image(BUILD_ARN)


# --- environment and handler ---------------------------------------------------------------------


def test_check_image_build_environment_needs_the_region() -> None:
    with pytest.raises(ConfigurationError, match="check_image_build function environment: AWS_REGION: required"):
        load_environment(CheckImageBuildEnvironment, "check_image_build", {})


def test_check_image_build_environment_accepts_either_region_variable() -> None:
    # Lambda sets AWS_REGION and AWS_DEFAULT_REGION; a local run may set only one
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        assert (
            load_environment(CheckImageBuildEnvironment, "check", {name: "eu-central-1"}).aws_region == "eu-central-1"
        )


@pytest.fixture
def handler(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Any:
    module = importlib.import_module("check_image_build.handler")
    monkeypatch.setattr(module, "imagebuilder", lambda: ImageBuilder(aws.imagebuilder))
    monkeypatch.setattr(module, "image_tags", lambda: ImageTags(aws.ec2))
    return module


def test_handler_reports_and_tags_an_available_build(handler: Any, aws: Aws, lambda_context: Any) -> None:
    # Given the state machine's poll payload and a finished build
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry(ours)]))
    event = {"executionId": EXECUTION, "build": build_dict(), "request": request_dict(), "baseAmiId": None}
    # When the handler runs
    with aws.stub:
        output = handler.lambda_handler(event, lambda_context)
    # Then the JSON answer is the documented shape, and the AMI is tagged
    assert output == {
        "status": "AVAILABLE",
        "amiId": ours,
        "imageBuildVersionArn": BUILD_ARN,
        "reason": f"{ours} is available in {REGION}",
        "pipeline": "app",
        "baseUnchanged": False,
        "elapsedSeconds": 0,
    }
    assert aws.tags_of(ours)[tags.EXECUTION] == EXECUTION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"build": {**build_dict(), "clientToken": None}}, r"build\.clientToken"),
        ({"build": {**build_dict(), "pipeline": "other"}}, r"build\.pipeline"),
        ({"build": None}, "build"),
        ({"baseAmiId": "base"}, "baseAmiId"),
        ({"request": None}, "request"),
        ({"poll": 3}, "poll: unknown field"),
    ],
)
def test_handler_rejects_malformed_payloads_before_touching_aws(
    handler: Any, aws: Aws, lambda_context: Any, change: dict[str, Any], message: str
) -> None:
    event = {"executionId": EXECUTION, "build": build_dict(), "request": request_dict(), **change}
    with aws.stub, pytest.raises(InvalidInput, match=message):
        handler.lambda_handler(event, lambda_context)


# -- rebuild-base: is the new base image any different? ------------------------------------------------

PREVIOUS_BUILD = "arn:aws:imagebuilder:eu-west-1:123456789012:image/web-app-base/1.0.0/3"
NEW_BUILD = "arn:aws:imagebuilder:eu-west-1:123456789012:image/web-app-base/1.0.0/4"
PACKAGES = frozenset({("kernel", "6.1.100-1"), ("openssl", "3.0.8-1")})


class FakePackages:
    def __init__(self, by_build: dict[str, frozenset[tuple[str, str]]]) -> None:
        self.by_build = by_build

    def list_packages(self, build_version_arn: str) -> frozenset[tuple[str, str]]:
        return self.by_build.get(build_version_arn, frozenset())


class FakeImages:
    def __init__(self, records: list[logic.ImageRecord]) -> None:
        self.records = records

    def list_application_images(self, application: str) -> list[logic.ImageRecord]:
        return self.records


def base_record(image_id: str, created: str, build: str | None) -> logic.ImageRecord:
    record_tags = {tags.APPLICATION: "web-app", tags.PIPELINE: "base"}
    if build:
        record_tags[tags.IMAGE_BUILD] = build
    return logic.ImageRecord(image_id=image_id, state="available", creation_date=created, tags=record_tags)


def previous_bases() -> FakeImages:
    return FakeImages(
        [
            base_record("ami-0000000000000000a", "2026-11-01T03:00:00.000Z", "arn:old"),
            base_record("ami-0000000000000000b", "2026-11-20T03:00:00.000Z", PREVIOUS_BUILD),
            base_record("ami-0000000000000000c", "2026-11-21T03:00:00.000Z", NEW_BUILD),  # the new one itself
        ]
    )


def test_base_with_the_same_packages_as_the_previous_base_is_unchanged() -> None:
    # Given the new base build installs exactly the packages of the newest earlier base image
    packages = FakePackages({NEW_BUILD: PACKAGES, PREVIOUS_BUILD: PACKAGES})
    # When compared / Then there is nothing to roll out
    assert logic.base_unchanged("ami-0000000000000000c", "web-app", packages, previous_bases(), NEW_BUILD)


def test_base_with_an_updated_package_is_changed() -> None:
    # Given one package got a security update since the previous base image
    updated = frozenset({("kernel", "6.1.100-1"), ("openssl", "3.0.8-2")})
    packages = FakePackages({NEW_BUILD: updated, PREVIOUS_BUILD: PACKAGES})
    # When compared / Then the app must be rebuilt on it and rolled out
    assert not logic.base_unchanged("ami-0000000000000000c", "web-app", packages, previous_bases(), NEW_BUILD)


@pytest.mark.parametrize(
    ("records", "by_build"),
    [
        ([], {NEW_BUILD: PACKAGES}),  # no earlier base image at all
        ([base_record("ami-0000000000000000b", "2026-11-20T03:00:00.000Z", None)], {NEW_BUILD: PACKAGES}),  # untagged
        ([base_record("ami-0000000000000000b", "2026-11-20T03:00:00.000Z", PREVIOUS_BUILD)], {NEW_BUILD: PACKAGES}),
    ],
    ids=["no-previous-base", "previous-base-records-no-build", "previous-build-has-no-inventory"],
)
def test_base_counts_as_changed_when_it_cannot_be_compared(
    records: list[logic.ImageRecord], by_build: dict[str, frozenset[tuple[str, str]]]
) -> None:
    # Given nothing reliable to compare with / Then rolling out is the safe answer
    assert not logic.base_unchanged(
        "ami-0000000000000000c", "web-app", FakePackages(by_build), FakeImages(records), NEW_BUILD
    )
