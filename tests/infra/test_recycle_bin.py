"""The Recycle Bin rules (stacks/recycle_bin.py): a pruned AMI and its snapshots stay restorable for
retention.recycleBinDays days; no rule at 0."""

from __future__ import annotations

from typing import Any

import pytest

from tests.infra.conftest import Synthesized, example_config, synthesize, variant

APPLICATION_TAG = [{"ResourceTagKey": "immutable-ami:application", "ResourceTagValue": "web-app"}]


def rules(synth: Synthesized) -> dict[str, dict[str, Any]]:
    """ResourceType -> the rule's properties."""
    found = [r["Properties"] for r in synth.resources("AWS::Rbin::Rule").values()]
    assert len({r["ResourceType"] for r in found}) == len(found), "one rule per resource type"
    return {r["ResourceType"]: r for r in found}


@pytest.fixture(scope="module")
def synthesized_30_days(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    config = variant(retention={**example_config()["retention"], "recycleBinDays": 30})
    return synthesize(config, tmp_path_factory.mktemp("cdk-rbin-30"))


@pytest.fixture(scope="module")
def synthesized_no_recycle_bin(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    config = variant(retention={**example_config()["retention"], "recycleBinDays": 0})
    return synthesize(config, tmp_path_factory.mktemp("cdk-rbin-0"))


def test_by_default_pruned_amis_and_their_snapshots_are_kept_seven_days_selected_by_the_application_tag(
    synthesized: Synthesized,
) -> None:
    found = rules(synthesized)
    assert set(found) == {"EC2_IMAGE", "EBS_SNAPSHOT"}
    for rule in found.values():
        assert rule["ResourceTags"] == APPLICATION_TAG
        assert rule["RetentionPeriod"] == {"RetentionPeriodUnit": "DAYS", "RetentionPeriodValue": 7}


def test_the_rules_keep_the_configured_days_and_snapshots_at_least_as_long_as_amis(
    synthesized_30_days: Synthesized,
) -> None:
    found = rules(synthesized_30_days)
    days = {kind: rule["RetentionPeriod"]["RetentionPeriodValue"] for kind, rule in found.items()}
    assert days == {"EC2_IMAGE": 30, "EBS_SNAPSHOT": 30}
    # A snapshot leaving the bin before its AMI would make the AMI unrecoverable (Considerations for Recycle Bin).
    assert days["EBS_SNAPSHOT"] >= days["EC2_IMAGE"]


def test_the_rules_are_unlocked_so_a_stack_update_can_change_or_remove_them(synthesized: Synthesized) -> None:
    for rule in rules(synthesized).values():
        assert "LockConfiguration" not in rule
        assert rule.get("Status", "available") == "available"


def test_no_rule_when_recycle_bin_days_is_zero(synthesized_no_recycle_bin: Synthesized) -> None:
    assert synthesized_no_recycle_bin.resources("AWS::Rbin::Rule") == {}
