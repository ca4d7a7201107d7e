"""The synthesized stack, property by property (not resource counts)."""

from __future__ import annotations

import importlib
import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from shared import tags as lambda_tags
from shared.config import DeployConfig
from stacks.config import PROJECT_ROOT
from stacks.steps import BY_FOLDER
from tests.infra.conftest import Synthesized, example_config, synthesize, variant
from tests.infra.event_pattern import matches

IMAGEBUILDER_ARN = "arn:<AWS::Partition>:imagebuilder:<AWS::Region>:<AWS::AccountId>"
IMAGE_ARN = f"{IMAGEBUILDER_ARN}:image"
EXTRA_REGIONS = ["us-east-1", "ap-southeast-2"]
REPO_ARN = {
    "Fn::Join": [
        "",
        [
            "arn:",
            {"Ref": "AWS::Partition"},
            ":codecommit:",
            {"Ref": "AWS::Region"},
            ":",
            {"Ref": "AWS::AccountId"},
            ":web-app",
        ],
    ]
}


def render(value: Any) -> Any:
    """A template value as text: `Ref` and `Fn::GetAtt` as <name> and <logical id.attribute>, joins joined."""
    if isinstance(value, list):
        return [render(v) for v in value]
    if isinstance(value, dict):
        if "Ref" in value:
            return f"<{value['Ref']}>"
        if "Fn::GetAtt" in value:
            return "<{}.{}>".format(*value["Fn::GetAtt"])
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return separator.join(render(p) for p in parts)
    return value


def function_of(synth: Synthesized, step: str) -> tuple[str, dict[str, Any]]:
    """The logical id and properties of the step's function."""
    return next(
        (logical_id, f["Properties"])
        for logical_id, f in synth.resources("AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == f"{step}.handler.lambda_handler"
    )


def statements_of(synth: Synthesized, step: str) -> list[dict[str, Any]]:
    """The statements of the step's own role."""
    role = render(function_of(synth, step)[1]["Role"]).removeprefix("<").removesuffix(".Arn>")
    return [
        statement
        for policy in synth.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def grants_of(synth: Synthesized, step: str) -> dict[str, set[str]]:
    """Every action the step's role is granted, with the (rendered) resources it is granted on."""
    grants: dict[str, set[str]] = {}
    for statement in statements_of(synth, step):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = render(statement["Resource"])
        for action in actions:
            grants.setdefault(action, set()).update(resources if isinstance(resources, list) else [resources])
    return grants


def logical_id(synth: Synthesized, type_name: str, name: str) -> str:
    (found,) = [k for k, v in synth.resources(type_name).items() if v["Properties"].get("Name") == name]
    return found


@pytest.fixture(scope="module")
def synthesized_regions(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    """AMI copies distributed to two more regions (build.extraRegions)."""
    config = variant(build={**example_config()["build"], "extraRegions": EXTRA_REGIONS})
    return synthesize(config, tmp_path_factory.mktemp("cdk-regions"))


def codecommit_event(event: str = "referenceUpdated", ref: str = "main", ref_type: str = "branch") -> dict[str, Any]:
    """Shaped like the samples in AWS's CodeCommit event documentation."""
    return {
        "version": "0",
        "id": "01234567-0123-0123-0123-012345678901",
        "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit",
        "account": "123456789012",
        "time": "2026-11-21T12:00:00Z",
        "region": "eu-west-1",
        "resources": ["arn:aws:codecommit:eu-west-1:123456789012:web-app"],
        "detail": {
            "event": event,
            "repositoryName": "web-app",
            "repositoryId": "12345678-1234-5678-abcd-12345678abcd",
            "referenceType": ref_type,
            "referenceName": ref,
            "referenceFullName": f"refs/{'heads' if ref_type == 'branch' else 'tags'}/{ref}",
            "commitId": "3f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
            "oldCommitId": "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567",
        },
    }


def resolved_pattern(synth: Synthesized) -> dict[str, Any]:
    rules = [
        r
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.codecommit"]
    ]
    assert len(rules) == 1
    pattern = json.loads(json.dumps(rules[0]["Properties"]["EventPattern"]))
    assert pattern["resources"] == [REPO_ARN]
    pattern["resources"] = ["arn:aws:codecommit:eu-west-1:123456789012:web-app"]
    return pattern


# -- Image Builder ---------------------------------------------------------------------------


def test_only_the_base_image_has_a_pipeline_and_a_recipe_in_the_template(synthesized: Synthesized) -> None:
    # The app image has neither: start_image_build makes a recipe per bake and builds it with CreateImage.
    pipelines = synthesized.resources("AWS::ImageBuilder::ImagePipeline")
    recipes = synthesized.resources("AWS::ImageBuilder::ImageRecipe")

    assert [p["Properties"]["Name"] for p in pipelines.values()] == ["web-app-base"]
    assert [r["Properties"]["Name"] for r in recipes.values()] == ["web-app-base"]
    (pipeline,) = pipelines.values()
    assert pipeline["Properties"]["ImageTestsConfiguration"]["ImageTestsEnabled"] is True
    assert "Schedule" not in pipeline["Properties"]  # the daily rebuild is a state machine run
    assert "AppPipelineArn" not in synthesized.json["Outputs"]


def test_base_recipe_is_built_on_the_latest_managed_parent(synthesized: Synthesized) -> None:
    (recipe,) = synthesized.resources("AWS::ImageBuilder::ImageRecipe").values()

    assert ":aws:image/amazon-linux-2023-x86/x.x.x" in json.dumps(recipe["Properties"]["ParentImage"])


def test_no_build_source_parameter_is_left(synthesized: Synthesized) -> None:
    # Each bake's recipe holds its commit: no SSM parameter shared by executions, no function told of one.
    parameters = [p["Properties"].get("Name", "") for p in synthesized.resources("AWS::SSM::Parameter").values()]
    environments = [
        f["Properties"].get("Environment", {}).get("Variables", {})
        for f in synthesized.resources("AWS::Lambda::Function").values()
    ]

    assert not [name for name in parameters if "build-source" in json.dumps(name)]
    assert not [env for env in environments if {"BUILD_SOURCE_PARAMETER", "APP_PIPELINE_ARN"} & set(env)]


def test_start_image_build_gets_the_app_recipe_whose_components_are_the_app_components(
    synthesized: Synthesized,
) -> None:
    _, fn = function_of(synthesized, "start_image_build")
    env = fn["Environment"]["Variables"]
    install = logical_id(synthesized, "AWS::ImageBuilder::Component", "web-app-app-install")
    test = logical_id(synthesized, "AWS::ImageBuilder::Component", "web-app-app-test")

    recipe = json.loads(render(env["APP_RECIPE"]))

    # The app components with their static parameters; app-install gets the bake's source, app-test its commit
    assert recipe == {
        "name": "web-app-app",
        "version": example_config()["appImage"]["version"],
        "components": [
            {"arn": f"<{install}.Arn>", "parameters": {"InstallScript": "deploy/install.sh"}, "fill": "install"},
            {"arn": f"<{test}.Arn>", "parameters": {"TestScript": "deploy/test.sh"}, "fill": "test"},
        ],
    }
    # What the function parses at cold start (its own model, under the name the function imports it by)
    importlib.import_module("start_image_build.models").AppRecipe.model_validate(recipe)
    assert (
        render(env["BASE_PIPELINE_ARN"])
        == f"<{logical_id(synthesized, 'AWS::ImageBuilder::ImagePipeline', 'web-app-base')}.Arn>"
    )
    assert (
        render(env["INFRASTRUCTURE_ARN"])
        == f"<{logical_id(synthesized, 'AWS::ImageBuilder::InfrastructureConfiguration', 'web-app-build')}.Arn>"
    )
    assert (
        render(env["APP_DISTRIBUTION_ARN"])
        == f"<{logical_id(synthesized, 'AWS::ImageBuilder::DistributionConfiguration', 'web-app-app')}.Arn>"
    )
    assert env["IMAGE_TESTS_TIMEOUT_MINUTES"] == "120"


def test_start_image_build_may_create_only_this_apps_recipes_and_images_from_the_stacks_configurations(
    synthesized: Synthesized,
) -> None:
    grants = grants_of(synthesized, "start_image_build")
    arn = "<{}.Arn>".format

    assert grants["imagebuilder:CreateImageRecipe"] == {f"{IMAGEBUILDER_ARN}:image-recipe/web-app-app-????????????/*"}
    assert grants["imagebuilder:GetImageRecipe"] == {f"{IMAGEBUILDER_ARN}:image-recipe/web-app-app-????????????/*"}
    assert grants["imagebuilder:CreateImage"] == {f"{IMAGE_ARN}/web-app-app-????????????/*"}
    assert grants["imagebuilder:TagResource"] == {
        f"{IMAGEBUILDER_ARN}:image-recipe/web-app-app-????????????/*",
        f"{IMAGE_ARN}/web-app-app-????????????/*",
    }
    assert grants["imagebuilder:GetInfrastructureConfiguration"] == {
        arn(logical_id(synthesized, "AWS::ImageBuilder::InfrastructureConfiguration", "web-app-build"))
    }
    assert grants["imagebuilder:GetDistributionConfiguration"] == {
        arn(logical_id(synthesized, "AWS::ImageBuilder::DistributionConfiguration", "web-app-app"))
    }
    assert grants["imagebuilder:GetComponent"] == {
        arn(logical_id(synthesized, "AWS::ImageBuilder::Component", name))
        for name in ("web-app-app-install", "web-app-app-test")
    }
    # Only the base image has a pipeline; nothing may write an SSM parameter any more
    assert grants["imagebuilder:StartImagePipelineExecution"] == {
        arn(logical_id(synthesized, "AWS::ImageBuilder::ImagePipeline", "web-app-base"))
    }
    assert not [action for action in grants if action.startswith("ssm:Put")]


def test_check_image_build_may_cancel_and_read_only_this_apps_builds(synthesized: Synthesized) -> None:
    grants = grants_of(synthesized, "check_image_build")
    builds = {f"{IMAGE_ARN}/web-app-base/*", f"{IMAGE_ARN}/web-app-app-????????????/*"}

    assert grants["imagebuilder:CancelImageCreation"] == builds
    assert grants["imagebuilder:GetImage"] == builds
    assert grants_of(synthesized, "register_wait")["imagebuilder:GetImage"] == builds


@pytest.mark.parametrize(("fixture", "extra"), [("synthesized", []), ("synthesized_regions", EXTRA_REGIONS)])
def test_check_image_build_may_tag_this_apps_amis_in_every_region_they_are_distributed_to(
    fixture: str, extra: list[str], request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)
    (distribution,) = [
        d["Properties"]["Distributions"]
        for d in synth.resources("AWS::ImageBuilder::DistributionConfiguration").values()
        if d["Properties"]["Name"] == "web-app-app"
    ]
    regions = [render(d["Region"]) for d in distribution]
    (statement,) = [
        s
        for s in statements_of(synth, "check_image_build")
        if s["Action"] == "ec2:CreateTags" and ":image/" in json.dumps(render(s["Resource"]))
    ]

    assert regions == ["<AWS::Region>", *extra]
    resources = render(statement["Resource"])
    assert (resources if isinstance(resources, list) else [resources]) == [
        f"arn:<AWS::Partition>:ec2:{region}::image/*" for region in regions
    ]
    assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/immutable-ami:application": "web-app"}}


def test_component_documents_are_the_files_in_the_repository(synthesized: Synthesized) -> None:
    components = {
        c["Properties"]["Name"]: c["Properties"] for c in synthesized.resources("AWS::ImageBuilder::Component").values()
    }

    assert set(components) == {"web-app-base-hardening", "web-app-app-install", "web-app-app-test"}
    assert components["web-app-app-test"]["Data"] == (PROJECT_ROOT / "imagebuilder/components/app-test.yml").read_text()
    for component in components.values():
        assert re.fullmatch(r"1\.0\.\d+", component["Version"])


def test_build_instances_terminate_on_failure_and_require_imdsv2(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::ImageBuilder::InfrastructureConfiguration",
        {
            "TerminateInstanceOnFailure": True,
            "InstanceMetadataOptions": {"HttpTokens": "required"},
            "InstanceProfileName": Match.any_value(),
        },
    )


def test_distribution_names_amis_by_build_date_tags_them_and_records_the_latest_in_ssm(
    synthesized: Synthesized,
) -> None:
    distributions = synthesized.resources("AWS::ImageBuilder::DistributionConfiguration")

    for dist in distributions.values():
        kind = dist["Properties"]["Name"].removeprefix("web-app-")
        home = dist["Properties"]["Distributions"][0]
        ami = home["AmiDistributionConfiguration"]
        assert ami["Name"] == f"web-app-{kind}-{{{{ imagebuilder:buildDate }}}}"
        assert ami["AmiTags"] == {lambda_tags.APPLICATION: "web-app", lambda_tags.PIPELINE: kind}
        assert home["SsmParameterConfigurations"] == [
            {"ParameterName": f"/immutable-ami/web-app/{kind}/latest-ami", "DataType": "aws:ec2:image"}
        ]


# -- Deploy workflow -------------------------------------------------------------------------


def test_state_machine_is_standard_with_logging_all_and_tracing_but_no_execution_data(synthesized: Synthesized) -> None:
    # Execution data holds task tokens (an approval's among them): it stays out of the log group.
    synthesized.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": False, "Destinations": Match.any_value()},
            "TracingConfiguration": {"Enabled": True},
        },
    )
    synthesized.template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/aws/vendedlogs/states/web-app-deploy", "RetentionInDays": 90}
    )


@pytest.mark.parametrize("step", sorted(BY_FOLDER))
def test_every_step_function_runs_latest_python_on_arm64_with_powertools_layer(
    synthesized: Synthesized, step: str
) -> None:
    functions = [f["Properties"] for f in synthesized.resources("AWS::Lambda::Function").values()]
    fn = next(f for f in functions if f["Handler"] == f"{step}.handler.lambda_handler")

    assert fn["Runtime"] == "python3.14"
    assert fn["Architectures"] == ["arm64"]
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert "/aws/service/powertools/python/arm64/python3.14/" in json.dumps(fn["Layers"])  # test_powertools_layer
    assert (PROJECT_ROOT / "lambdas" / step / "handler.py").is_file()


def test_functions_receive_a_deploy_config_the_handlers_parse(synthesized: Synthesized) -> None:
    functions = [f["Properties"] for f in synthesized.resources("AWS::Lambda::Function").values()]
    raw = next(f for f in functions if f["Handler"].startswith("validate_request."))["Environment"]["Variables"][
        "DEPLOY_CONFIG"
    ]

    config = DeployConfig.model_validate_json(raw)

    assert [s.name for s in config.stages] == ["test", "prod"]
    assert config.retention.keep_launch_template_versions == 5


def test_each_function_has_its_own_role_without_managed_policies(synthesized: Synthesized) -> None:
    functions = synthesized.resources("AWS::Lambda::Function").values()
    roles = [json.dumps(f["Properties"]["Role"]) for f in functions]
    assert len(set(roles)) == len(roles)
    for role in synthesized.resources("AWS::IAM::Role").values():
        if "lambda.amazonaws.com" in json.dumps(role["Properties"]["AssumeRolePolicyDocument"]):
            assert "ManagedPolicyArns" not in role["Properties"]


def test_lock_table_expires_locks_and_has_point_in_time_recovery(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "target", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": "expiresAt", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
        },
    )


def test_topic_is_kms_encrypted_and_refuses_plain_http(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": Match.any_value()})
    synthesized.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            }
        },
    )
    synthesized.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "platform-team@example.com"}
    )


MUTATING_PREFIXES = ("ec2:", "autoscaling:")
READ_ONLY = re.compile(r"^(ec2|autoscaling):(Describe|Get|List)")


def _statements(synth: Synthesized) -> list[dict[str, Any]]:
    found = []
    for policy in synth.resources("AWS::IAM::Policy").values():
        found.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return found


@pytest.mark.parametrize("fixture", ["synthesized", "synthesized_github", "synthesized_fleet"])
def test_mutating_ec2_and_autoscaling_actions_are_never_granted_on_star(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)
    for statement in _statements(synth):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        mutating = [a for a in actions if a.startswith(MUTATING_PREFIXES) and not READ_ONLY.match(a)]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if mutating:
            assert "*" not in resources, f"{mutating} granted on *"
            assert "*" not in mutating


def test_deregister_image_is_limited_to_this_applications_images(synthesized: Synthesized) -> None:
    statement = next(s for s in _statements(synthesized) if s["Action"] == "ec2:DeregisterImage")

    assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/immutable-ami:application": "web-app"}}


def test_refresh_steps_may_launch_only_from_configured_templates_and_green_only_from_blue_green_ones(
    synthesized: Synthesized,
) -> None:
    conditioned = [s for s in _statements(synthesized) if s.get("Sid") == "LaunchOnlyFromConfiguredTemplates"]

    # start_instance_refresh and rollback: every configured template; create_green_group: the blue-green ones;
    # finish_execution (which rolls back only rolling targets): the rolling ones
    assert len(conditioned) == 4
    every = {"lt-0123456789abcdef0", "lt-0fedcba9876543210", "lt-0aaaabbbbccccdddd"}
    seen = sorted(
        len({t for t in every if t in json.dumps(s["Condition"]["ArnLike"]["ec2:LaunchTemplate"])}) for s in conditioned
    )
    assert seen == [1, 2, 3, 3]


def test_blue_green_steps_may_not_change_a_rolling_stages_group_or_template(synthesized: Synthesized) -> None:
    # Given the example configuration, whose test stage (web-app-test, lt-0123456789abcdef0) rolls
    blue_green_actions = {
        "autoscaling:UpdateAutoScalingGroup",
        "autoscaling:DetachLoadBalancerTargetGroups",
        "autoscaling:AttachLoadBalancerTargetGroups",
        "autoscaling:CreateOrUpdateTags",
    }
    for statement in _statements(synthesized):
        actions = set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        # Then no statement granting a blue-green change names the rolling stage's group
        if actions & blue_green_actions:
            assert "web-app-test" not in json.dumps(statement["Resource"])


def test_blue_green_steps_may_delete_only_groups_they_name_and_tag_never_a_configured_group(
    synthesized: Synthesized,
) -> None:
    # Given the example configuration, whose prod stage (web-app-prod-a, web-app-prod-b) is blue-green
    deletes = [s for s in _statements(synthesized) if "autoscaling:DeleteAutoScalingGroup" in s["Action"]]

    # Then only discard_green and retire_groups may delete, only `<configured>-*` groups with the app's tag
    assert len(deletes) == 2
    for statement in deletes:
        assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/immutable-ami:application": "web-app"}}
        resources = json.dumps(statement["Resource"])
        assert resources.count("autoScalingGroupName/web-app-prod-a-*") == 1
        assert resources.count("autoScalingGroupName/web-app-prod-b-*") == 1
        assert not re.search(r"autoScalingGroupName/web-app-[a-z-]*[ab]\"", resources)  # no seed by exact name
        assert "web-app-test" not in resources  # the rolling stage's group is never a blue-green group


def test_blue_green_changes_to_groups_named_like_green_need_the_application_tag(synthesized: Synthesized) -> None:
    changes = [s for s in _statements(synthesized) if "autoscaling:DetachLoadBalancerTargetGroups" in s["Action"]]

    # create, shift and discard: one statement on the configured groups, one on `<configured>-*`
    assert len(changes) == 6
    for statement in changes:
        if "web-app-prod-a-*" in json.dumps(statement["Resource"]):
            assert statement["Condition"] == {"StringEquals": {"aws:ResourceTag/immutable-ami:application": "web-app"}}
        else:
            assert "-*" not in json.dumps(statement["Resource"])


def test_green_groups_can_only_be_created_with_the_application_tag(synthesized: Synthesized) -> None:
    (create,) = [s for s in _statements(synthesized) if s["Action"] == "autoscaling:CreateAutoScalingGroup"]

    assert create["Condition"] == {"StringEquals": {"aws:RequestTag/immutable-ami:application": "web-app"}}
    assert "web-app-prod-a-*" in json.dumps(create["Resource"])


# -- Triggers --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (codecommit_event("referenceUpdated", "main"), True),
        (codecommit_event("referenceCreated", "main"), True),
        (codecommit_event("referenceUpdated", "feature/x"), False),
        (codecommit_event("referenceDeleted", "main"), False),
        (codecommit_event("referenceCreated", "main", ref_type="tag"), False),
        ({**codecommit_event(), "detail-type": "CodeCommit Pull Request State Change"}, False),
        ({**codecommit_event(), "resources": ["arn:aws:codecommit:eu-west-1:123456789012:other-repo"]}, False),
    ],
)
def test_codecommit_rule_matches_only_pushes_to_the_configured_branch(
    synthesized: Synthesized, event: dict[str, Any], expected: bool
) -> None:
    assert matches(resolved_pattern(synthesized), event) is expected


def test_codecommit_rule_turns_the_event_into_the_deploy_request(synthesized: Synthesized) -> None:
    rule = next(
        r
        for r in synthesized.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.codecommit"]
    )
    transformer = rule["Properties"]["Targets"][0]["InputTransformer"]

    assert transformer["InputPathsMap"] == {
        "detail-commitId": "$.detail.commitId",
        "detail-referenceName": "$.detail.referenceName",
        "detail-repositoryName": "$.detail.repositoryName",
    }
    template = transformer["InputTemplate"]
    for placeholder, value in (
        ("<detail-commitId>", "3f2c1e9"),
        ("<detail-referenceName>", "main"),
        ("<detail-repositoryName>", "web-app"),
    ):
        template = template.replace(placeholder, json.dumps(value))  # EventBridge inserts JSON values
    assert json.loads(template) == {
        "action": "deploy",
        "commit": "3f2c1e9",
        "branch": "main",
        "repository": "web-app",
        "trigger": "codecommit",
    }


def test_daily_schedule_starts_a_base_rebuild(synthesized: Synthesized) -> None:
    rule = next(
        r for r in synthesized.resources("AWS::Events::Rule").values() if "ScheduleExpression" in r["Properties"]
    )

    assert rule["Properties"]["ScheduleExpression"] == "cron(0 3 * * ? *)"
    assert json.loads(rule["Properties"]["Targets"][0]["Input"]) == {"action": "rebuild-base", "trigger": "schedule"}


def test_github_source_gets_a_signed_webhook_url_and_no_codecommit_rule(synthesized_github: Synthesized) -> None:
    synthesized_github.template.has_resource_properties("AWS::Lambda::Url", {"AuthType": "NONE"})
    fn = next(
        f["Properties"]
        for f in synthesized_github.resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == "github_webhook.handler.lambda_handler"
    )
    env = fn["Environment"]["Variables"]
    assert env["GITHUB_REPOSITORY"] == "acme/web-app"
    assert env["DEPLOY_BRANCH"] == "release"
    assert {"WEBHOOK_SECRET_ARN", "STATE_MACHINE_ARN"} <= set(env)
    assert synthesized_github.resources("AWS::SecretsManager::Secret")
    rules = synthesized_github.resources("AWS::Events::Rule").values()
    assert not [r for r in rules if r["Properties"].get("EventPattern", {}).get("source") == ["aws.codecommit"]]
    assert not [r for r in rules if "ScheduleExpression" in r["Properties"]]  # schedule: null


def test_github_variant_grants_only_the_listed_instance_role_to_pass(synthesized_github: Synthesized) -> None:
    passes = [s for s in _statements(synthesized_github) if s.get("Sid") == "PassFleetInstanceRoles"]

    assert passes
    for statement in passes:
        assert statement["Resource"] == "arn:aws:iam::123456789012:role/web-app-instance"
        assert statement["Condition"] == {"StringEquals": {"iam:PassedToService": "ec2.amazonaws.com"}}


# -- Observability and the example fleet -----------------------------------------------------


def test_alarms_on_failed_executions_and_webhook_rejections_notify_the_topic(synthesized: Synthesized) -> None:
    alarms = [a["Properties"] for a in synthesized.resources("AWS::CloudWatch::Alarm").values()]

    assert alarms
    for alarm in alarms:
        assert "Notifications" in json.dumps(alarm["AlarmActions"])
    rejections = next(a for a in alarms if a.get("MetricName") == "WebhookRejected")
    assert rejections["Namespace"] == "ImmutableAmiPipeline"
    assert rejections["Dimensions"] == [{"Name": "service", "Value": "web-app"}]
    failed = next(a for a in alarms if "Metrics" in a and "timedout" in a["Metrics"][0].get("Expression", ""))
    assert failed["Metrics"][0]["Expression"] == "failed + timedout + aborted"


def test_dashboard_shows_executions_pruning_and_webhook(synthesized: Synthesized) -> None:
    body = json.dumps(
        next(iter(synthesized.resources("AWS::CloudWatch::Dashboard").values()))["Properties"]["DashboardBody"]
    )

    for metric in (
        "ExecutionsStarted",
        "ExecutionsFailed",
        "ExecutionTime",
        "ImagesPruned",
        "SnapshotsDeleted",
        "WebhookRejected",
    ):
        assert metric in body


def test_example_fleet_is_off_by_default(synthesized: Synthesized) -> None:
    assert not synthesized.resources("AWS::AutoScaling::AutoScalingGroup")
    assert not synthesized.resources("AWS::EC2::VPC")


def test_example_fleet_when_enabled_has_alb_template_and_group(synthesized_fleet: Synthesized) -> None:
    synthesized_fleet.template.has_resource_properties(
        "AWS::AutoScaling::AutoScalingGroup",
        {"AutoScalingGroupName": "web-app-example", "MinSize": "2", "MaxSize": "4"},
    )
    synthesized_fleet.template.has_resource_properties(
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateName": "web-app-example",
            "LaunchTemplateData": Match.object_like({"MetadataOptions": {"HttpTokens": "required"}}),
        },
    )
    synthesized_fleet.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Scheme": "internet-facing"}
    )
    outputs = synthesized_fleet.json["Outputs"]
    assert any(k.startswith("ExampleFleetExampleLaunchTemplateId") for k in outputs)


# -- Event-driven waits ------------------------------------------------------------------------


def refresh_event(group: str, outcome: str = "Succeeded") -> dict[str, Any]:
    """Shaped like AWS's "Instance refresh example events and patterns" (Auto Scaling user guide)."""
    return {
        "version": "0",
        "id": "12345678-1234-1234-1234-123456789012",
        "detail-type": f"EC2 Auto Scaling Instance Refresh {outcome}",
        "source": "aws.autoscaling",
        "account": "123456789012",
        "time": "2026-11-21T12:00:00Z",
        "region": "eu-west-1",
        "resources": ["auto-scaling-group-arn"],
        "detail": {"InstanceRefreshId": "c613620e-07e2-4ed2-a9e2-ef8258911ade", "AutoScalingGroupName": group},
    }


def rule_for(synth: Synthesized, source: str) -> dict[str, Any]:
    return next(
        r["Properties"]
        for r in synth.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == [source]
    )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (refresh_event("web-app-test"), True),
        (refresh_event("web-app-prod-a", "Failed"), True),
        (refresh_event("web-app-prod-b", "Rollback Succeeded"), True),
        (refresh_event("web-app-test", "Checkpoint Reached"), True),
        (refresh_event("web-app-test", "Started"), False),
        (refresh_event("someone-elses-group"), False),
    ],
)
def test_refresh_outcomes_of_configured_groups_reach_the_relay(
    synthesized: Synthesized, event: dict[str, Any], expected: bool
) -> None:
    assert matches(rule_for(synthesized, "aws.autoscaling")["EventPattern"], event) is expected


def test_image_build_final_states_of_this_application_reach_the_relay(synthesized: Synthesized) -> None:
    (pattern,) = [
        r["Properties"]["EventPattern"]
        for r in synthesized.resources("AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("detail-type") == ["EC2 Image Builder Image State Change"]
    ]

    assert pattern["detail-type"] == ["EC2 Image Builder Image State Change"]
    assert set(pattern["detail"]["state"]["status"]) >= {"AVAILABLE", "FAILED", "CANCELLED"}
    assert "BUILDING" not in pattern["detail"]["state"]["status"]
    prefixes = [render(p["prefix"]) for p in pattern["resources"]]
    # image/<recipe name>/<version>/<build>: the base pipeline's recipe, and each app bake's own <app>-app-<digest>
    for build in (f"{IMAGE_ARN}/web-app-base/1.0.3/7", f"{IMAGE_ARN}/web-app-app-0123456789ab/1.0.0/1"):
        assert any(build.startswith(prefix) for prefix in prefixes), build
    assert not any(f"{IMAGE_ARN}/billing-app-0123456789ab/1.0.0/1".startswith(prefix) for prefix in prefixes)


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


def test_waiting_steps_may_send_task_success_on_any_resource_as_iam_requires(synthesized: Synthesized) -> None:
    # The Service Authorization Reference lists no resource types for states:SendTaskSuccess: a statement
    # scoped to the state machine's ARN never matches, and every event-driven resume would be denied.
    statements = [s for s in _statements(synthesized) if "states:SendTaskSuccess" in _actions(s)]

    # register_wait and relay_event (waits), finish_execution and the lock step (waking queued pushes)
    assert len(statements) == 4
    assert all(statement["Resource"] == "*" for statement in statements)
