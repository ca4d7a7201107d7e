"""validate_request: every trigger's input becomes one checked request, or InvalidInput before AWS changes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from moto import mock_aws
from moto.ec2.models import ec2_backends
from validate_request.logic import validate_request
from validate_request.models import ValidateRequestInput

from shared import tags
from shared.aws.codecommit import CodeCommit
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import DeployConfig
from shared.errors import InvalidInput, Throttled
from tests.conftest import ACCOUNT, REGION, SAMPLE_DEPLOY_CONFIG

CONFIG = DeployConfig.model_validate(SAMPLE_DEPLOY_CONFIG)
COMMIT = "3f2c1e9a4b5c6d7e8f9001122334455667788990"
NOW = datetime(2025, 6, 1, tzinfo=UTC)
CREDS = {"region_name": REGION, "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
GITHUB_CONFIG = CONFIG.model_copy(
    update={"source": CONFIG.source.model_copy(update={"type": "github", "repository": "acme/web-app"})}  # type: ignore[union-attr]
)
Adapters = tuple[Images, FleetReferences, CodeCommit]


def event(raw: Any) -> ValidateRequestInput:
    return ValidateRequestInput(
        execution_id="arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1", execution_name="run-1", input=raw
    )


class Repository:
    """The configured CodeCommit repository (SAMPLE_DEPLOY_CONFIG's "web-app"), in memory: GetCommit finds the
    commits pushed to it. Errors are tested with botocore's Stubber, which knows GetCommit's modeled errors."""

    def __init__(self) -> None:
        self.commits = {COMMIT}
        self.calls: list[tuple[str, str]] = []

    def get_commit(self, *, repositoryName: str, commitId: str) -> dict[str, Any]:  # noqa: N803 (botocore's names)
        self.calls.append((repositoryName, commitId))
        if repositoryName != "web-app" or commitId not in self.commits:
            raise ClientError({"Error": {"Code": "CommitIdDoesNotExistException", "Message": "no"}}, "GetCommit")
        return {"commit": {"commitId": commitId, "treeId": "0" * 40, "parents": []}}


@pytest.fixture
def repository() -> Repository:
    return Repository()


@pytest.fixture
def no_aws(repository: Repository) -> Iterator[Adapters]:
    """Adapters whose EC2 client has nothing stubbed (any EC2 call fails the test); CodeCommit is `repository`."""
    ec2 = boto3.client("ec2", **CREDS)
    with Stubber(ec2) as stub:
        yield Images(ec2), FleetReferences(ec2, object()), CodeCommit(repository)
        stub.assert_no_pending_responses()


@pytest.fixture
def codecommit() -> Iterator[tuple[Any, Stubber]]:
    """A real botocore CodeCommit client under a Stubber: each GetCommit answer is stubbed by the test."""
    client = boto3.client("codecommit", **CREDS)
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def validate(raw: Any, adapters: Adapters, config: DeployConfig = CONFIG) -> dict[str, Any]:
    images, fleet, codecommit = adapters
    return validate_request(event(raw), config, images=images, fleet=fleet, codecommit=codecommit).model_dump(
        by_alias=True, mode="json"
    )


def rejected(raw: Any, adapters: Adapters, config: DeployConfig = CONFIG) -> str:
    with pytest.raises(InvalidInput) as raised:
        validate(raw, adapters, config)
    return str(raised.value)


# --- the inputs each trigger produces ---


def test_manual_deploy_is_normalised_with_every_configured_stage(no_aws: Any) -> None:
    # Given a manual deploy as the README documents it
    raw = {"action": "deploy", "commit": COMMIT, "branch": "main", "repository": "web-app", "dryRun": False}

    # When validating
    result = validate(raw, no_aws)

    # Then the request is complete, every configured stage is selected in order, and the app image is baked
    assert result == {
        "request": {
            "action": "deploy",
            "commit": COMMIT,
            "branch": "main",
            "repository": "web-app",
            "amiId": None,
            "to": None,
            "stages": ["test", "prod"],
            "dryRun": False,
            "trigger": "manual",
            "pusher": None,
            "deliveryId": None,
            "whenBusy": "wait",
        },
        "stages": [
            {
                "name": "test",
                "approval": False,
                "waveSize": 1,
                "strategy": "rolling",
                "targets": [{"autoScalingGroupName": "web-app-test", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"}],
            },
            {
                "name": "prod",
                "approval": True,
                "waveSize": 1,
                "strategy": "rolling",
                "targets": [{"autoScalingGroupName": "web-app-prod", "launchTemplateId": "lt-0bbbbbbbbbbbbbbb2"}],
            },
        ],
        "needsBake": True,
        "pipeline": "app",
    }


def test_codecommit_rule_input_is_accepted(no_aws: Any) -> None:
    # Given what the CodeCommit rule's input transformer produces
    raw = {"action": "deploy", "commit": COMMIT, "branch": "main", "repository": "web-app", "trigger": "codecommit"}

    # When validating
    request = validate(raw, no_aws)["request"]

    # Then it is a deploy started by codecommit
    assert (request["action"], request["trigger"], request["commit"]) == ("deploy", "codecommit", COMMIT)


def test_github_webhook_input_is_accepted_with_pusher_and_delivery_id(no_aws: Any, repository: Repository) -> None:
    # Given a configuration with a GitHub source and what the webhook function sends
    raw = {
        "action": "deploy",
        "commit": COMMIT,
        "branch": "refs/heads/main",
        "repository": "Acme/Web-App",
        "trigger": "github",
        "pusher": "octocat",
        "deliveryId": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    }

    # When validating
    request = validate(raw, no_aws, GITHUB_CONFIG)["request"]

    # Then the full commit is kept, the ref names the branch, the GitHub name matches case-insensitively
    assert request["commit"] == COMMIT
    assert request["branch"] == "main"
    assert (request["pusher"], request["deliveryId"]) == ("octocat", "72d3162e-cc78-11e3-81ab-4c9367dc0958")
    # and CodeCommit is not asked: a GitHub source is never looked up (no token in the function)
    assert repository.calls == []


def test_daily_schedule_rebuilds_base_from_the_configured_source(no_aws: Any) -> None:
    # Given the schedule's input
    raw = {"action": "rebuild-base", "trigger": "schedule"}

    # When validating
    result = validate(raw, no_aws)

    # Then the base pipeline bakes, from the configured branch and repository
    assert (result["needsBake"], result["pipeline"]) == (True, "base")
    assert (result["request"]["branch"], result["request"]["repository"]) == ("main", "web-app")


def test_named_stages_are_returned_in_configured_order(no_aws: Any) -> None:
    # Given stages named in the opposite order
    raw = {"action": "deploy", "commit": COMMIT, "stages": ["prod", "test"], "dryRun": True}

    # When validating
    result = validate(raw, no_aws)

    # Then they come back in configured order, with dryRun carried through
    assert [s["name"] for s in result["stages"]] == ["test", "prod"]
    assert result["request"]["stages"] == ["test", "prod"]
    assert result["request"]["dryRun"] is True


def test_any_branch_is_accepted_when_no_source_is_configured(no_aws: Any) -> None:
    # Given no configured source
    config = CONFIG.model_copy(update={"source": None})

    # When validating a deploy from some branch
    request = validate({"action": "deploy", "commit": COMMIT, "branch": "feature/x"}, no_aws, config)["request"]

    # Then it is accepted as given
    assert (request["branch"], request["repository"]) == ("feature/x", None)


# --- rejections, all before any AWS call (the `no_aws` adapters fail on any) ---


def test_unknown_stage_is_rejected_naming_the_configured_ones(no_aws: Any) -> None:
    # Given a stage name that is not configured
    raw = {"action": "deploy", "commit": COMMIT, "stages": ["test", "production"]}

    # When / Then
    assert rejected(raw, no_aws) == 'stages[1]: "production" is not configured (configured: test, prod)'


def test_duplicate_and_empty_stage_lists_are_rejected(no_aws: Any) -> None:
    # Given a stage listed twice, and an empty list
    duplicate = {"action": "deploy", "commit": COMMIT, "stages": ["test", "prod", "test"]}
    empty = {"action": "deploy", "commit": COMMIT, "stages": []}

    # When / Then
    assert rejected(duplicate, no_aws) == 'stages[2]: "test" is listed more than once'
    assert rejected(empty, no_aws).startswith("stages: must name at least one stage")


def test_unknown_fields_are_rejected(no_aws: Any) -> None:
    # Given a misspelt field and a snake_case one
    raw = {"action": "deploy", "commit": COMMIT, "comit": COMMIT, "dry_run": True}

    # When / Then both are named
    message = rejected(raw, no_aws)
    assert "comit: unknown field" in message
    assert "dry_run: unknown field" in message


def test_wrong_types_are_all_reported_together(no_aws: Any) -> None:
    # Given a string for a boolean, a string for a list and a number for a commit
    raw = {"action": "deploy", "commit": 1234567, "dryRun": "true", "stages": "test"}

    # When / Then each field is named
    message = rejected(raw, no_aws)
    assert "commit: Input should be a valid string" in message
    assert "dryRun: Input should be a valid boolean" in message
    assert "stages: Input should be a valid list" in message


def test_malformed_values_are_rejected_with_the_expected_format(no_aws: Any) -> None:
    # Given a commit that is not hex, an unknown action and an unknown trigger
    message = rejected({"action": "ship", "commit": "main-branch", "trigger": "cron"}, no_aws)

    # Then each is named with what it should be
    assert "action: Input should be 'deploy', 'rebuild-base', 'deploy-image' or 'rollback'" in message
    assert 'commit: "main-branch" is not a full commit SHA (40 lower-case hex characters)' in message
    assert "trigger: Input should be 'manual', 'codecommit', 'github' or 'schedule'" in message


@pytest.mark.parametrize("raw", [None, [], "deploy", 3])
def test_input_that_is_not_an_object_is_rejected(raw: Any, no_aws: Any) -> None:
    # Given / When / Then
    assert rejected(raw, no_aws).startswith("input: must be a JSON object")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"action": "deploy"}, 'commit: required for action "deploy"'),
        (
            {"action": "deploy", "commit": COMMIT, "amiId": "ami-0123456789abcdef0"},
            'amiId: not allowed for action "deploy"',
        ),
        ({"action": "deploy-image"}, 'amiId: required for action "deploy-image"'),
        (
            {"action": "deploy-image", "amiId": "ami-0123456789abcdef0", "commit": COMMIT},
            'commit: not allowed for action "deploy-image"',
        ),
        ({"action": "rollback"}, 'to: required for action "rollback"'),
        ({"action": "rollback", "to": "previous", "branch": "main"}, 'branch: not allowed for action "rollback"'),
        ({"action": "deploy", "commit": COMMIT, "to": "previous"}, 'to: not allowed for action "deploy"'),
        ({"action": "deploy", "commit": COMMIT, "trigger": "schedule"}, 'trigger: a "schedule" trigger starts only'),
        ({"action": "deploy", "commit": COMMIT, "trigger": "github"}, "does not match the configured source type"),
        ({"action": "deploy", "commit": COMMIT, "deliveryId": "d-1"}, 'deliveryId: only a "github" trigger'),
        ({"action": "deploy", "commit": COMMIT, "branch": "develop"}, 'branch: "develop" is not the configured branch'),
        (
            {"action": "deploy", "commit": COMMIT, "repository": "Web-App"},
            'repository: "Web-App" is not the configured',
        ),
        ({"action": "rollback", "to": "latest"}, 'to: must be "previous" or an AMI id'),
    ],
)
def test_impossible_combinations_are_rejected(raw: dict[str, Any], expected: str, no_aws: Any) -> None:
    # Given / When / Then
    assert expected in rejected(raw, no_aws)


def test_rebuild_base_rejects_commit_ami_and_target_together(no_aws: Any) -> None:
    # Given a rebuild-base with all three fields it does not take
    raw = {"action": "rebuild-base", "commit": COMMIT, "amiId": "ami-0123456789abcdef0", "to": "previous"}

    # When / Then all three are reported in one message
    message = rejected(raw, no_aws)
    for field in ("commit", "amiId", "to"):
        assert f'{field}: not allowed for action "rebuild-base"' in message


# --- deploy-image and rollback: read AWS (moto), change nothing ---


@dataclass
class Account:
    ec2: Any
    images: Images
    fleet: FleetReferences
    template_id: str
    source_instance: str

    def bake(self, pipeline: str, days_ago: float, application: str = "web-app") -> str:
        ami = self.ec2.create_image(
            InstanceId=self.source_instance,
            Name=f"{application}-{pipeline}-{days_ago}",
            TagSpecifications=[
                {
                    "ResourceType": "image",
                    "Tags": [
                        {"Key": tags.APPLICATION, "Value": application},
                        {"Key": tags.PIPELINE, "Value": pipeline},
                    ],
                }
            ],
        )["ImageId"]
        ec2_backends[ACCOUNT][REGION].amis[ami].creation_date = NOW - timedelta(days=days_ago)
        return str(ami)

    def deploy(self, ami: str) -> None:
        version = self.ec2.create_launch_template_version(
            LaunchTemplateId=self.template_id, LaunchTemplateData={"ImageId": ami}
        )["LaunchTemplateVersion"]["VersionNumber"]
        self.ec2.modify_launch_template(LaunchTemplateId=self.template_id, DefaultVersion=str(version))

    @property
    def config(self) -> DeployConfig:
        stages = [
            {
                "name": "test",
                "targets": [{"autoScalingGroupName": "web-app-test", "launchTemplateId": self.template_id}],
            },
            {
                "name": "prod",
                "targets": [{"autoScalingGroupName": "web-app-prod", "launchTemplateId": self.template_id}],
            },
        ]
        return DeployConfig.model_validate({**SAMPLE_DEPLOY_CONFIG, "stages": stages})

    @property
    def adapters(self) -> Adapters:
        return self.images, self.fleet, CodeCommit(Repository())


@pytest.fixture(scope="module")
def ec2_client() -> Any:
    return boto3.client("ec2", **CREDS)


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch, ec2_client: Any) -> Iterator[Account]:
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")  # seconds per test, and not needed
    with mock_aws():
        source = ec2_client.run_instances(ImageId="ami-0000000000000000f", MinCount=1, MaxCount=1)["Instances"][0]
        template = ec2_client.create_launch_template(LaunchTemplateName="web-app", LaunchTemplateData={})
        yield Account(
            ec2=ec2_client,
            images=Images(ec2_client),
            fleet=FleetReferences(ec2_client, object()),
            template_id=template["LaunchTemplate"]["LaunchTemplateId"],
            source_instance=source["InstanceId"],
        )


def test_deploy_image_accepts_an_available_app_image_of_this_application(account: Account) -> None:
    # Given an app image baked by this application
    ami = account.bake("app", 1)

    # When validating a deploy-image of it
    result = validate({"action": "deploy-image", "amiId": ami}, account.adapters, account.config)

    # Then it is accepted, with nothing to bake
    assert (result["request"]["amiId"], result["needsBake"], result["pipeline"]) == (ami, False, None)


def test_deploy_image_rejects_images_that_are_not_ours(account: Account) -> None:
    # Given a base image, another application's image, and an id that does not exist
    base = account.bake("base", 1)
    foreign = account.bake("app", 1, application="billing")
    config = account.config

    # When / Then each is rejected with the reason
    assert 'not tagged immutable-ami:pipeline="app"' in rejected(
        {"action": "deploy-image", "amiId": base}, account.adapters, config
    )
    assert 'not tagged immutable-ami:application="web-app"' in rejected(
        {"action": "deploy-image", "amiId": foreign}, account.adapters, config
    )
    assert "is not an image this account owns" in rejected(
        {"action": "deploy-image", "amiId": "ami-0123456789abcdef0"}, account.adapters, config
    )


def test_deploy_image_rejects_an_image_that_is_not_available(account: Account) -> None:
    # Given an app image still pending
    ami = account.bake("app", 1)
    ec2_backends[ACCOUNT][REGION].amis[ami].state = "pending"

    # When / Then
    message = rejected({"action": "deploy-image", "amiId": ami}, account.adapters, account.config)
    assert f'amiId: {ami} is in state "pending", not "available"' in message


def test_rollback_to_a_kept_image_resolves_to_it(account: Account) -> None:
    # Given four app images (keepImages 3)
    amis = [account.bake("app", days) for days in (4, 3, 2, 1)]

    # When rolling back to the second-oldest, which is kept
    result = validate({"action": "rollback", "to": amis[1]}, account.adapters, account.config)

    # Then the request names it as the AMI to roll out
    assert (result["request"]["amiId"], result["request"]["to"], result["needsBake"]) == (amis[1], amis[1], False)


def test_rollback_to_an_image_that_is_not_kept_is_rejected(account: Account) -> None:
    # Given four app images (keepImages 3): the oldest is not kept
    amis = [account.bake("app", days) for days in (4, 3, 2, 1)]

    # When / Then
    message = rejected({"action": "rollback", "to": amis[0]}, account.adapters, account.config)
    assert message.startswith(f"to: {amis[0]} is not among the kept images of web-app")


def test_rollback_to_previous_resolves_to_the_newest_kept_image_older_than_the_deployed_one(account: Account) -> None:
    # Given three kept app images, the middle one deployed (the default version of the first target's template)
    oldest, middle, newest = (account.bake("app", days) for days in (3, 2, 1))
    account.deploy(middle)

    # When rolling back to "previous"
    result = validate({"action": "rollback", "to": "previous"}, account.adapters, account.config)

    # Then it resolves to the one before the deployed image, not to the newest
    assert result["request"]["amiId"] == oldest
    assert result["request"]["to"] == "previous"
    assert newest != result["request"]["amiId"]


def test_rollback_to_previous_falls_back_to_second_newest_when_deployed_ami_is_not_ours(account: Account) -> None:
    # Given three kept app images, and the template deploying an AMI this application did not bake
    _, second, _ = (account.bake("app", days) for days in (3, 2, 1))
    account.deploy(account.bake("app", 0.5, application="billing"))

    # When rolling back to "previous"
    result = validate({"action": "rollback", "to": "previous"}, account.adapters, account.config)

    # Then the second-newest kept image is chosen
    assert result["request"]["amiId"] == second


def test_rollback_to_previous_without_an_earlier_kept_image_is_rejected(account: Account) -> None:
    # Given one app image, deployed
    only = account.bake("app", 1)
    account.deploy(only)

    # When / Then
    message = rejected({"action": "rollback", "to": "previous"}, account.adapters, account.config)
    assert message.startswith(f'to: "previous": no kept image is older than {only}')


def test_validate_handler_end_to_end(lambda_context: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the handler (the sample config from the environment), its repository, and a codecommit-triggered deploy
    from validate_request import handler

    repository = Repository()
    monkeypatch.setattr(handler, "_codecommit", lambda: CodeCommit(repository))

    payload = {
        "executionId": "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1",
        "executionName": "run-1",
        "input": {
            "action": "deploy",
            "commit": COMMIT,
            "branch": "main",
            "repository": "web-app",
            "trigger": "codecommit",
        },
    }

    # When invoking it
    result = handler.lambda_handler(payload, lambda_context)

    # Then it returns the documented camelCase shape, having found the commit in the configured repository
    assert set(result) == {"request", "stages", "needsBake", "pipeline"}
    assert result["request"]["trigger"] == "codecommit"
    assert [s["name"] for s in result["stages"]] == ["test", "prod"]
    assert repository.calls == [("web-app", COMMIT)]


def test_validate_handler_rejects_bad_input_and_a_malformed_payload(lambda_context: Any) -> None:
    # Given the handler
    from validate_request import handler

    # When / Then a bad request and a payload without executionName both fail with InvalidInput
    with pytest.raises(InvalidInput, match=r'stages\[0\]: "staging" is not configured'):
        handler.lambda_handler(
            {"executionId": "arn:x", "executionName": "n", "input": {"action": "rebuild-base", "stages": ["staging"]}},
            lambda_context,
        )
    with pytest.raises(InvalidInput, match="executionName: required field is missing"):
        handler.lambda_handler({"executionId": "arn:x", "input": {}}, lambda_context)


# --- commits: the full SHA only, and (CodeCommit) one the repository holds ---


@pytest.mark.parametrize("short", [COMMIT[:7], COMMIT[:12], COMMIT[:39]], ids=["7", "12", "39"])
@pytest.mark.parametrize("config", [CONFIG, GITHUB_CONFIG], ids=["codecommit", "github"])
def test_short_sha_is_refused_with_how_to_give_the_full_one(
    short: str, config: DeployConfig, no_aws: Any, repository: Repository
) -> None:
    # Given a manual deploy of a commit named by a short SHA (which git checkout may take for a tag or branch)
    raw = {"action": "deploy", "commit": short}

    # When / Then it is refused with the reason and the command that prints the full SHA, before any AWS call
    assert rejected(raw, no_aws, config) == (
        f'commit: "{short}" is not a full commit SHA (40 hex characters): short SHAs can name a tag or branch; '
        f"give the full SHA (git rev-parse {short}), got '{short}'"
    )
    assert repository.calls == []


def test_full_lower_case_sha_is_accepted_as_given(no_aws: Any, repository: Repository) -> None:
    # Given a deploy of a full 40-hex SHA that the configured CodeCommit repository holds
    raw = {"action": "deploy", "commit": COMMIT}

    # When validating
    request = validate(raw, no_aws)["request"]

    # Then the commit is the full SHA, unchanged, looked up once in the configured repository
    assert request["commit"] == COMMIT
    assert repository.calls == [("web-app", COMMIT)]


def test_upper_case_sha_is_refused_not_normalised(no_aws: Any, repository: Repository) -> None:
    # Given the full SHA in upper case: only the exact form git prints is taken
    raw = {"action": "deploy", "commit": COMMIT.upper()}

    # When / Then
    message = rejected(raw, no_aws)
    assert message.startswith(f'commit: "{COMMIT.upper()}" has upper-case letters: give the full commit SHA in lower')
    assert repository.calls == []


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("main", "not a full commit SHA (40 lower-case hex characters): give the commit, not a branch or tag name"),
        (COMMIT + "0", "not a full commit SHA (40 lower-case hex characters)"),  # 41: not SHA-1
        ("0x" + COMMIT[:38], "not a full commit SHA (40 lower-case hex characters)"),
    ],
    ids=["branch-name", "too-long", "0x-prefix"],
)
def test_a_commit_that_is_no_sha_is_refused(value: str, why: str, no_aws: Any) -> None:
    # Given / When / Then
    assert f'commit: "{value}" is {why}' in rejected({"action": "deploy", "commit": value}, no_aws)


def test_codecommit_commit_the_repository_lacks_is_refused_before_anything_else(codecommit: Any) -> None:
    # Given the configured CodeCommit repository answering GetCommit: the commit does not exist (EC2: nothing stubbed)
    client, stub = codecommit
    stub.add_client_error(
        "get_commit",
        service_error_code="CommitIdDoesNotExistException",
        service_message="The specified commit ID does not exist.",
        expected_params={"repositoryName": "web-app", "commitId": COMMIT},
    )
    ec2 = boto3.client("ec2", **CREDS)

    # When validating a deploy of it
    with Stubber(ec2) as ec2_stub, pytest.raises(InvalidInput) as raised:
        validate(
            {"action": "deploy", "commit": COMMIT}, (Images(ec2), FleetReferences(ec2, object()), CodeCommit(client))
        )
    ec2_stub.assert_no_pending_responses()

    # Then it is refused naming the commit, the repository and CodeCommit's answer; GetCommit was the only call
    assert str(raised.value) == (
        f"commit: {COMMIT} is not a commit of the CodeCommit repository web-app (GetCommit: "
        "CommitIdDoesNotExistException: The specified commit ID does not exist.); push it first, or give a commit "
        "of that repository"
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("InvalidCommitIdException", f"commit: {COMMIT} is not a commit of the CodeCommit repository web-app"),
        ("RepositoryDoesNotExistException", "repository: the configured CodeCommit repository web-app does not exist"),
    ],
)
def test_codecommit_refusals_name_what_is_missing(code: str, expected: str, codecommit: Any) -> None:
    # Given GetCommit answering that the commit ID is not valid, or that the repository does not exist
    client, stub = codecommit
    stub.add_client_error("get_commit", service_error_code=code, service_message="no")
    adapters = (Images(object()), FleetReferences(object(), object()), CodeCommit(client))

    # When / Then the refusal names what is missing
    assert rejected({"action": "deploy", "commit": COMMIT}, adapters).startswith(expected)


@pytest.mark.parametrize(
    ("code", "status"),
    [("ThrottlingException", 400), ("InternalFailure", 500), ("ServiceUnavailable", 503)],
)
def test_codecommit_throttle_or_server_error_is_throttled_for_the_state_machine_to_retry(
    code: str, status: int, codecommit: Any
) -> None:
    # Given GetCommit throttled, or failing on AWS's side, once botocore's own retries are spent
    client, stub = codecommit
    stub.add_client_error("get_commit", service_error_code=code, service_message="later", http_status_code=status)
    adapters = (Images(object()), FleetReferences(object(), object()), CodeCommit(client))

    # When / Then the step raises Throttled (the error name ValidateRequest's Retry backs off on), not InvalidInput
    with pytest.raises(Throttled, match=code):
        validate({"action": "deploy", "commit": COMMIT}, adapters)


def test_codecommit_access_denied_is_not_taken_for_a_missing_commit(codecommit: Any) -> None:
    # Given the function's role not allowed to call GetCommit
    client, stub = codecommit
    stub.add_client_error("get_commit", service_error_code="AccessDeniedException", service_message="denied")
    adapters = (Images(object()), FleetReferences(object(), object()), CodeCommit(client))

    # When / Then the AWS error itself is raised: a configuration problem, neither InvalidInput nor retried
    with pytest.raises(ClientError, match="AccessDeniedException"):
        validate({"action": "deploy", "commit": COMMIT}, adapters)


def test_github_source_makes_no_codecommit_call(codecommit: Any, no_aws: Adapters) -> None:
    # Given a GitHub source and a CodeCommit client with nothing stubbed (any call fails the test)
    client, _ = codecommit
    images, fleet, _ = no_aws

    # When validating a deploy / Then it is accepted without asking anyone
    result = validate({"action": "deploy", "commit": COMMIT}, (images, fleet, CodeCommit(client)), GITHUB_CONFIG)
    assert result["request"]["commit"] == COMMIT


# --- every string is taken exactly as given: whitespace or control characters are refused, never trimmed ---

# (field path in messages, the request with a value in that field, a valid value of it)
STRING_FIELDS: list[tuple[str, Any, str]] = [
    ("action", lambda v: {"action": v, "commit": COMMIT}, "deploy"),
    ("commit", lambda v: {"action": "deploy", "commit": v}, COMMIT),
    ("branch", lambda v: {"action": "deploy", "commit": COMMIT, "branch": v}, "main"),
    ("repository", lambda v: {"action": "deploy", "commit": COMMIT, "repository": v}, "web-app"),
    ("amiId", lambda v: {"action": "deploy-image", "amiId": v}, "ami-0123456789abcdef0"),
    ("to", lambda v: {"action": "rollback", "to": v}, "previous"),
    ("stages[1]", lambda v: {"action": "deploy", "commit": COMMIT, "stages": ["test", v]}, "prod"),
    ("trigger", lambda v: {"action": "deploy", "commit": COMMIT, "trigger": v}, "codecommit"),
    ("pusher", lambda v: {"action": "deploy", "commit": COMMIT, "pusher": v}, "octocat"),
    ("deliveryId", lambda v: {"action": "deploy", "commit": COMMIT, "deliveryId": v}, "d-1"),
]
CONTROL = "must not contain a control character or line break"
TRAILING = "must not start or end with whitespace; values are used exactly as given, never trimmed"
BAD_VALUES: list[tuple[str, Any, str]] = [
    ("trailing-newline", lambda v: v + "\n", f"{CONTROL} (U+000A at index {{end}})"),
    ("trailing-crlf", lambda v: v + "\r\n", f"{CONTROL} (U+000D at index {{end}})"),
    ("trailing-space", lambda v: v + " ", TRAILING),
    ("leading-space", lambda v: " " + v, TRAILING),
    ("trailing-nbsp", lambda v: v + "\u00a0", TRAILING),
    ("inner-tab", lambda v: v[:1] + "\t" + v[1:], f"{CONTROL} (U+0009 at index 1)"),
    ("zero-width-space", lambda v: v + "\u200b", f"{CONTROL} (U+200B at index {{end}})"),
]


@pytest.mark.parametrize(("bad_name", "spoil", "why"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
@pytest.mark.parametrize(("path", "request_with", "good"), STRING_FIELDS, ids=[f[0] for f in STRING_FIELDS])
def test_a_string_with_whitespace_around_it_or_a_control_character_is_refused_naming_its_field(
    path: str,
    request_with: Any,
    good: str,
    bad_name: str,
    spoil: Any,
    why: str,
    no_aws: Any,
    repository: Repository,
) -> None:
    # Given a request whose one string field carries an invisible extra
    value = spoil(good)

    # When / Then it is refused in the first pass, naming the field and showing the value, before any AWS call
    message = rejected(request_with(value), no_aws)
    assert message.startswith(f"{path}: {why.format(end=len(good))}"), message
    assert message.endswith(f", got {value!r}")
    assert repository.calls == []


@pytest.mark.parametrize(
    ("trigger", "extra", "expected"),
    [
        ("manual", {}, "wait"),
        ("manual", {"whenBusy": "queue"}, "queue"),
        ("codecommit", {}, "queue"),
        ("codecommit", {"whenBusy": "wait"}, "wait"),
    ],
)
def test_pushes_queue_when_busy_and_manual_runs_wait_unless_asked(
    no_aws: Any, trigger: str, extra: dict[str, Any], expected: str
) -> None:
    # Given a deploy from a trigger, with or without an explicit whenBusy
    raw = {"action": "deploy", "commit": COMMIT, "trigger": trigger, **extra}
    assert CONFIG.source is not None
    config = CONFIG.model_copy(update={"source": CONFIG.source.model_copy(update={"type": "codecommit"})})

    # When validating
    result = validate(raw, no_aws, config)

    # Then a push queues behind a running deployment, a manual run waits (and fails) as before
    assert result["request"]["whenBusy"] == expected


def test_when_busy_accepts_only_queue_or_wait(no_aws: Any) -> None:
    message = rejected({"action": "deploy", "commit": COMMIT, "whenBusy": "later"}, no_aws)
    assert "whenBusy" in message
