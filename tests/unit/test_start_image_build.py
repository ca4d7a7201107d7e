"""start_image_build: record the commit for the app component, start the pipeline once per execution."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws
from start_image_build import logic
from start_image_build.models import StartImageBuildEnvironment, StartImageBuildInput

from shared import clock, tags
from shared.aws.imagebuilder import MAX_CLIENT_TOKEN_LENGTH, ImageBuilder
from shared.aws.images import Images
from shared.aws.parameters import Parameters
from shared.aws.references import FleetReferences
from shared.config import ConfigurationError, DeployConfig
from shared.environment import load_environment
from shared.errors import ImagePipelineNotFound, InvalidInput, LaunchTemplateNotFound
from tests.conftest import ACCOUNT, REGION, SAMPLE_DEPLOY_CONFIG

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1"
COMMIT = "3f2c1e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
APP_PIPELINE = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app-app"
BASE_PIPELINE = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app-base"
BUILD_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/web-app-app/1.0.0/7"
BASE_BUILD_ARN = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image/web-app-base/1.0.0/3"
PARAMETER = "/web-app/build-source"
STARTED_AT = 1_796_000_000  # epoch seconds: 2026-11-30
BASE_AMI = "ami-0123456789abcdef0"
ENV = StartImageBuildEnvironment.model_validate(
    {
        "BUILD_SOURCE_PARAMETER": PARAMETER,
        "BASE_PIPELINE_ARN": BASE_PIPELINE,
        "APP_PIPELINE_ARN": APP_PIPELINE,
        "AWS_REGION": REGION,
    }
)
CONFIG = DeployConfig.model_validate(SAMPLE_DEPLOY_CONFIG)
# One botocore session for the module: it loads each service model once (moto resets boto3's default session
# per test, and loading the EC2 model again costs a quarter of a second). moto intercepts its clients all the same.
SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
APP_INSTALL = Path(__file__).resolve().parents[2] / "imagebuilder" / "components" / "app-install.yml"


def request_dict(action: str = "deploy", **change: Any) -> dict[str, Any]:
    """validate_request's `request` output, as the state machine passes it on."""
    base = {
        "action": action,
        "commit": COMMIT if action == "deploy" else None,
        "branch": "main",
        "repository": "web-app",
        "amiId": None,
        "to": None,
        "stages": ["test", "prod"],
        "dryRun": False,
        "trigger": "codecommit" if action == "deploy" else "schedule",
        "pusher": None,
        "deliveryId": None,
    }
    return {**base, **change}


def start_input(
    pipeline: str = "app",
    *,
    action: str = "deploy",
    execution: str = EXECUTION,
    dry_run: bool = False,
    base_ami_id: str | None = None,
    **request_change: Any,
) -> StartImageBuildInput:
    return StartImageBuildInput.model_validate(
        {
            "executionId": execution,
            "dryRun": dry_run,
            "request": request_dict(action, dryRun=dry_run, **request_change),
            "pipeline": pipeline,
            "baseAmiId": base_ami_id,
        }
    )


class Aws:
    """moto SSM and EC2, and a real Image Builder client behind a Stubber (moto has no Image Builder)."""

    def __init__(self) -> None:
        self.imagebuilder = SESSION.client("imagebuilder")
        self.stub = Stubber(self.imagebuilder)

    # Created on first use: a boto3 client costs a tenth of a second, and many tests need only one of them.
    @cached_property
    def ssm(self) -> Any:
        return SESSION.client("ssm")

    @cached_property
    def ec2(self) -> Any:
        return SESSION.client("ec2")

    def expect_start(self, pipeline_arn: str, token: str, build_arn: str = BUILD_ARN) -> None:
        self.stub.add_response(
            "start_image_pipeline_execution",
            {"requestId": "r-1", "clientToken": token, "imageBuildVersionArn": build_arn},
            {"imagePipelineArn": pipeline_arn, "clientToken": token},
        )

    def run(self, request: StartImageBuildInput, config: DeployConfig = CONFIG) -> dict[str, Any]:
        with self.stub:
            output = logic.run(
                request,
                config,
                ENV,
                ImageBuilder(self.imagebuilder),
                Parameters(self.ssm),
                FleetReferences(self.ec2),
                Images(self.ec2),
            )
            self.stub.assert_no_pending_responses()
        return output.model_dump(by_alias=True, mode="json")

    def build_source(self) -> dict[str, Any] | None:
        try:
            value = self.ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"]
        except self.ssm.exceptions.ParameterNotFound:
            return None
        return dict(json.loads(value))

    def deployed_fleet(self, commit: str | None) -> DeployConfig:
        """A launch template whose default version runs an AMI we own (tagged with `commit` when given), and a
        newer non-default version with another AMI; the config's first target uses that template."""
        ami = self.ec2.register_image(
            Name="web-app-deployed",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        if commit:
            self.ec2.create_tags(Resources=[ami], Tags=[{"Key": tags.COMMIT, "Value": commit}])
        newer = self.ec2.register_image(
            Name="web-app-newer",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        self.ec2.create_tags(Resources=[newer], Tags=[{"Key": tags.COMMIT, "Value": "0" * 40}])
        return self.fleet_on(ami, newer)

    def fleet_on(self, default_ami: str, newer_ami: str = BASE_AMI) -> DeployConfig:
        template = self.ec2.create_launch_template(
            LaunchTemplateName="web-app-test", LaunchTemplateData={"ImageId": default_ami, "InstanceType": "t3.micro"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        self.ec2.create_launch_template_version(LaunchTemplateId=template, LaunchTemplateData={"ImageId": newer_ami})
        config = json.loads(json.dumps(SAMPLE_DEPLOY_CONFIG))
        config["stages"][0]["targets"][0]["launchTemplateId"] = template
        return DeployConfig.model_validate(config)


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build's start is read from shared.clock, the one clock the rehearsal puts on simulated time."""
    monkeypatch.setattr(clock, "now", lambda: datetime.fromtimestamp(STARTED_AT, UTC))


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    # moto's public AMI catalogue is not needed here and costs a quarter of a second per test.
    monkeypatch.setenv("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    with mock_aws():
        yield Aws()


# --- app image -----------------------------------------------------------------------------------


def test_deploy_records_the_commit_for_the_component_and_starts_the_app_pipeline(aws: Aws) -> None:
    # Given a deploy request for a commit from CodeCommit
    token = logic.client_token(EXECUTION, "app")
    aws.expect_start(APP_PIPELINE, token)
    # When the build starts
    output = aws.run(start_input())
    # Then the build source is in SSM and the app pipeline was started with the execution's client token
    assert aws.build_source() == {
        "commit": COMMIT,
        "branch": "main",
        "repository": "web-app",
        "cloneUrl": f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/web-app",
        "sourceType": "codecommit",
        "executionId": EXECUTION,
        "baseAmiId": None,
    }
    assert output == {
        "pipeline": "app",
        "imageBuildVersionArn": BUILD_ARN,
        "commit": COMMIT,
        "clientToken": token,
        "dryRun": False,
        "startedAt": STARTED_AT,
    }


def test_github_source_gives_the_github_clone_url(aws: Aws) -> None:
    # Given a GitHub source
    config = CONFIG.model_copy(
        update={"source": CONFIG.source.model_copy(update={"type": "github", "repository": "acme/web-app"})}  # type: ignore[union-attr]
    )
    aws.expect_start(APP_PIPELINE, logic.client_token(EXECUTION, "app"))
    # When the build starts
    aws.run(start_input(repository="acme/web-app", trigger="github"), config)
    # Then the component clones from GitHub
    source = aws.build_source()
    assert source is not None
    assert (source["sourceType"], source["cloneUrl"], source["repository"]) == (
        "github",
        "https://github.com/acme/web-app.git",
        "acme/web-app",
    )


def test_app_build_source_carries_every_key_the_app_install_component_reads(aws: Aws) -> None:
    # Given the keys app-install.yml reads from the parameter with jq (tokenSecretArn is optional: public GitHub)
    component = APP_INSTALL.read_text()
    programs = re.findall(r"jq (?:-[a-z]+ )*'([^']*)'", component)
    read = {key for program in programs for key in re.findall(r"\.([A-Za-z]+)", program)}
    read |= set(re.findall(r"jq '\{([^}]*)\}'", component)[0].replace(" ", "").split(","))
    assert {"commit", "cloneUrl", "sourceType", "branch", "repository"} <= read
    aws.expect_start(APP_PIPELINE, logic.client_token(EXECUTION, "app"))
    # When a build source is written
    aws.run(start_input())
    # Then it has every key the component needs
    source = aws.build_source()
    assert source is not None
    assert read - {"tokenSecretArn"} <= set(source)


def test_app_on_a_new_base_records_the_base_ami(aws: Aws) -> None:
    # Given the rebuild-base chain's second bake, on the base AMI just built, with the deployed commit known
    config = aws.deployed_fleet(COMMIT)
    aws.expect_start(APP_PIPELINE, logic.client_token(EXECUTION, "app"))
    # When the app build starts
    output = aws.run(start_input(action="rebuild-base", base_ami_id=BASE_AMI), config)
    # Then the build source names the base AMI and the re-baked commit
    source = aws.build_source()
    assert source is not None
    assert (source["baseAmiId"], source["commit"]) == (BASE_AMI, COMMIT)
    assert output["commit"] == COMMIT


def test_rebuild_base_bakes_the_commit_of_the_first_targets_default_version(aws: Aws) -> None:
    # Given the first target's default version (1) runs an AMI tagged with COMMIT, and version 2 another commit
    config = aws.deployed_fleet(COMMIT)
    aws.expect_start(APP_PIPELINE, logic.client_token(EXECUTION, "app"))
    # When rebuild-base starts the app build (no commit in the request)
    output = aws.run(start_input(action="rebuild-base"), config)
    # Then the commit of the default version's AMI is baked, not the latest version's
    assert output["commit"] == COMMIT
    source = aws.build_source()
    assert source is not None
    assert source["commit"] == COMMIT


def test_rebuild_base_uses_the_first_requested_stage(aws: Aws) -> None:
    # Given the prod stage's template runs an AMI with COMMIT, and only prod is requested
    ami = aws.ec2.register_image(Name="prod", RootDeviceName="/dev/xvda", BlockDeviceMappings=[])["ImageId"]
    aws.ec2.create_tags(Resources=[ami], Tags=[{"Key": tags.COMMIT, "Value": COMMIT}])
    template = aws.ec2.create_launch_template(LaunchTemplateName="prod", LaunchTemplateData={"ImageId": ami})[
        "LaunchTemplate"
    ]["LaunchTemplateId"]
    config = json.loads(json.dumps(SAMPLE_DEPLOY_CONFIG))
    config["stages"][1]["targets"][0]["launchTemplateId"] = template
    aws.expect_start(APP_PIPELINE, logic.client_token(EXECUTION, "app"))
    # When rebuild-base runs for prod only
    output = aws.run(start_input(action="rebuild-base", stages=["prod"]), DeployConfig.model_validate(config))
    # Then prod's running commit is baked
    assert output["commit"] == COMMIT


def test_rebuild_base_fails_clearly_when_the_deployed_ami_has_no_commit_tag(aws: Aws) -> None:
    # Given the default version runs an AMI without the commit tag (e.g. the fleet's original image)
    config = aws.deployed_fleet(commit=None)
    # When / Then nothing is written or started, and the reason is named
    with pytest.raises(
        InvalidInput, match=r"rebuild-base: cannot tell which commit is deployed: .* no immutable-ami:commit tag"
    ):
        aws.run(start_input(action="rebuild-base"), config)
    assert aws.build_source() is None


def test_rebuild_base_fails_clearly_when_the_deployed_ami_is_not_ours(aws: Aws) -> None:
    # Given the default version names an AMI that DescribeImages does not know (deregistered, or another owner's)
    config = aws.fleet_on("ami-0fedcba9876543210")
    # When / Then
    with pytest.raises(InvalidInput, match=r"cannot tell which commit is deployed: .* not an image this account owns"):
        aws.run(start_input(action="rebuild-base"), config)
    assert aws.build_source() is None


def test_rebuild_base_fails_when_the_first_targets_template_does_not_exist(aws: Aws) -> None:
    # Given the configured template does not exist (the sample config's ids are not in moto)
    # When / Then the launch template error is named
    with pytest.raises(LaunchTemplateNotFound, match="lt-0aaaaaaaaaaaaaaa1"):
        aws.run(start_input(action="rebuild-base"))


def test_app_build_without_a_configured_source_is_invalid(aws: Aws) -> None:
    # Given no source in the configuration
    config = CONFIG.model_copy(update={"source": None})
    # When / Then
    with pytest.raises(InvalidInput, match="no source is configured"):
        aws.run(start_input(), config)
    assert aws.build_source() is None


# --- base image ----------------------------------------------------------------------------------


def test_base_pipeline_starts_without_writing_a_build_source(aws: Aws) -> None:
    # Given the first bake of rebuild-base
    token = logic.client_token(EXECUTION, "base")
    aws.expect_start(BASE_PIPELINE, token, BASE_BUILD_ARN)
    # When it starts
    output = aws.run(start_input("base", action="rebuild-base"))
    # Then the base pipeline runs, and the app's build source is left alone
    assert output == {
        "pipeline": "base",
        "imageBuildVersionArn": BASE_BUILD_ARN,
        "commit": None,
        "clientToken": token,
        "dryRun": False,
        "startedAt": STARTED_AT,
    }
    assert aws.build_source() is None


@pytest.mark.parametrize(
    ("pipeline", "action", "base_ami_id", "message"),
    [
        ("base", "deploy", None, 'action "deploy" bakes only app, not "base"'),
        ("app", "deploy-image", None, 'action "deploy-image" bakes no image'),
        ("app", "rollback", None, 'action "rollback" bakes no image'),
        ("base", "rebuild-base", BASE_AMI, "baseAmiId: only the app image is baked on a base AMI"),
    ],
)
def test_pipeline_that_the_action_does_not_bake_is_refused_before_touching_aws(
    aws: Aws, pipeline: str, action: str, base_ami_id: str | None, message: str
) -> None:
    # Given a request whose action does not bake that pipeline's image
    request = start_input(pipeline, action=action, base_ami_id=base_ami_id)
    # When / Then (the Stubber has no responses: a start would fail the test)
    with pytest.raises(InvalidInput, match=re.escape(message)):
        aws.run(request)
    assert aws.build_source() is None


# --- idempotency and client token ------------------------------------------------------------------


def test_retry_of_the_same_execution_sends_the_same_client_token_and_gets_the_same_build(aws: Aws) -> None:
    # Given Image Builder answers a repeated client token with the original build
    token = logic.client_token(EXECUTION, "app")
    # When the step runs twice for the same execution
    aws.expect_start(APP_PIPELINE, token)
    first = aws.run(start_input())
    aws.expect_start(APP_PIPELINE, token)
    second = aws.run(start_input())
    # Then both name the same token and build, and the build source is the same
    assert first == second
    assert first["clientToken"] == token


def test_client_token_is_stable_distinct_and_within_the_api_limit() -> None:
    # Given a very long execution id (the ARN can reach 2048 characters)
    long_execution = "arn:aws:states:eu-west-1:123456789012:execution:deploy:" + "x" * 1990
    # When tokens are derived
    tokens = {
        (execution, pipeline): logic.client_token(execution, pipeline)
        for execution in (EXECUTION, f"{EXECUTION}-2", long_execution)
        for pipeline in ("app", "base")
    }
    # Then each is deterministic, distinct per execution and pipeline, and 1..64 characters
    assert all(logic.client_token(e, p) == t for (e, p), t in tokens.items())
    assert len(set(tokens.values())) == len(tokens)
    assert all(1 <= len(t) <= MAX_CLIENT_TOKEN_LENGTH == 64 for t in tokens.values())


def test_adapter_refuses_a_client_token_longer_than_the_api_allows() -> None:
    with pytest.raises(ValueError, match="1 to 64"):
        ImageBuilder(SESSION.client("imagebuilder")).start_pipeline(APP_PIPELINE, "t" * 65)


def test_adapter_translates_a_missing_pipeline() -> None:
    # Given Image Builder does not know the pipeline
    imagebuilder = SESSION.client("imagebuilder")
    with Stubber(imagebuilder) as stub:
        stub.add_client_error("start_image_pipeline_execution", service_error_code="ResourceNotFoundException")
        # When / Then
        with pytest.raises(ImagePipelineNotFound, match="web-app-app"):
            ImageBuilder(imagebuilder).start_pipeline(APP_PIPELINE, "app-token")


# --- dry run -------------------------------------------------------------------------------------


def test_dry_run_reports_what_would_be_built_and_writes_and_starts_nothing(aws: Aws) -> None:
    # Given a rebuild-base app bake in dry run (reads still resolve the commit)
    config = aws.deployed_fleet(COMMIT)
    # When it runs (the Stubber has no responses: a start would fail the test)
    output = aws.run(start_input(action="rebuild-base", dry_run=True), config)
    # Then it reports the commit and token and changes nothing
    assert output == {
        "pipeline": "app",
        "imageBuildVersionArn": None,
        "commit": COMMIT,
        "clientToken": logic.client_token(EXECUTION, "app"),
        "dryRun": True,
        "startedAt": None,
    }
    assert aws.build_source() is None


def test_dry_run_flag_of_the_request_alone_also_changes_nothing(aws: Aws) -> None:
    # Given a payload whose request says dryRun while the top-level flag was left out
    request = StartImageBuildInput.model_validate(
        {"executionId": EXECUTION, "request": request_dict(dryRun=True), "pipeline": "app"}
    )
    # When it runs (no start may happen)
    output = aws.run(request)
    # Then nothing is written or started
    assert (output["dryRun"], output["imageBuildVersionArn"]) == (True, None)
    assert aws.build_source() is None


# --- environment and handler ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"BUILD_SOURCE_PARAMETER": None}, "BUILD_SOURCE_PARAMETER: required field is missing"),
        ({"APP_PIPELINE_ARN": None}, "APP_PIPELINE_ARN: required field is missing"),
        ({"BASE_PIPELINE_ARN": "web-app-base"}, "BASE_PIPELINE_ARN: String should match pattern"),
        ({"AWS_REGION": None}, "AWS_REGION: required field is missing"),
    ],
)
def test_start_image_build_environment_names_the_missing_or_bad_variable(
    change: dict[str, str | None], message: str
) -> None:
    environ = {k: v for k, v in {**ENV.model_dump(by_alias=True), **change}.items() if v is not None}
    with pytest.raises(ConfigurationError, match=f"start_image_build function environment: {re.escape(message)}"):
        load_environment(StartImageBuildEnvironment, "start_image_build", environ)


@pytest.fixture
def handler(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in ENV.model_dump(by_alias=True).items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module("start_image_build.handler")
    monkeypatch.setattr(module, "ENV", ENV)
    monkeypatch.setattr(module, "imagebuilder", lambda: ImageBuilder(aws.imagebuilder))
    monkeypatch.setattr(module, "parameters", lambda: Parameters(aws.ssm))
    monkeypatch.setattr(module, "fleet", lambda: FleetReferences(aws.ec2))
    monkeypatch.setattr(module, "images", lambda: Images(aws.ec2))
    return module


def test_handler_records_the_source_and_starts_the_app_build(handler: Any, aws: Aws, lambda_context: Any) -> None:
    # Given the state machine's payload for a deploy
    event = {"executionId": EXECUTION, "request": request_dict(), "pipeline": "app", "baseAmiId": None}
    aws.expect_start(APP_PIPELINE, logic.client_token(EXECUTION, "app"))
    # When the handler runs
    with aws.stub:
        output = handler.lambda_handler(event, lambda_context)
    # Then the JSON answer is the documented shape and the source is recorded
    assert output == {
        "pipeline": "app",
        "imageBuildVersionArn": BUILD_ARN,
        "commit": COMMIT,
        "clientToken": logic.client_token(EXECUTION, "app"),
        "dryRun": False,
        "startedAt": STARTED_AT,
    }
    source = aws.build_source()
    assert source is not None
    assert source["commit"] == COMMIT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pipeline": "container"}, "pipeline"),
        ({"baseAmiId": "ami-XYZ"}, "baseAmiId"),
        ({"request": {**request_dict(), "extra": 1}}, r"request\.extra: unknown field"),
        ({"request": {k: v for k, v in request_dict().items() if k != "trigger"}}, r"request\.trigger: required"),
        ({"executionId": ""}, "executionId"),
        ({"dryRun": "no"}, "dryRun"),
    ],
)
def test_handler_rejects_malformed_payloads_before_touching_aws(
    handler: Any, aws: Aws, lambda_context: Any, change: dict[str, Any], message: str
) -> None:
    event = {"executionId": EXECUTION, "request": request_dict(), "pipeline": "app", **change}
    with aws.stub, pytest.raises(InvalidInput, match=message):
        handler.lambda_handler(event, lambda_context)
    assert aws.build_source() is None
