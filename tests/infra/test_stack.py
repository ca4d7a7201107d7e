"""The synthesized stack, property by property (not resource counts)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk.assertions import Match

from lambdas.shared import tags as lambda_tags
from lambdas.shared.config import DeployConfig
from stacks.config import PROJECT_ROOT
from stacks.deploy_workflow import STEPS
from tests.infra.conftest import Synthesized
from tests.infra.event_pattern import matches

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


def test_two_image_pipelines_base_and_app_with_image_tests(synthesized: Synthesized) -> None:
    pipelines = synthesized.resources("AWS::ImageBuilder::ImagePipeline")

    assert sorted(p["Properties"]["Name"] for p in pipelines.values()) == ["web-app-app", "web-app-base"]
    for pipeline in pipelines.values():
        assert pipeline["Properties"]["ImageTestsConfiguration"]["ImageTestsEnabled"] is True
        assert "Schedule" not in pipeline["Properties"]  # the daily rebuild is a state machine run


def test_app_recipe_is_built_on_the_latest_base_image(synthesized: Synthesized) -> None:
    recipes = {
        r["Properties"]["Name"]: r["Properties"]
        for r in synthesized.resources("AWS::ImageBuilder::ImageRecipe").values()
    }

    parent = json.dumps(recipes["web-app-app"]["ParentImage"])
    assert ":image/web-app-base/x.x.x" in parent
    assert ":aws:image/amazon-linux-2023-x86/x.x.x" in json.dumps(recipes["web-app-base"]["ParentImage"])


def test_app_components_read_the_commit_from_the_build_source_parameter(synthesized: Synthesized) -> None:
    recipes = {
        r["Properties"]["Name"]: r["Properties"]
        for r in synthesized.resources("AWS::ImageBuilder::ImageRecipe").values()
    }
    ((logical_id, parameter),) = synthesized.resources("AWS::SSM::Parameter").items()
    assert parameter["Properties"]["Name"] == "/immutable-ami/web-app/build-source"

    params = [c.get("Parameters", []) for c in recipes["web-app-app"]["Components"]]
    names = {p["Name"]: p["Value"] for group in params for p in group}
    assert names["SourceParameterName"] == [{"Ref": logical_id}]
    assert names["InstallScript"] == ["deploy/install.sh"]
    assert names["TestScript"] == ["deploy/test.sh"]


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


def test_state_machine_is_standard_with_logging_all_and_tracing(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "LoggingConfiguration": {"Level": "ALL", "IncludeExecutionData": True, "Destinations": Match.any_value()},
            "TracingConfiguration": {"Enabled": True},
        },
    )
    synthesized.template.has_resource_properties(
        "AWS::Logs::LogGroup", {"LogGroupName": "/aws/vendedlogs/states/web-app-deploy", "RetentionInDays": 90}
    )


@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_step_function_runs_latest_python_on_arm64_with_powertools_layer(
    synthesized: Synthesized, step: str
) -> None:
    functions = [f["Properties"] for f in synthesized.resources("AWS::Lambda::Function").values()]
    fn = next(f for f in functions if f["Handler"] == f"{step}.handler.lambda_handler")

    assert fn["Runtime"] == "python3.14"
    assert fn["Architectures"] == ["arm64"]
    assert fn["LoggingConfig"]["LogFormat"] == "JSON"
    assert fn["TracingConfig"] == {"Mode": "Active"}
    assert "AWSLambdaPowertoolsPythonV3-python314-arm64:38" in json.dumps(fn["Layers"])
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

    assert len(alarms) == 2
    for alarm in alarms:
        assert "Notifications" in json.dumps(alarm["AlarmActions"])
    rejections = next(a for a in alarms if a.get("MetricName") == "WebhookRejected")
    assert rejections["Namespace"] == "ImmutableAmiPipeline"
    assert rejections["Dimensions"] == [{"Name": "service", "Value": "web-app"}]
    failed = next(a for a in alarms if "Metrics" in a)
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
    pattern = rule_for(synthesized, "aws.imagebuilder")["EventPattern"]

    assert pattern["detail-type"] == ["EC2 Image Builder Image State Change"]
    assert set(pattern["detail"]["state"]["status"]) >= {"AVAILABLE", "FAILED", "CANCELLED"}
    assert "BUILDING" not in pattern["detail"]["state"]["status"]
    prefixes = json.dumps(pattern["resources"])
    assert ":image/web-app-base/" in prefixes
    assert ":image/web-app-app/" in prefixes


def test_waiting_steps_may_send_task_success_on_any_resource_as_iam_requires(synthesized: Synthesized) -> None:
    # The Service Authorization Reference lists no resource types for states:SendTaskSuccess: a statement
    # scoped to the state machine's ARN never matches, and every event-driven resume would be denied.
    statements = [s for s in _statements(synthesized) if s["Action"] == "states:SendTaskSuccess"]

    assert len(statements) == 2  # register_wait and relay_event
    assert all(statement["Resource"] == "*" for statement in statements)
