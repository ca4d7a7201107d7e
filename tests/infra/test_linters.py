"""cfn-lint on every synthesized template; cdk-nag findings fail synth unless acknowledged with a reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk import aws_iam as iam
from cdk_nag import AwsSolutionsChecks

from tests.infra.conftest import Synthesized

# CDK's generated redundant DependsOn raise W3005; ignoring that one check is fine.
CFN_LINT_IGNORED = "W3005"


@pytest.mark.parametrize("fixture", ["synthesized", "synthesized_github", "synthesized_fleet"])
def test_cfn_lint_reports_nothing_on_the_synthesized_template(fixture: str, request: pytest.FixtureRequest) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)

    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cfn-lint"),
            "--ignore-checks",
            CFN_LINT_IGNORED,
            "--",
            str(synth.template_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("fixture", ["synthesized", "synthesized_github", "synthesized_fleet"])
def test_cdk_nag_passes_and_every_acknowledgement_has_a_reason(fixture: str, request: pytest.FixtureRequest) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)
    report_path = synth.assembly_dir / "validation-report.json"

    if report_path.exists():
        report = json.loads(report_path.read_text())
        for plugin in report["pluginReports"]:
            assert plugin["conclusion"] == "success", plugin
    acknowledged = [
        entry.data
        for node in synth.stack.node.find_all()
        for entry in node.node.metadata
        if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY
    ]
    assert acknowledged
    for data in acknowledged:  # {"<plugin>::<finding id>": "<reason>", ...}
        for finding, reason in data.items():
            assert len(reason) > 20, finding
            assert "\n" not in reason, finding


def test_cdk_nag_fails_synth_on_an_unacknowledged_finding(tmp_path: Path) -> None:
    # Given a stack with a mutating action on "*" and nobody acknowledging it
    app = cdk.App(outdir=str(tmp_path))
    stack = cdk.Stack(app, "Bad")
    role = iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
    role.add_to_policy(iam.PolicyStatement(actions=["ec2:TerminateInstances"], resources=["*"]))
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))

    # When it is synthesized / Then cdk-nag stops the synth and names the finding
    with pytest.raises(RuntimeError, match=r"AwsSolutions-IAM5\[Resource::\*\]"):
        app.synth()
