"""checkov on every synthesized variant: no failed check that is neither fixed nor skipped with a reason.

checkov runs from its own environment (.venv-checkov, requirements-checkov.txt; `make setup` installs it),
because it pins an older boto3/botocore than the project. A skip is template metadata next to its
resource (stacks/checkov.py), the way cdk-nag acknowledgements are (stacks/nag.py).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from stacks.config import PROJECT_ROOT
from tests.infra.conftest import Synthesized

CHECKOV = PROJECT_ROOT / ".venv-checkov" / "bin" / "checkov"
# The example (CodeCommit, a rolling and a blue-green stage, daily schedule), GitHub (webhook, Ansible, logs
# bucket, a role to pass), the example fleet without a source, and GitHub with the example fleet.
VARIANTS = ["synthesized", "synthesized_github", "synthesized_fleet", "synthesized_github_fleet"]


def run_checkov(template: Path) -> list[dict[str, Any]]:
    """checkov's JSON reports for one CloudFormation template (offline: --skip-download)."""
    if not CHECKOV.exists():
        pytest.fail(f"checkov is not installed at {CHECKOV}: run `make setup` (it installs requirements-checkov.txt)")
    result = subprocess.run(
        [str(CHECKOV), "--file", str(template), "--framework", "cloudformation", "--skip-download", "--output", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr  # 1: some check failed; anything else: checkov broke
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def findings(reports: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [check for report in reports for check in report.get("results", {}).get(kind, [])]


def skips_in(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(resource, check id, reason) of every skip in the template's metadata."""
    return [
        (logical_id, entry["id"], entry.get("comment", ""))
        for logical_id, resource in template["Resources"].items()
        for entry in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


@pytest.mark.parametrize("fixture", VARIANTS)
def test_checkov_finds_nothing_that_is_neither_fixed_nor_skipped(fixture: str, request: pytest.FixtureRequest) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)

    failed = findings(run_checkov(synth.template_path), "failed_checks")

    assert [f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in failed] == []


@pytest.mark.parametrize("fixture", VARIANTS)
def test_every_checkov_skip_has_a_one_line_reason_and_skips_a_check_that_applies(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)
    skips = skips_in(synth.json)

    skipped = {
        (c["resource"].split(".", 1)[1], c["check_id"])
        for c in findings(run_checkov(synth.template_path), "skipped_checks")
    }

    assert skips
    for resource, check_id, reason in skips:
        assert len(reason) > 20, (resource, check_id, reason)
        assert "\n" not in reason, (resource, check_id, reason)
        # A skip checkov never applied is stale: the resource no longer has what the check looks at.
        assert (resource, check_id) in skipped, f"{resource}: skip of {check_id} matches no check checkov ran"


def test_checkov_fails_an_unskipped_finding_and_honours_a_skip_with_its_reason(tmp_path: Path) -> None:
    # Given a queue without encryption at rest, once bare and once with a reasoned skip
    def template(metadata: dict[str, Any]) -> Path:
        path = tmp_path / f"queue-{len(metadata)}.json"
        queue = {"Type": "AWS::SQS::Queue", "Properties": {"SqsManagedSseEnabled": False}, **metadata}
        path.write_text(json.dumps({"Resources": {"Queue": queue}}))
        return path

    bare = run_checkov(template({}))
    skip = {"Metadata": {"checkov": {"skip": [{"id": "CKV_AWS_27", "comment": "a test queue holds nothing"}]}}}
    skipped = run_checkov(template(skip))

    # Then checkov fails the bare one and reports the skip with its reason
    assert "CKV_AWS_27" in {c["check_id"] for c in findings(bare, "failed_checks")}
    assert "CKV_AWS_27" not in {c["check_id"] for c in findings(skipped, "failed_checks")}
    assert [
        c["check_result"].get("suppress_comment")
        for c in findings(skipped, "skipped_checks")
        if c["check_id"] == "CKV_AWS_27"
    ] == ["a test queue holds nothing"]
