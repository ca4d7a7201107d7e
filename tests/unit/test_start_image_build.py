"""start_image_build: bake the app from a recipe made for the bake (commit and base AMI fixed in it), start the base
pipeline, once per execution."""

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
import yaml
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber
from moto import mock_aws
from start_image_build import logic
from start_image_build.models import StartImageBuildEnvironment, StartImageBuildInput

from shared import clock, tags
from shared.aws.imagebuilder import MAX_CLIENT_TOKEN_LENGTH, ImageBuilder
from shared.aws.images import Images
from shared.aws.references import FleetReferences
from shared.config import ConfigurationError, DeployConfig
from shared.environment import load_environment
from shared.errors import BaseImageMissing, ImagePipelineNotFound, InvalidInput, LaunchTemplateNotFound
from tests.conftest import ACCOUNT, REGION, SAMPLE_DEPLOY_CONFIG

EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:deploy:run-1"
COMMIT = "3f2c1e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
OTHER_COMMIT = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
IMAGEBUILDER = f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}"
BASE_PIPELINE = f"{IMAGEBUILDER}:image-pipeline/web-app-base"
INFRASTRUCTURE = f"{IMAGEBUILDER}:infrastructure-configuration/web-app-build"
DISTRIBUTION = f"{IMAGEBUILDER}:distribution-configuration/web-app-app"
INSTALL_COMPONENT = f"{IMAGEBUILDER}:component/web-app-app-install/1.0.2/1"
TEST_COMPONENT = f"{IMAGEBUILDER}:component/web-app-app-test/1.0.1/1"
BASE_BUILD_ARN = f"{IMAGEBUILDER}:image/web-app-base/1.0.0/3"
STARTED_AT = 1_796_000_000  # epoch seconds: 2026-11-30
BASE_AMI = "ami-0123456789abcdef0"
RECIPE_VERSION = "1.2.0"
# APP_RECIPE as the stack writes it (tests/infra pins the stack's side): the app components, their static
# parameters, and which of them get the bake's source.
APP_RECIPE = {
    "name": "web-app-app",
    "version": RECIPE_VERSION,
    "components": [
        {"arn": INSTALL_COMPONENT, "parameters": {"InstallScript": "deploy/install.sh"}, "fill": "install"},
        {"arn": TEST_COMPONENT, "parameters": {"TestScript": "deploy/test.sh"}, "fill": "test"},
    ],
}
ENVIRON = {
    "BASE_PIPELINE_ARN": BASE_PIPELINE,
    "APP_RECIPE": json.dumps(APP_RECIPE),
    "INFRASTRUCTURE_ARN": INFRASTRUCTURE,
    "APP_DISTRIBUTION_ARN": DISTRIBUTION,
    "IMAGE_TESTS_TIMEOUT_MINUTES": "120",
    "AWS_REGION": REGION,
}
ENV = StartImageBuildEnvironment.model_validate(ENVIRON)
CONFIG = DeployConfig.model_validate(SAMPLE_DEPLOY_CONFIG)
# One botocore session for the module: it loads each service model once (moto resets boto3's default session
# per test, and loading the EC2 model again costs a quarter of a second). moto intercepts its clients all the same.
SESSION = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)
COMPONENTS = Path(__file__).resolve().parents[2] / "imagebuilder" / "components"
TOKEN_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:web-app-github-AbCdEf"


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


def recipe_arn(commit: str = COMMIT, execution: str = EXECUTION) -> str:
    return f"{IMAGEBUILDER}:image-recipe/{logic.recipe_name(ENV.app_recipe, execution, commit)}/{RECIPE_VERSION}"


def build_arn(commit: str = COMMIT, execution: str = EXECUTION) -> str:
    return f"{IMAGEBUILDER}:image/{logic.recipe_name(ENV.app_recipe, execution, commit)}/{RECIPE_VERSION}/1"


def github_config(token_secret_arn: str | None = None) -> DeployConfig:
    config = json.loads(json.dumps(SAMPLE_DEPLOY_CONFIG))
    config["source"] = {"type": "github", "repository": "acme/web-app", "branch": "main"}
    if token_secret_arn:
        config["source"]["tokenSecretArn"] = token_secret_arn
    return DeployConfig.model_validate(config)


def no_ec2() -> Any:
    """An EC2 client behind a Stubber with no responses: any call fails the test."""
    ec2 = SESSION.client("ec2")
    Stubber(ec2).activate()
    return ec2


class Aws:
    """moto EC2 (images, launch templates), and a real Image Builder client behind a Stubber (moto has no Image
    Builder) that also records every request it is sent."""

    def __init__(self) -> None:
        self.imagebuilder = SESSION.client("imagebuilder")
        self.stub = Stubber(self.imagebuilder)
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.imagebuilder.meta.events.register("before-parameter-build.imagebuilder", self._record)
        self._images = 0

    def _record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        self.sent.append((model.name, json.loads(json.dumps(params))))

    def requests(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.sent if name == operation]

    # Created on first use: a boto3 client costs a tenth of a second, and some tests need none.
    @cached_property
    def ec2(self) -> Any:
        return SESSION.client("ec2")

    def expect_start(self, pipeline_arn: str, token: str, build: str = BASE_BUILD_ARN) -> None:
        self.stub.add_response(
            "start_image_pipeline_execution",
            {"requestId": "r-1", "clientToken": token, "imageBuildVersionArn": build},
            {"imagePipelineArn": pipeline_arn, "clientToken": token},
        )

    def expect_bake(
        self,
        commit: str = COMMIT,
        *,
        base: str = BASE_AMI,
        execution: str = EXECUTION,
        recipe_exists: bool = False,
    ) -> str:
        """CreateImageRecipe (or its "already exists" on a retry), then CreateImage of that recipe; the build ARN."""
        name = logic.recipe_name(ENV.app_recipe, execution, commit)
        recipe_token = logic.client_token(execution, f"recipe|{commit}")
        recipe_params = {
            "name": name,
            "semanticVersion": RECIPE_VERSION,
            "description": ANY,
            "parentImage": base,
            "components": ANY,
            "additionalInstanceConfiguration": ANY,
            "tags": ANY,
            "clientToken": recipe_token,
        }
        if recipe_exists:
            self.stub.add_client_error(
                "create_image_recipe",
                service_error_code="ResourceAlreadyExistsException",
                service_message=f"The image recipe {name} {RECIPE_VERSION} already exists.",
                expected_params=recipe_params,
            )
        else:
            self.stub.add_response(
                "create_image_recipe",
                {"requestId": "r-1", "clientToken": recipe_token, "imageRecipeArn": recipe_arn(commit, execution)},
                recipe_params,
            )
        image_token = logic.client_token(execution, f"app|{commit}")
        self.stub.add_response(
            "create_image",
            {"requestId": "r-2", "clientToken": image_token, "imageBuildVersionArn": build_arn(commit, execution)},
            {
                "imageRecipeArn": recipe_arn(commit, execution),
                "infrastructureConfigurationArn": INFRASTRUCTURE,
                "distributionConfigurationArn": DISTRIBUTION,
                "imageTestsConfiguration": {"imageTestsEnabled": True, "timeoutMinutes": 120},
                "enhancedImageMetadataEnabled": True,
                "tags": ANY,
                "clientToken": image_token,
            },
        )
        return build_arn(commit, execution)

    def run(
        self, request: StartImageBuildInput, config: DeployConfig = CONFIG, *, images: Any = None, ec2: Any = None
    ) -> dict[str, Any]:
        with self.stub:
            output = logic.run(
                request,
                config,
                ENV,
                imagebuilder=ImageBuilder(self.imagebuilder),
                templates=FleetReferences(ec2 or self.ec2),
                images=images or Images(ec2 or self.ec2),
            )
            self.stub.assert_no_pending_responses()
        return output.model_dump(by_alias=True, mode="json")

    def register(self, image_tags: dict[str, str] | None = None) -> str:
        self._images += 1
        ami = self.ec2.register_image(
            Name=f"web-app-{self._images}",
            RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 8}}],
        )["ImageId"]
        if image_tags:
            self.ec2.create_tags(Resources=[ami], Tags=[{"Key": k, "Value": v} for k, v in image_tags.items()])
        return str(ami)

    def base_image(self, application: str = "web-app") -> str:
        """An available base AMI of the application, as the base pipeline's distribution tags it."""
        return self.register({tags.APPLICATION: application, tags.PIPELINE: "base"})

    def template_running(self, ami: str, name: str) -> str:
        """A launch template whose default version (1) runs `ami`, and whose newer version 2 runs another AMI."""
        template = self.ec2.create_launch_template(
            LaunchTemplateName=name, LaunchTemplateData={"ImageId": ami, "InstanceType": "t3.micro"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        newer = self.register({tags.COMMIT: "f" * 40})
        self.ec2.create_launch_template_version(LaunchTemplateId=template, LaunchTemplateData={"ImageId": newer})
        return str(template)

    def fleet(self, *commits: str | None) -> DeployConfig:
        """One target per commit: the first in the test stage, the others in prod, each running an AMI we own
        tagged with its commit (None: no commit tag)."""
        targets = []
        for index, commit in enumerate(commits):
            ami = self.register({tags.COMMIT: commit} if commit else None)
            name = f"web-app-{index}"
            targets.append({"autoScalingGroupName": name, "launchTemplateId": self.template_running(ami, name)})
        config = json.loads(json.dumps(SAMPLE_DEPLOY_CONFIG))
        config["stages"][0]["targets"] = targets[:1]
        config["stages"][1]["targets"] = targets[1:] or config["stages"][1]["targets"]
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


# --- app image: the per-bake recipe ----------------------------------------------------------------------


def test_deploy_creates_a_recipe_for_the_bake_with_its_source_in_the_component_parameters_and_builds_it(
    aws: Aws,
) -> None:
    # Given a deploy of a commit from CodeCommit, on a base AMI chosen by the workflow
    build = aws.expect_bake(base=BASE_AMI)
    # When the bake starts
    output = aws.run(start_input(base_ami_id=BASE_AMI))
    # Then one recipe is made for this bake: parent = that exact AMI, the source in the components' parameters
    (recipe,) = aws.requests("CreateImageRecipe")
    name = logic.recipe_name(ENV.app_recipe, EXECUTION, COMMIT)
    assert re.fullmatch(r"web-app-app-[0-9a-f]{12}", name)
    assert recipe == {
        "name": name,
        "semanticVersion": RECIPE_VERSION,
        "description": f"web-app app image of commit {COMMIT}, on {BASE_AMI}",
        "parentImage": BASE_AMI,
        "components": [
            {
                "componentArn": INSTALL_COMPONENT,
                "parameters": [
                    {"name": "InstallScript", "value": ["deploy/install.sh"]},
                    {"name": "Commit", "value": [COMMIT]},
                    {"name": "Branch", "value": ["main"]},
                    {"name": "Repository", "value": ["web-app"]},
                    {"name": "CloneUrl", "value": [f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/web-app"]},
                    {"name": "SourceType", "value": ["codecommit"]},
                ],
            },
            {
                "componentArn": TEST_COMPONENT,
                "parameters": [
                    {"name": "TestScript", "value": ["deploy/test.sh"]},
                    {"name": "Commit", "value": [COMMIT]},
                ],
            },
        ],
        "additionalInstanceConfiguration": {"systemsManagerAgent": {"uninstallAfterBuild": False}},
        "tags": {
            tags.APPLICATION: "web-app",
            tags.PIPELINE: "app",
            tags.COMMIT: COMMIT,
            tags.EXECUTION: EXECUTION,
        },
        "clientToken": logic.client_token(EXECUTION, f"recipe|{COMMIT}"),
    }
    # And it is built outside any pipeline, on the stack's infrastructure and distribution, with the image tests
    (image,) = aws.requests("CreateImage")
    assert image == {
        "imageRecipeArn": recipe_arn(),
        "infrastructureConfigurationArn": INFRASTRUCTURE,
        "distributionConfigurationArn": DISTRIBUTION,
        "imageTestsConfiguration": {"imageTestsEnabled": True, "timeoutMinutes": 120},
        "enhancedImageMetadataEnabled": True,
        "tags": recipe["tags"],
        "clientToken": logic.client_token(EXECUTION, f"app|{COMMIT}"),
    }
    assert output == {
        "pipeline": "app",
        "imageBuildVersionArn": build,
        "commit": COMMIT,
        "clientToken": logic.client_token(EXECUTION, f"app|{COMMIT}"),
        "dryRun": False,
        "startedAt": STARTED_AT,
        "bakes": [{"commit": COMMIT, "imageBuildVersionArn": build, "recipeArn": recipe_arn(), "baseAmiId": BASE_AMI}],
        "commitsFrom": "request",
        "runningBases": [],
    }


def test_github_source_gives_the_github_clone_url_and_the_token_secret_only_when_configured(aws: Aws) -> None:
    # Given a private GitHub repository (a token secret) and a public one (none)
    # When each is baked
    aws.expect_bake(execution=EXECUTION)
    aws.run(start_input(repository="acme/web-app", trigger="github", base_ami_id=BASE_AMI), github_config(TOKEN_SECRET))
    aws.expect_bake(execution=f"{EXECUTION}-public")
    aws.run(
        start_input(execution=f"{EXECUTION}-public", repository="acme/web-app", trigger="github", base_ami_id=BASE_AMI),
        github_config(),
    )
    # Then app-install clones from GitHub, and gets the secret's ARN (never the token) only when there is one
    private, public = (
        {p["name"]: p["value"] for p in r["components"][0]["parameters"]} for r in aws.requests("CreateImageRecipe")
    )
    assert (private["SourceType"], private["CloneUrl"], private["Repository"]) == (
        ["github"],
        ["https://github.com/acme/web-app.git"],
        ["acme/web-app"],
    )
    assert private["TokenSecretArn"] == [TOKEN_SECRET]
    assert "TokenSecretArn" not in public


@pytest.mark.parametrize("config", [CONFIG, github_config(TOKEN_SECRET)], ids=["codecommit", "github-private"])
def test_app_components_get_every_parameter_they_need_and_none_they_do_not_declare(
    aws: Aws, config: DeployConfig
) -> None:
    # Given the parameters app-install.yml and app-test.yml declare, and those without a default (required)
    declared: dict[str, set[str]] = {}
    required: dict[str, set[str]] = {}
    for component in ("app-install", "app-test"):
        document = yaml.safe_load((COMPONENTS / f"{component}.yml").read_text())
        parameters = {name: spec for entry in document["parameters"] for name, spec in entry.items()}
        declared[component] = set(parameters)
        required[component] = {name for name, spec in parameters.items() if "default" not in spec}
    aws.expect_bake()
    # When a bake's recipe is made
    aws.run(start_input(base_ami_id=BASE_AMI), config)
    # Then each component gets all it requires, and nothing it does not declare (AWSTOE refuses unknown names)
    (recipe,) = aws.requests("CreateImageRecipe")
    sent = {c["componentArn"]: {p["name"] for p in c["parameters"]} for c in recipe["components"]}
    for component, arn in (("app-install", INSTALL_COMPONENT), ("app-test", TEST_COMPONENT)):
        assert required[component] <= sent[arn] <= declared[component], component


def test_a_component_with_no_parameters_is_sent_without_a_parameters_list(aws: Aws) -> None:
    # Given an app recipe with a component that takes no parameters (the API refuses an empty list)
    reboot = f"arn:aws:imagebuilder:{REGION}:aws:component/reboot-test-linux/x.x.x"
    recipe = {**APP_RECIPE, "components": [*APP_RECIPE["components"], {"arn": reboot}]}
    env = StartImageBuildEnvironment.model_validate({**ENVIRON, "APP_RECIPE": json.dumps(recipe)})
    aws.expect_bake()
    # When the bake starts (the Stubber validates the request against the API model)
    with aws.stub:
        logic.run(
            start_input(base_ami_id=BASE_AMI),
            CONFIG,
            env,
            imagebuilder=ImageBuilder(aws.imagebuilder),
            templates=FleetReferences(no_ec2()),
            images=Images(no_ec2()),
        )
    # Then that component is named alone
    assert aws.requests("CreateImageRecipe")[0]["components"][2] == {"componentArn": reboot}


def test_recipe_names_and_client_tokens_are_deterministic_per_execution_and_commit() -> None:
    # Given bakes of two commits in two executions (one with the longest execution id Step Functions allows)
    long_execution = "arn:aws:states:eu-west-1:123456789012:execution:deploy:" + "x" * 1990
    pairs = [(e, c) for e in (EXECUTION, long_execution) for c in (COMMIT, OTHER_COMMIT)]
    # When their names and tokens are derived
    names = {pair: logic.recipe_name(ENV.app_recipe, *pair) for pair in pairs}
    tokens = {
        (kind, *pair): logic.client_token(pair[0], f"{kind}|{pair[1]}") for pair in pairs for kind in ("recipe", "app")
    }
    # Then the same bake always gets the same ones, every bake others, all within Image Builder's limits
    assert names == {pair: logic.recipe_name(ENV.app_recipe, *pair) for pair in pairs}
    assert tokens == {key: logic.client_token(key[1], f"{key[0]}|{key[2]}") for key in tokens}
    assert len(set(names.values())) == len(names)
    assert len(set(tokens.values())) == len(tokens)
    assert all(re.fullmatch(r"^[-_A-Za-z-0-9][-_A-Za-z0-9 ]{1,126}[-_A-Za-z-0-9]$", n) for n in names.values())
    assert all(1 <= len(t) <= MAX_CLIENT_TOKEN_LENGTH for t in tokens.values())


def test_retry_of_the_same_execution_sends_the_same_requests_and_gets_the_same_recipe_and_build(aws: Aws) -> None:
    # Given a first start whose answer was lost after the recipe and the build were made
    aws.expect_bake()
    first = aws.run(start_input(base_ami_id=BASE_AMI))
    # When the state machine retries it: the recipe exists (same name), the build's client token is the same
    aws.expect_bake(recipe_exists=True)
    second = aws.run(start_input(base_ami_id=BASE_AMI))
    # Then the same requests went out, the existing recipe is used, and the answer names the same build
    first_recipe, second_recipe = aws.requests("CreateImageRecipe")
    first_image, second_image = aws.requests("CreateImage")
    assert (first_recipe, first_image) == (second_recipe, second_image)
    assert second_image["imageRecipeArn"] == recipe_arn()
    assert first == second


def test_adapter_passes_on_any_other_recipe_error() -> None:
    # Given Image Builder refuses the recipe for another reason than "already exists"
    imagebuilder = SESSION.client("imagebuilder")
    with Stubber(imagebuilder) as stub:
        stub.add_client_error("create_image_recipe", service_error_code="InvalidParameterValueException")
        request = {
            "name": "web-app-app-0123456789ab",
            "semanticVersion": RECIPE_VERSION,
            "parentImage": BASE_AMI,
            "components": [{"componentArn": INSTALL_COMPONENT}],
            "clientToken": "recipe-token",
        }
        # When / Then the error is not mistaken for this bake's own recipe
        with pytest.raises(ClientError, match="InvalidParameterValueException"):
            ImageBuilder(imagebuilder).create_recipe(request, recipe_arn())


# --- app image: which base ---------------------------------------------------------------------------------


def _described(image_id: str, created: str, pipeline: str, state: str = "available") -> dict[str, Any]:
    return {
        "ImageId": image_id,
        "State": state,
        "CreationDate": created,
        "Name": f"web-app-{pipeline}-{created}",
        "Tags": [{"Key": tags.APPLICATION, "Value": "web-app"}, {"Key": tags.PIPELINE, "Value": pipeline}],
    }


def test_app_bakes_on_the_newest_available_base_image_of_the_application_by_creation_date(aws: Aws) -> None:
    # Given this application's images: older and newer available bases, a newer base still pending, a newer app
    ec2 = SESSION.client("ec2")
    newest_available = "ami-0000000000000000b"
    with Stubber(ec2) as ec2_stub:
        ec2_stub.add_response(
            "describe_images",
            {
                "Images": [
                    _described("ami-0000000000000000a", "2026-11-01T03:00:00.000Z", "base"),
                    _described("ami-0000000000000000d", "2026-11-29T03:00:00.000Z", "app"),
                    _described(newest_available, "2026-11-20T03:00:00.000Z", "base"),
                    _described("ami-0000000000000000c", "2026-11-28T03:00:00.000Z", "base", state="pending"),
                ]
            },
            # Only this application's images are listed: another application's base is never a candidate.
            {
                "Owners": ["self"],
                "Filters": [{"Name": f"tag:{tags.APPLICATION}", "Values": ["web-app"]}],
                "MaxResults": 1000,
            },
        )
        aws.expect_bake(base=newest_available)
        # When a deploy bakes without a base named
        output = aws.run(start_input(), ec2=ec2)
    # Then the recipe's parent is the newest base that is available
    assert output["bakes"][0]["baseAmiId"] == newest_available
    assert aws.requests("CreateImageRecipe")[0]["parentImage"] == newest_available


def test_base_images_of_other_applications_and_app_images_are_never_the_parent(aws: Aws) -> None:
    # Given (in moto) a base of this application, then a base of another application and an app image of this one
    ours = aws.base_image()
    aws.base_image(application="billing")
    aws.register({tags.APPLICATION: "web-app", tags.PIPELINE: "app"})
    aws.expect_bake(base=ours)
    # When a deploy bakes
    output = aws.run(start_input())
    # Then it starts from this application's base
    assert output["bakes"][0]["baseAmiId"] == ours


def test_a_requested_base_ami_is_used_without_looking_for_one(aws: Aws) -> None:
    # Given the base bake of this execution just made BASE_AMI
    aws.expect_bake(base=BASE_AMI)
    # When the app bake starts on it (no EC2 call may happen)
    output = aws.run(start_input(action="deploy", base_ami_id=BASE_AMI), ec2=no_ec2())
    # Then that very AMI is the parent
    assert output["bakes"][0]["baseAmiId"] == BASE_AMI


def test_no_base_image_yet_raises_base_image_missing_and_creates_nothing(aws: Aws) -> None:
    # Given a fresh account: only another application has a base image
    aws.base_image(application="billing")
    # When / Then the state machine is told to bake the base first (the Stubber has no responses: nothing is made)
    with pytest.raises(BaseImageMissing, match="no available base image of web-app exists yet"):
        aws.run(start_input())
    assert aws.sent == []


# --- rebuild-base: one bake per commit the targets run -------------------------------------------------------


def test_rebuild_base_bakes_one_image_per_distinct_commit_in_first_seen_order(aws: Aws) -> None:
    # Given three targets: test runs COMMIT, prod's first runs OTHER_COMMIT and its second COMMIT again
    config = aws.fleet(COMMIT, OTHER_COMMIT, COMMIT)
    first = aws.expect_bake(COMMIT)
    second = aws.expect_bake(OTHER_COMMIT)
    # When the rebuild bakes the app on the new base (no commit in the request)
    output = aws.run(start_input(action="rebuild-base", base_ami_id=BASE_AMI), config)
    # Then each commit is baked once, in the order the targets first name it, each from its own recipe
    assert [r["parentImage"] for r in aws.requests("CreateImageRecipe")] == [BASE_AMI, BASE_AMI]
    assert output["bakes"] == [
        {"commit": COMMIT, "imageBuildVersionArn": first, "recipeArn": recipe_arn(COMMIT), "baseAmiId": BASE_AMI},
        {
            "commit": OTHER_COMMIT,
            "imageBuildVersionArn": second,
            "recipeArn": recipe_arn(OTHER_COMMIT),
            "baseAmiId": BASE_AMI,
        },
    ]
    assert (output["commitsFrom"], output["commit"], output["imageBuildVersionArn"]) == ("targets", COMMIT, first)


def test_rebuild_base_reads_the_default_version_not_the_latest(aws: Aws) -> None:
    # Given the target's default version (1) runs COMMIT and its newer version 2 another commit
    config = aws.fleet(COMMIT)
    aws.expect_bake(COMMIT)
    # When the app is rebuilt
    output = aws.run(start_input(action="rebuild-base", stages=["test"], base_ami_id=BASE_AMI), config)
    # Then the default version's commit is baked
    assert [b["commit"] for b in output["bakes"]] == [COMMIT]


def test_rebuild_base_of_some_stages_reads_only_their_targets(aws: Aws) -> None:
    # Given test runs COMMIT and prod OTHER_COMMIT, and only prod is requested
    config = aws.fleet(COMMIT, OTHER_COMMIT)
    aws.expect_bake(OTHER_COMMIT)
    # When the app is rebuilt for prod
    output = aws.run(start_input(action="rebuild-base", stages=["prod"], base_ami_id=BASE_AMI), config)
    # Then only prod's commit is baked
    assert [b["commit"] for b in output["bakes"]] == [OTHER_COMMIT]


@pytest.mark.parametrize(
    ("commit", "message"),
    [
        (None, r"cannot tell which commit is deployed: .* no immutable-ami:commit tag"),
        ("3f2c1e9", r"tag '3f2c1e9' is not a full commit SHA"),
        (f"{COMMIT}\nPARAM", r"is not a full commit SHA"),
    ],
    ids=["no-commit-tag", "short-sha", "line-break"],
)
def test_rebuild_base_refuses_a_target_whose_ami_names_no_full_commit_and_bakes_nothing(
    aws: Aws, commit: str | None, message: str
) -> None:
    # Given test runs COMMIT, but prod's AMI has no commit tag (the fleet's original image) or not a full SHA
    config = aws.fleet(COMMIT, commit)
    # When / Then nothing is made (not even test's bake), and the reason is named
    with pytest.raises(InvalidInput, match=message):
        aws.run(start_input(action="rebuild-base", base_ami_id=BASE_AMI), config)
    assert aws.sent == []


def test_rebuild_base_fails_clearly_when_the_deployed_ami_is_not_ours(aws: Aws) -> None:
    # Given the default version names an AMI that DescribeImages does not know (deregistered, or another owner's)
    template = aws.template_running("ami-0fedcba9876543210", "web-app-test")
    config = json.loads(json.dumps(SAMPLE_DEPLOY_CONFIG))
    config["stages"][0]["targets"][0]["launchTemplateId"] = template
    # When / Then
    with pytest.raises(InvalidInput, match=r"cannot tell which commit is deployed: .* not an image this account owns"):
        aws.run(
            start_input(action="rebuild-base", stages=["test"], base_ami_id=BASE_AMI),
            DeployConfig.model_validate(config),
        )
    assert aws.sent == []


def test_rebuild_base_fails_when_a_targets_template_does_not_exist(aws: Aws) -> None:
    # Given the configured template does not exist (the sample config's ids are not in moto)
    # When / Then the launch template error is named
    with pytest.raises(LaunchTemplateNotFound, match="lt-0aaaaaaaaaaaaaaa1"):
        aws.run(start_input(action="rebuild-base", base_ami_id=BASE_AMI))


def test_app_build_without_a_configured_source_is_invalid(aws: Aws) -> None:
    # Given no source in the configuration
    config = CONFIG.model_copy(update={"source": None})
    # When / Then
    with pytest.raises(InvalidInput, match="no source is configured"):
        aws.run(start_input(base_ami_id=BASE_AMI), config)
    assert aws.sent == []


# --- base image ----------------------------------------------------------------------------------


def test_base_pipeline_starts_with_the_executions_client_token_as_a_bake_of_one(aws: Aws) -> None:
    # Given the first bake of rebuild-base (or of a deploy on a fresh account)
    token = logic.client_token(EXECUTION, "base")
    aws.expect_start(BASE_PIPELINE, token, BASE_BUILD_ARN)
    config = aws.fleet(COMMIT, COMMIT)
    # When it starts
    output = aws.run(start_input("base", action="rebuild-base"), config)
    # Then the base pipeline runs, and no recipe is made
    bases = output.pop("runningBases")
    assert output == {
        "pipeline": "base",
        "imageBuildVersionArn": BASE_BUILD_ARN,
        "commit": None,
        "clientToken": token,
        "dryRun": False,
        "startedAt": STARTED_AT,
        "bakes": [{"commit": None, "imageBuildVersionArn": BASE_BUILD_ARN, "recipeArn": None, "baseAmiId": None}],
        "commitsFrom": "request",
    }
    assert aws.requests("CreateImageRecipe") == []
    # And it recorded what the targets' images were built on (these carry no base-image tag)
    assert len(bases) == 2
    assert all(b.startswith("unknown base of ami-") for b in bases)


def test_rebuild_base_refuses_a_target_it_could_not_rebake_before_baking_the_base(aws: Aws) -> None:
    # Given prod's AMI names no commit
    config = aws.fleet(COMMIT, None)
    # When / Then the base bake does not start: the rebuild would fail after it anyway
    with pytest.raises(InvalidInput, match="no immutable-ami:commit tag"):
        aws.run(start_input("base", action="rebuild-base"), config)
    assert aws.sent == []


def test_rebuild_base_records_the_bases_the_targets_run_on(aws: Aws) -> None:
    # Given both targets run images tagged with the base they were built on
    aws.expect_start(BASE_PIPELINE, logic.client_token(EXECUTION, "base"), BASE_BUILD_ARN)
    config = aws.fleet(COMMIT, OTHER_COMMIT)
    for target in [t for stage in config.stages for t in stage.targets]:
        ami = aws.ec2.describe_launch_template_versions(LaunchTemplateId=target.launch_template_id)[
            "LaunchTemplateVersions"
        ][0]["LaunchTemplateData"]["ImageId"]
        aws.ec2.create_tags(Resources=[ami], Tags=[{"Key": tags.BASE_IMAGE, "Value": BASE_AMI}])
    # When the base bake starts
    output = aws.run(start_input("base", action="rebuild-base"), config)
    # Then the one base they run on is recorded, for check_image_build's "unchanged" verdict
    assert output["runningBases"] == [BASE_AMI]


def test_a_deploy_on_a_fresh_account_may_bake_the_base_first(aws: Aws) -> None:
    # Given the state machine's StartBaseBuildFirst after BaseImageMissing
    aws.expect_start(BASE_PIPELINE, logic.client_token(EXECUTION, "base"), BASE_BUILD_ARN)
    # When the deploy starts the base pipeline
    output = aws.run(start_input("base", action="deploy"), ec2=no_ec2())
    # Then the base build runs
    assert output["imageBuildVersionArn"] == BASE_BUILD_ARN


@pytest.mark.parametrize(
    ("pipeline", "action", "base_ami_id", "message"),
    [
        ("app", "deploy-image", None, 'action "deploy-image" bakes no image'),
        ("base", "rollback", None, 'action "rollback" bakes no image'),
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
        aws.run(request, ec2=no_ec2())
    assert aws.sent == []


def test_base_retry_sends_the_same_client_token_and_gets_the_same_build(aws: Aws) -> None:
    # Given Image Builder answers a repeated client token with the original build
    token = logic.client_token(EXECUTION, "base")
    # When the step runs twice for the same execution
    config = aws.fleet(COMMIT, COMMIT)
    aws.expect_start(BASE_PIPELINE, token)
    first = aws.run(start_input("base", action="rebuild-base"), config)
    aws.expect_start(BASE_PIPELINE, token)
    second = aws.run(start_input("base", action="rebuild-base"), config)
    # Then both name the same token and build
    assert first == second


def test_client_token_is_stable_distinct_and_within_the_api_limit() -> None:
    # Given a very long execution id (the ARN can reach 2048 characters)
    long_execution = "arn:aws:states:eu-west-1:123456789012:execution:deploy:" + "x" * 1990
    # When tokens are derived
    tokens = {
        (execution, what): logic.client_token(execution, what)
        for execution in (EXECUTION, f"{EXECUTION}-2", long_execution)
        for what in ("base", f"app|{COMMIT}", f"recipe|{COMMIT}")
    }
    # Then each is deterministic, distinct per execution and what it creates, within the API Reference's 36
    assert all(logic.client_token(e, w) == t for (e, w), t in tokens.items())
    assert len(set(tokens.values())) == len(tokens)
    assert all(1 <= len(t) <= MAX_CLIENT_TOKEN_LENGTH == 36 for t in tokens.values())


def test_adapter_refuses_a_client_token_longer_than_the_api_allows() -> None:
    with pytest.raises(ValueError, match="1 to 36"):
        ImageBuilder(SESSION.client("imagebuilder")).start_pipeline(BASE_PIPELINE, "t" * 37)


def test_adapter_translates_a_missing_pipeline() -> None:
    # Given Image Builder does not know the pipeline
    imagebuilder = SESSION.client("imagebuilder")
    with Stubber(imagebuilder) as stub:
        stub.add_client_error("start_image_pipeline_execution", service_error_code="ResourceNotFoundException")
        # When / Then
        with pytest.raises(ImagePipelineNotFound, match="web-app-base"):
            ImageBuilder(imagebuilder).start_pipeline(BASE_PIPELINE, "base-token")


# --- dry run -------------------------------------------------------------------------------------


def test_dry_run_resolves_the_commits_and_the_base_and_creates_nothing(aws: Aws) -> None:
    # Given a rebuild-base app bake in dry run, over two targets with two commits, and a base image
    config = aws.fleet(COMMIT, OTHER_COMMIT)
    base = aws.base_image()
    # When it runs (the Stubber has no responses: a recipe or build would fail the test)
    output = aws.run(start_input(action="rebuild-base", dry_run=True), config)
    # Then it reports what it would bake, on which base, and makes nothing
    assert output == {
        "pipeline": "app",
        "imageBuildVersionArn": None,
        "commit": COMMIT,
        "clientToken": logic.client_token(EXECUTION, f"app|{COMMIT}"),
        "dryRun": True,
        "startedAt": None,
        "bakes": [
            {"commit": COMMIT, "imageBuildVersionArn": None, "recipeArn": None, "baseAmiId": base},
            {"commit": OTHER_COMMIT, "imageBuildVersionArn": None, "recipeArn": None, "baseAmiId": base},
        ],
        "commitsFrom": "targets",
        "runningBases": [],
    }
    assert aws.sent == []


def test_dry_run_flag_of_the_request_alone_also_creates_nothing(aws: Aws) -> None:
    # Given a payload whose request says dryRun while the top-level flag was left out
    request = StartImageBuildInput.model_validate(
        {"executionId": EXECUTION, "request": request_dict(dryRun=True), "pipeline": "app", "baseAmiId": BASE_AMI}
    )
    # When it runs (no start may happen)
    output = aws.run(request, ec2=no_ec2())
    # Then nothing is made
    assert (output["dryRun"], output["imageBuildVersionArn"]) == (True, None)
    assert aws.sent == []


def test_dry_run_of_the_base_pipeline_starts_nothing(aws: Aws) -> None:
    output = aws.run(start_input("base", action="rebuild-base", dry_run=True), aws.fleet(COMMIT, COMMIT))

    assert output["bakes"] == [{"commit": None, "imageBuildVersionArn": None, "recipeArn": None, "baseAmiId": None}]
    assert aws.sent == []


# --- environment and handler ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"APP_RECIPE": None}, "APP_RECIPE: required field is missing"),
        ({"APP_RECIPE": "{"}, "APP_RECIPE: Invalid JSON"),
        ({"APP_RECIPE": json.dumps({**APP_RECIPE, "components": []})}, "APP_RECIPE.components: Tuple should have"),
        ({"APP_RECIPE": json.dumps({**APP_RECIPE, "version": "1.2"})}, "APP_RECIPE.version: String should match"),
        ({"INFRASTRUCTURE_ARN": "web-app-build"}, "INFRASTRUCTURE_ARN: String should match pattern"),
        ({"APP_DISTRIBUTION_ARN": None}, "APP_DISTRIBUTION_ARN: required field is missing"),
        ({"IMAGE_TESTS_TIMEOUT_MINUTES": "30"}, "IMAGE_TESTS_TIMEOUT_MINUTES: Input should be greater than or equal"),
        ({"BASE_PIPELINE_ARN": "web-app-base"}, "BASE_PIPELINE_ARN: String should match pattern"),
        ({"AWS_REGION": None}, "AWS_REGION: required field is missing"),
    ],
)
def test_start_image_build_environment_names_the_missing_or_bad_variable(
    change: dict[str, str | None], message: str
) -> None:
    environ = {k: v for k, v in {**ENVIRON, **change}.items() if v is not None}
    with pytest.raises(ConfigurationError, match=f"start_image_build function environment: {re.escape(message)}"):
        load_environment(StartImageBuildEnvironment, "start_image_build", environ)


@pytest.fixture
def handler(aws: Aws, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in ENVIRON.items():
        monkeypatch.setenv(key, value)
    module = importlib.import_module("start_image_build.handler")
    monkeypatch.setattr(module, "ENV", ENV)
    monkeypatch.setattr(module, "imagebuilder", lambda: ImageBuilder(aws.imagebuilder))
    monkeypatch.setattr(module, "fleet", lambda: FleetReferences(aws.ec2))
    monkeypatch.setattr(module, "images", lambda: Images(aws.ec2))
    return module


def test_handler_bakes_the_app_on_the_newest_base(handler: Any, aws: Aws, lambda_context: Any) -> None:
    # Given the state machine's payload for a deploy, and a base image in the account
    base = aws.base_image()
    event = {"executionId": EXECUTION, "request": request_dict(), "pipeline": "app", "baseAmiId": None}
    build = aws.expect_bake(base=base)
    # When the handler runs
    with aws.stub:
        output = handler.lambda_handler(event, lambda_context)
    # Then the JSON answer is the documented shape
    assert output == {
        "pipeline": "app",
        "imageBuildVersionArn": build,
        "commit": COMMIT,
        "clientToken": logic.client_token(EXECUTION, f"app|{COMMIT}"),
        "dryRun": False,
        "startedAt": STARTED_AT,
        "bakes": [{"commit": COMMIT, "imageBuildVersionArn": build, "recipeArn": recipe_arn(), "baseAmiId": base}],
        "commitsFrom": "request",
        "runningBases": [],
    }


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
    assert aws.sent == []
