"""check_image_build: map Image Builder's status over every bake, pick this region's AMI, tag every copy; cancel
what still runs; never wait."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from check_image_build import logic
from check_image_build.models import CheckImageBuildEnvironment, CheckImageBuildInput
from moto import mock_aws

from shared import clock, tags
from shared.aws.imagebuilder import MAX_CLIENT_TOKEN_LENGTH, ImageBuilder, ImageTags
from shared.aws.images import Images
from shared.config import ConfigurationError
from shared.environment import load_environment
from shared.errors import ImageBuildNotFound, InvalidInput
from tests.conftest import ACCOUNT, REGION
from tests.unit.fakes import FakeBakedImages, FakePackages
from tests.unit.test_start_image_build import BASE_AMI, COMMIT, EXECUTION, IMAGEBUILDER, OTHER_COMMIT, request_dict

# One botocore session for the module: each service model is loaded once (see test_start_image_build).
SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
BUILD_ARN = f"{IMAGEBUILDER}:image/web-app-app-0123456789ab/1.2.0/1"
OTHER_BUILD_ARN = f"{IMAGEBUILDER}:image/web-app-app-ba9876543210/1.2.0/1"
THIRD_BUILD_ARN = f"{IMAGEBUILDER}:image/web-app-app-aaaabbbbcccc/1.2.0/1"
BASE_BUILD_ARN = f"{IMAGEBUILDER}:image/web-app-base/1.0.0/4"
OTHER_ACCOUNT = "210987654321"
OTHER_REGION = "us-east-1"
CREATED = "2026-11-30T03:14:15.926Z"
CLIENT_TOKEN = "app-0123456789abcdef"


def bake(commit: str | None = COMMIT, arn: str | None = BUILD_ARN) -> dict[str, Any]:
    return {"commit": commit, "imageBuildVersionArn": arn, "recipeArn": None, "baseAmiId": BASE_AMI}


def build_dict(
    pipeline: str = "app",
    *,
    arn: str | None = BUILD_ARN,
    commit: str | None = COMMIT,
    dry_run: bool = False,
    bakes: list[dict[str, Any]] | None = None,
    commits_from: str = "request",
) -> dict[str, Any]:
    """start_image_build's output, as the state machine passes it on."""
    return {
        "pipeline": pipeline,
        "imageBuildVersionArn": arn,
        "commit": commit,
        "clientToken": CLIENT_TOKEN,
        "dryRun": dry_run,
        "bakes": bakes if bakes is not None else [bake(commit, arn)],
        "commitsFrom": commits_from,
    }


def check_input(
    *,
    build: dict[str, Any] | None = None,
    base_ami_id: str | None = None,
    dry_run: bool = False,
    cancel: bool = False,
    **request_change: Any,
) -> CheckImageBuildInput:
    return CheckImageBuildInput.model_validate(
        {
            "executionId": EXECUTION,
            "dryRun": dry_run,
            "build": build if build is not None else build_dict(),
            "request": request_dict(**request_change),
            "baseAmiId": base_ami_id,
            "cancel": cancel,
        }
    )


def image_response(
    status: str,
    amis: list[dict[str, Any]] | None = None,
    *,
    arn: str = BUILD_ARN,
    parent: str | None = None,
    created: str | None = None,
    **state: Any,
) -> dict[str, Any]:
    """GetImage's answer, in the shape of botocore's imagebuilder model."""
    image: dict[str, Any] = {
        "arn": arn,
        "name": arn.split("/")[1],
        "version": "1.2.0/1",
        "state": {"status": status, **state},
    }
    if amis is not None:
        image["outputResources"] = {"amis": amis}
    if parent is not None:
        image["imageRecipe"] = {"name": arn.split("/")[1], "parentImage": parent}
    if created is not None:
        image["dateCreated"] = created
    return {"requestId": "r-1", "image": image}


def ami_entry(image_id: str, region: str = REGION, account: str = ACCOUNT) -> dict[str, Any]:
    return {"region": region, "image": image_id, "name": "web-app-app 2026-11-30", "accountId": account}


def app_tags(commit: str = COMMIT, build: str = BUILD_ARN, parent: str = BASE_AMI) -> dict[str, str]:
    """Every tag an app AMI of this deploy carries besides the distribution's static ones."""
    return {
        tags.TRIGGER: "codecommit",
        tags.EXECUTION: EXECUTION,
        tags.IMAGE_BUILD: build,
        tags.BASE_IMAGE: parent,
        tags.BUILD_TIME: CREATED,
        tags.COMMIT: commit,
        tags.BRANCH: "main",
        tags.REPOSITORY: "web-app",
    }


class Aws:
    """A real Image Builder client behind a Stubber (moto has none) and moto EC2 for the AMI and its tags."""

    def __init__(self) -> None:
        self.imagebuilder = SESSION.client("imagebuilder")
        self.stub = Stubber(self.imagebuilder)
        self._names = itertools.count()

    @cached_property
    def ec2(self) -> Any:
        return SESSION.client("ec2")

    def register(self) -> str:
        return str(
            self.ec2.register_image(
                Name=f"web-app-app-{next(self._names)}",
                RootDeviceName="/dev/xvda",
                BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
            )["ImageId"]
        )

    def expect_get(self, response: dict[str, Any]) -> None:
        self.stub.add_response("get_image", response, {"imageBuildVersionArn": response["image"]["arn"]})

    def expect_cancel(self, arn: str) -> None:
        token = logic.cancel_token(CLIENT_TOKEN, arn)
        self.stub.add_response(
            "cancel_image_creation",
            {"requestId": "r-2", "clientToken": token, "imageBuildVersionArn": arn},
            {"imageBuildVersionArn": arn, "clientToken": token},
        )

    def run(
        self,
        request: CheckImageBuildInput,
        ec2: Any = None,
        *,
        regional: Mapping[str, Any] | None = None,
        repository: str | None = "web-app",
        snapshots: bool = False,
    ) -> dict[str, Any]:
        clients = dict(regional or {})
        tagger = ImageTags(ec2 or self.ec2, regional=lambda region: clients[region])
        snapshot_tagger = Images(ec2 or self.ec2, regional=lambda region: clients[region]) if snapshots else None
        builder = ImageBuilder(self.imagebuilder)
        with self.stub:
            output = logic.run(
                request,
                REGION,
                builds=builder,
                tagger=tagger,
                application="web-app",
                canceller=builder,
                repository=repository,
                snapshots=snapshot_tagger,
            )
            self.stub.assert_no_pending_responses()
        return output.model_dump(by_alias=True, mode="json")

    def snapshot_tags_of(self, image_id: str) -> dict[str, dict[str, str]]:
        """Snapshot id -> its tags, for each EBS snapshot of the image."""
        image = self.ec2.describe_images(ImageIds=[image_id])["Images"][0]
        ids = [m["Ebs"]["SnapshotId"] for m in image["BlockDeviceMappings"] if m.get("Ebs", {}).get("SnapshotId")]
        found = self.ec2.describe_snapshots(SnapshotIds=ids)["Snapshots"]
        return {s["SnapshotId"]: {t["Key"]: t["Value"] for t in s.get("Tags", [])} for s in found}

    def tags_of(self, image_id: str) -> dict[str, str]:
        image = self.ec2.describe_images(ImageIds=[image_id])["Images"][0]
        return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield Aws()


def no_ec2(region: str = REGION) -> Any:
    """An EC2 client behind a Stubber with no responses: any call fails the test."""
    ec2 = SESSION.client("ec2", region_name=region)
    Stubber(ec2).activate()
    return ec2


def answer(status: str, reason: str, **change: Any) -> dict[str, Any]:
    """The step's JSON answer for the default single bake."""
    return {
        "status": status,
        "amiId": None,
        "imageBuildVersionArn": BUILD_ARN,
        "reason": reason,
        "pipeline": "app",
        "baseUnchanged": False,
        "elapsedSeconds": 0,
        "pendingBuildArn": BUILD_ARN if status == "BUILDING" else None,
        "images": None,
        "cancelled": [],
        **change,
    }


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
    assert output == answer(status, f"because {imagebuilder_status.lower()}")


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
    aws.expect_get(response)
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


# --- several bakes (rebuild-base: one per commit) ---------------------------------------------------------


def two_bakes(commits_from: str = "targets") -> dict[str, Any]:
    return build_dict(bakes=[bake(COMMIT, BUILD_ARN), bake(OTHER_COMMIT, OTHER_BUILD_ARN)], commits_from=commits_from)


def test_several_bakes_are_available_when_all_are_and_each_ami_carries_its_own_commit(aws: Aws) -> None:
    # Given the two bakes of a rebuild-base, both finished
    first, second = aws.register(), aws.register()
    aws.expect_get(image_response("AVAILABLE", [ami_entry(first)], parent=BASE_AMI, created=CREATED))
    aws.expect_get(
        image_response("AVAILABLE", [ami_entry(second)], arn=OTHER_BUILD_ARN, parent=BASE_AMI, created=CREATED)
    )
    # When checked
    output = aws.run(check_input(build=two_bakes(), action="rebuild-base", trigger="codecommit"))
    # Then the bake is available, each commit's AMI is named for publish, and each is tagged with its commit
    assert output == answer(
        "AVAILABLE",
        f"2 images available in {REGION}",
        amiId=first,
        images=[{"commit": COMMIT, "amiId": first}, {"commit": OTHER_COMMIT, "amiId": second}],
    )
    assert aws.tags_of(first) == app_tags(COMMIT, BUILD_ARN)
    assert aws.tags_of(second) == app_tags(OTHER_COMMIT, OTHER_BUILD_ARN)


def test_while_a_bake_is_unfinished_the_state_machine_waits_on_the_first_unfinished_build(aws: Aws) -> None:
    # Given three bakes: the first finished, the second and third still running
    bakes = [bake(COMMIT, BUILD_ARN), bake(OTHER_COMMIT, OTHER_BUILD_ARN), bake("e" * 40, THIRD_BUILD_ARN)]
    aws.expect_get(image_response("AVAILABLE", [ami_entry("ami-0ccccccccccccccc3")]))
    aws.expect_get(image_response("TESTING", arn=OTHER_BUILD_ARN, reason="testing"))
    aws.expect_get(image_response("BUILDING", arn=THIRD_BUILD_ARN))
    # When checked (nothing may be tagged before every bake is available)
    output = aws.run(check_input(build=build_dict(bakes=bakes, commits_from="targets")), no_ec2())
    # Then it is still building, and the next wait is on the second build
    assert (output["status"], output["pendingBuildArn"], output["imageBuildVersionArn"]) == (
        "BUILDING",
        OTHER_BUILD_ARN,
        OTHER_BUILD_ARN,
    )
    assert output["reason"] == f"commit {OTHER_COMMIT}: testing"
    assert output["images"] is None


def test_one_failed_bake_fails_the_whole_bake_at_once_with_its_commit_in_the_reason(aws: Aws) -> None:
    # Given the first bake still running and the second failed
    aws.expect_get(image_response("BUILDING"))
    aws.expect_get(image_response("FAILED", arn=OTHER_BUILD_ARN, reason="app-install: Commit is not in the repo"))
    # When checked
    output = aws.run(check_input(build=two_bakes()), no_ec2())
    # Then the bake fails now (the state machine then cancels the first), naming which commit failed
    assert (output["status"], output["imageBuildVersionArn"]) == ("FAILED", OTHER_BUILD_ARN)
    assert output["reason"] == f"commit {OTHER_COMMIT}: app-install: Commit is not in the repo"


def test_a_failed_bake_still_tags_the_ami_a_finished_sibling_made(aws: Aws) -> None:
    # Given the first bake of a rebuild already AVAILABLE and the second failed
    first = aws.register()
    aws.expect_get(image_response("AVAILABLE", [ami_entry(first)], parent=BASE_AMI, created=CREATED))
    aws.expect_get(image_response("FAILED", arn=OTHER_BUILD_ARN, reason="app-test: tests failed"))
    # When checked
    output = aws.run(check_input(build=two_bakes(), action="rebuild-base", trigger="codecommit"))
    # Then the bake fails, and the AMI that exists says which commit it holds and its base (never an orphan)
    assert (output["status"], output["imageBuildVersionArn"]) == ("FAILED", OTHER_BUILD_ARN)
    assert aws.tags_of(first) == app_tags(COMMIT, BUILD_ARN)


def test_images_are_reported_only_when_the_commits_came_from_the_targets(aws: Aws) -> None:
    # Given the same finished bake, once from a deploy's commit and once from the commit a target runs
    ours = aws.register()
    request_bake = build_dict(commits_from="request")
    targets_bake = build_dict(commits_from="targets")
    # When each is checked
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours)]))
    from_request = aws.run(check_input(build=request_bake))
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours)]))
    from_targets = aws.run(check_input(build=targets_bake))
    # Then only the rebuild's answer lists the images (publish then gives each target its own commit's)
    assert from_request["images"] is None
    assert from_targets["images"] == [{"commit": COMMIT, "amiId": ours}]


def test_a_payload_without_bakes_is_checked_as_a_bake_of_one(aws: Aws) -> None:
    # Given start_image_build's output as it was before bakes existed (an execution started before the change)
    build = {k: v for k, v in build_dict().items() if k not in ("bakes", "commitsFrom")}
    aws.expect_get(image_response("BUILDING"))
    # When checked / Then its one build is waited on
    assert aws.run(check_input(build=build), no_ec2())["pendingBuildArn"] == BUILD_ARN


# --- available: region pick and tags -------------------------------------------------------------------


def test_every_own_account_copy_is_tagged_the_other_regions_through_their_own_client(aws: Aws) -> None:
    # Given a build distributed here, to build.extraRegions (us-east-1), and to another account here
    ours = aws.register()
    copy = "ami-0aaaaaaaaaaaaaaa1"
    aws.expect_get(
        image_response(
            "AVAILABLE",
            [
                ami_entry(copy, region=OTHER_REGION),
                ami_entry("ami-0bbbbbbbbbbbbbbb2", account=OTHER_ACCOUNT),
                ami_entry(ours),
            ],
            parent=BASE_AMI,
            created=CREATED,
        )
    )
    east = SESSION.client("ec2", region_name=OTHER_REGION)
    with Stubber(east) as east_stub:
        east_stub.add_response(
            "create_tags",
            {},
            {"Resources": [copy], "Tags": [{"Key": k, "Value": v} for k, v in app_tags().items()]},
        )
        # When checked
        output = aws.run(check_input(), regional={OTHER_REGION: east})
        east_stub.assert_no_pending_responses()
    # Then this region's AMI is the answer, it and the us-east-1 copy carry every tag; the other account's is not ours
    assert output == answer("AVAILABLE", f"{ours} is available in {REGION}", amiId=ours)
    assert aws.tags_of(ours) == app_tags()


def snapshot_tags(pipeline: str = "app", **change: str) -> dict[str, str]:
    """What a new AMI's snapshots carry: the AMI's tags and the two Image Builder puts on the AMI only."""
    return {tags.APPLICATION: "web-app", tags.PIPELINE: pipeline, **app_tags(**change)}


def test_the_new_amis_snapshots_carry_its_tags_and_the_application_and_pipeline_tags(aws: Aws) -> None:
    # Given a finished build whose AMI here has an EBS snapshot (Image Builder tags the AMI only)
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours)], parent=BASE_AMI, created=CREATED))
    # When checked
    output = aws.run(check_input(), snapshots=True)
    # Then its snapshot carries the application tag (what the prune's DeleteSnapshot and the Recycle Bin rule
    # select on), the pipeline tag and every tag of the AMI
    assert output["status"] == "AVAILABLE"
    (tagged,) = aws.snapshot_tags_of(ours).values()
    assert tagged == snapshot_tags()


def test_a_copys_snapshots_are_tagged_through_that_regions_client(aws: Aws) -> None:
    # Given a build with a copy in build.extraRegions (us-east-1) whose snapshot EC2 lists there
    ours = aws.register()
    copy, snapshot = "ami-0aaaaaaaaaaaaaaa1", "snap-0aaaaaaaaaaaaaaa1"
    aws.expect_get(
        image_response(
            "AVAILABLE", [ami_entry(copy, region=OTHER_REGION), ami_entry(ours)], parent=BASE_AMI, created=CREATED
        )
    )
    east = SESSION.client("ec2", region_name=OTHER_REGION)
    wanted = [{"Key": k, "Value": v} for k, v in snapshot_tags().items()]
    with Stubber(east) as east_stub:
        east_stub.add_response(
            "create_tags", {}, {"Resources": [copy], "Tags": [{"Key": k, "Value": v} for k, v in app_tags().items()]}
        )
        east_stub.add_response(
            "describe_images",
            {
                "Images": [
                    {
                        "ImageId": copy,
                        "BlockDeviceMappings": [{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snapshot}}],
                    }
                ]
            },
            {"Owners": ["self"], "ImageIds": [copy]},
        )
        east_stub.add_response("create_tags", {}, {"Resources": [snapshot], "Tags": wanted})
        # When checked
        output = aws.run(check_input(), regional={OTHER_REGION: east}, snapshots=True)
        # Then the copy's snapshot was tagged in its own region, with the same tags as this region's
        east_stub.assert_no_pending_responses()
    assert output["status"] == "AVAILABLE"
    assert list(aws.snapshot_tags_of(ours).values()) == [snapshot_tags()]


def test_an_ami_describe_images_does_not_list_yet_is_asked_about_again(aws: Aws) -> None:
    # Given a copy CreateTags accepts but DescribeImages does not list yet (just distributed)
    ours = aws.register()
    copy = "ami-0aaaaaaaaaaaaaaa1"
    aws.expect_get(
        image_response(
            "AVAILABLE", [ami_entry(copy, region=OTHER_REGION), ami_entry(ours)], parent=BASE_AMI, created=CREATED
        )
    )
    east = SESSION.client("ec2", region_name=OTHER_REGION)
    with Stubber(east) as east_stub:
        east_stub.add_response("create_tags", {}, None)
        east_stub.add_response("describe_images", {"Images": []}, {"Owners": ["self"], "ImageIds": [copy]})
        # When checked
        output = aws.run(check_input(), regional={OTHER_REGION: east}, snapshots=True)
    # Then the step answers BUILDING, so the next poll tags the snapshots once EC2 lists the AMI
    assert output["status"] == "BUILDING"
    assert copy in output["reason"]


def test_snapshot_tagging_needs_the_application() -> None:
    # Given a snapshot tagger but no application to tag with
    request = check_input()
    imagebuilder = SESSION.client("imagebuilder")
    Stubber(imagebuilder).activate()  # no responses: any call fails the test
    # When run, Then it refuses before any call, naming the key
    with pytest.raises(InvalidInput, match="application"):
        logic.run(
            request, REGION, builds=ImageBuilder(imagebuilder), tagger=ImageTags(no_ec2()), snapshots=Images(no_ec2())
        )


def test_base_image_tag_is_the_parent_the_build_started_from_not_the_one_requested(aws: Aws) -> None:
    # Given the request named one base AMI, and Image Builder reports the recipe's parent as another
    ours = aws.register()
    parent = "ami-0dddddddddddddddd4"
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours)], parent=parent, created=CREATED))
    # When checked
    aws.run(check_input(base_ami_id=BASE_AMI))
    # Then the AMI names the base it was really built on
    assert aws.tags_of(ours)[tags.BASE_IMAGE] == parent


def test_build_time_tag_is_image_builders_date_created(aws: Aws) -> None:
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours)], created="2026-11-29T23:59:59.000Z"))

    aws.run(check_input())

    assert aws.tags_of(ours)[tags.BUILD_TIME] == "2026-11-29T23:59:59.000Z"


def test_available_build_without_an_ami_in_this_region_fails_with_the_reason(aws: Aws) -> None:
    # Given a build that distributed only to us-east-1 and to another account here
    aws.expect_get(
        image_response(
            "AVAILABLE",
            amis=[
                ami_entry("ami-0aaaaaaaaaaaaaaa1", region=OTHER_REGION),
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
        f"(AMIs: ami-0aaaaaaaaaaaaaaa1 in {OTHER_REGION}, ami-0bbbbbbbbbbbbbbb2 in {REGION})"
    )


def test_available_build_with_no_output_resources_fails(aws: Aws) -> None:
    aws.expect_get(image_response("AVAILABLE"))
    output = aws.run(check_input(), no_ec2())
    assert (output["status"], output["reason"]) == (
        "FAILED",
        f"the image build is AVAILABLE but distributed no AMI to {REGION} (AMIs: none)",
    )


def test_tags_skip_null_values_and_take_the_commit_of_the_bake_in_a_rebuild(aws: Aws) -> None:
    # Given a rebuild-base app bake: the request has no commit, the bake names it; no parent or date reported
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", amis=[ami_entry(ours)]))
    request = check_input(action="rebuild-base", trigger="schedule")
    # When checked, for a function deployed without a source (no repository)
    aws.run(request, repository=None)
    # Then the bake's commit is tagged, and no empty tag is written
    assert aws.tags_of(ours) == {
        tags.COMMIT: COMMIT,
        tags.BRANCH: "main",
        tags.TRIGGER: "schedule",
        tags.EXECUTION: EXECUTION,
        tags.IMAGE_BUILD: BUILD_ARN,
    }


def test_base_image_is_tagged_without_app_commit_branch_or_repository(aws: Aws) -> None:
    # Given the base bake of rebuild-base, on an AWS managed parent
    ours = aws.register()
    parent = f"arn:aws:imagebuilder:{REGION}:aws:image/amazon-linux-2023-x86/2026.11.28"
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours)], arn=BASE_BUILD_ARN, parent=parent, created=CREATED))
    base = build_dict("base", arn=BASE_BUILD_ARN, commit=None)
    # When checked
    output = aws.run(check_input(build=base, action="rebuild-base", trigger="schedule"))
    # Then only what is true of a base image is tagged
    assert output["pipeline"] == "base"
    assert aws.tags_of(ours) == {
        tags.TRIGGER: "schedule",
        tags.EXECUTION: EXECUTION,
        tags.IMAGE_BUILD: BASE_BUILD_ARN,
        tags.BASE_IMAGE: parent,
        tags.BUILD_TIME: CREATED,
    }


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


def test_copy_in_another_region_not_visible_yet_is_reported_as_still_building(aws: Aws) -> None:
    # Given this region's AMI is tagged, but us-east-1 does not list its copy yet
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours), ami_entry("ami-0aaaaaaaaaaaaaaa1", OTHER_REGION)]))
    east = SESSION.client("ec2", region_name=OTHER_REGION)
    with Stubber(east) as east_stub:
        east_stub.add_client_error("create_tags", service_error_code="InvalidAMIID.NotFound")
        # When checked
        output = aws.run(check_input(), regional={OTHER_REGION: east})
    # Then the next poll tags it (tagging again is harmless)
    assert (output["status"], output["pendingBuildArn"]) == ("BUILDING", BUILD_ARN)


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


def test_tags_in_the_home_region_never_use_a_regional_client() -> None:
    # Given the home client behind a Stubber, and no regional client at all
    ec2 = SESSION.client("ec2")
    with Stubber(ec2) as stub:
        stub.add_response(
            "create_tags", {}, {"Resources": ["ami-0ccccccccccccccc3"], "Tags": [{"Key": "k", "Value": "v"}]}
        )
        # When this region's AMI is tagged, named or not
        ImageTags(ec2, regional=lambda region: pytest.fail(f"asked for a {region} client")).tag_image(
            "ami-0ccccccccccccccc3", {"k": "v"}, region=REGION
        )
        stub.assert_no_pending_responses()


# --- cancel -------------------------------------------------------------------------------------------


def test_cancel_cancels_only_the_builds_that_have_not_finished(aws: Aws) -> None:
    # Given three bakes: one available, one building, one pending (the bake outlived build.timeoutMinutes)
    bakes = [bake(COMMIT, BUILD_ARN), bake(OTHER_COMMIT, OTHER_BUILD_ARN), bake("e" * 40, THIRD_BUILD_ARN)]
    aws.expect_get(image_response("AVAILABLE", [ami_entry("ami-0ccccccccccccccc3")]))
    aws.expect_get(image_response("BUILDING", arn=OTHER_BUILD_ARN))
    aws.expect_cancel(OTHER_BUILD_ARN)
    aws.expect_get(image_response("PENDING", arn=THIRD_BUILD_ARN))
    aws.expect_cancel(THIRD_BUILD_ARN)
    # When the state machine's CancelUnfinishedBuilds asks (nothing is tagged)
    output = aws.run(check_input(build=build_dict(bakes=bakes, commits_from="targets"), cancel=True), no_ec2())
    # Then the two unfinished builds are cancelled, each with its own client token, and the finished one is left
    assert output == answer(
        "CANCELLED", "cancelled 2 build(s) still running", cancelled=[OTHER_BUILD_ARN, THIRD_BUILD_ARN]
    )


def test_cancel_with_nothing_still_running_cancels_nothing(aws: Aws) -> None:
    # Given the only build already failed (ImageBuildFailed goes through CancelUnfinishedBuilds too)
    aws.expect_get(image_response("FAILED"))
    # When asked to cancel (the Stubber has no cancel response)
    output = aws.run(check_input(cancel=True), no_ec2())
    # Then nothing is cancelled, and it says so
    assert (output["status"], output["cancelled"], output["reason"]) == ("CANCELLED", [], "no build was still running")


def test_a_build_that_ended_between_the_read_and_the_cancel_is_not_counted(aws: Aws) -> None:
    # Given a build reported BUILDING that ends before the cancel arrives
    aws.expect_get(image_response("DISTRIBUTING"))
    aws.stub.add_client_error("cancel_image_creation", service_error_code="ResourceInUseException")
    # When cancelled
    output = aws.run(check_input(cancel=True), no_ec2())
    # Then the step succeeds and cancelled nothing
    assert (output["status"], output["cancelled"]) == ("CANCELLED", [])


def test_cancel_tokens_repeat_for_a_retry_and_differ_between_builds() -> None:
    # Given the builds of one bake, and the longest client token start_image_build gives a bake
    token = "app-" + "f" * 60
    arns = [BUILD_ARN, OTHER_BUILD_ARN, THIRD_BUILD_ARN]
    # When their cancel tokens are derived
    tokens = [logic.cancel_token(token, arn) for arn in arns]
    # Then a retried cancel sends the same token, no two builds share one (a mismatch, not a retry), within the limit
    assert tokens == [logic.cancel_token(token, arn) for arn in arns]
    assert len(set(tokens)) == len(arns)
    assert all(1 <= len(t) <= MAX_CLIENT_TOKEN_LENGTH for t in tokens)


@pytest.mark.parametrize("code", ["ResourceInUseException", "InvalidRequestException"])
def test_adapter_reads_an_already_ended_build_as_nothing_to_cancel(code: str) -> None:
    imagebuilder = SESSION.client("imagebuilder")
    with Stubber(imagebuilder) as stub:
        stub.add_client_error("cancel_image_creation", service_error_code=code)

        assert ImageBuilder(imagebuilder).cancel(BUILD_ARN, "cancel-token") is False


def test_adapter_passes_on_any_other_cancel_error() -> None:
    imagebuilder = SESSION.client("imagebuilder")
    with Stubber(imagebuilder) as stub:
        stub.add_client_error("cancel_image_creation", service_error_code="ForbiddenException")

        with pytest.raises(ClientError, match="ForbiddenException"):
            ImageBuilder(imagebuilder).cancel(BUILD_ARN, "cancel-token")


def test_cancel_without_a_canceller_is_invalid(aws: Aws) -> None:
    with pytest.raises(InvalidInput, match="without a canceller"):
        logic.run(check_input(cancel=True), REGION, builds=ImageBuilder(aws.imagebuilder), tagger=ImageTags(no_ec2()))


# --- dry run and bad input -----------------------------------------------------------------------


def test_dry_run_build_has_nothing_to_check(aws: Aws) -> None:
    # Given start_image_build's dry-run answer (no build)
    request = check_input(build=build_dict(arn=None, dry_run=True), dry_run=True)
    # When checked (no Image Builder or EC2 call may happen)
    output = aws.run(request, no_ec2())
    # Then it reports nothing built, so the dry run can go on
    assert output == answer(
        "AVAILABLE", "dry run: no image was built, so there is no AMI", imageBuildVersionArn=None, elapsedSeconds=0
    )


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


def test_adapter_reads_the_parent_image_and_the_build_time() -> None:
    imagebuilder = SESSION.client("imagebuilder")
    with Stubber(imagebuilder) as stub:
        stub.add_response("get_image", image_response("AVAILABLE", [], parent=BASE_AMI, created=CREATED))

        image = ImageBuilder(imagebuilder).get_image(BUILD_ARN)

    assert (image.parent_image, image.date_created) == (BASE_AMI, CREATED)


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
    monkeypatch.setattr(module, "images", lambda: Images(aws.ec2))
    return module


def test_handler_reports_and_tags_an_available_build(handler: Any, aws: Aws, lambda_context: Any) -> None:
    # Given the state machine's poll payload and a finished build
    ours = aws.register()
    aws.expect_get(image_response("AVAILABLE", [ami_entry(ours)], parent=BASE_AMI, created=CREATED))
    event = {"executionId": EXECUTION, "build": build_dict(), "request": request_dict(), "baseAmiId": None}
    # When the handler runs
    with aws.stub:
        output = handler.lambda_handler(event, lambda_context)
    # Then the JSON answer is the documented shape, and the AMI and its snapshot are tagged with the configured
    # repository (the snapshot also with the application, from DEPLOY_CONFIG)
    assert output == answer("AVAILABLE", f"{ours} is available in {REGION}", amiId=ours)
    assert aws.tags_of(ours) == app_tags()
    assert list(aws.snapshot_tags_of(ours).values()) == [snapshot_tags()]


def test_handler_cancels_what_still_runs(handler: Any, aws: Aws, lambda_context: Any) -> None:
    # Given CancelUnfinishedBuilds' payload and a build still running
    aws.expect_get(image_response("BUILDING"))
    aws.expect_cancel(BUILD_ARN)
    event = {"executionId": EXECUTION, "build": build_dict(), "request": request_dict(), "cancel": True}
    # When the handler runs
    with aws.stub:
        output = handler.lambda_handler(event, lambda_context)
    # Then the build is cancelled
    assert (output["status"], output["cancelled"]) == ("CANCELLED", [BUILD_ARN])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"build": {**build_dict(), "clientToken": None}}, r"build\.clientToken"),
        ({"build": {**build_dict(), "pipeline": "other"}}, r"build\.pipeline"),
        ({"build": {**build_dict(), "commitsFrom": "somewhere"}}, r"build\.commitsFrom"),
        ({"build": None}, "build"),
        ({"baseAmiId": "base"}, "baseAmiId"),
        ({"request": None}, "request"),
        ({"cancel": "yes"}, "cancel"),
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


def base_record(image_id: str, created: str, build: str | None) -> logic.ImageRecord:
    record_tags = {tags.APPLICATION: "web-app", tags.PIPELINE: "base"}
    if build:
        record_tags[tags.IMAGE_BUILD] = build
    return logic.ImageRecord(image_id=image_id, state="available", creation_date=created, tags=record_tags)


def previous_bases() -> FakeBakedImages:
    return FakeBakedImages(
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


@pytest.mark.parametrize(
    ("running", "unchanged"),
    [
        (["ami-0000000000000000b"], True),  # every target runs an image built on the previous base
        (["ami-0000000000000000a"], False),  # a target still runs an image on an older base (a failed rollout)
        (["ami-0000000000000000a", "ami-0000000000000000b"], False),
    ],
    ids=["all-on-previous-base", "one-older-base", "mixed"],
)
def test_same_packages_count_as_unchanged_only_if_every_target_runs_on_the_previous_base(
    running: list[str], unchanged: bool
) -> None:
    # Given the new base installs exactly the previous base's packages, and the bases the targets' images are on
    packages = FakePackages({NEW_BUILD: PACKAGES, PREVIOUS_BUILD: PACKAGES})
    # When compared / Then "nothing to roll out" only when no target runs an image on another base
    verdict = logic.base_unchanged("ami-0000000000000000c", "web-app", packages, previous_bases(), NEW_BUILD, running)
    assert verdict is unchanged


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
        "ami-0000000000000000c", "web-app", FakePackages(by_build), FakeBakedImages(records), NEW_BUILD
    )
