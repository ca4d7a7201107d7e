"""retire_groups: keep the live group and the newest keepGroups retained ones; delete older ones we created only."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws
from retire_groups import logic
from retire_groups.models import RetireGroupsInput

from shared import tags
from shared.errors import BlueGreenConflict
from tests.unit.blue_green_fleet import APP, EXECUTION, OTHER_EXECUTION, SEED, Fleet, build_fleet

LIVE = "web-app-test-run-9"


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """A live group, the seed retained first, then three retained groups of ours (oldest to newest)."""
    with mock_aws():
        fleet = build_fleet()
        fleet.create_ours(LIVE, "live", since="2026-11-22T09:00:00Z", execution=EXECUTION)
        fleet.create_group(
            SEED,
            sizes=(0, 0, 0),
            target_groups=[],
            group_tags={
                tags.APPLICATION: APP,
                tags.TARGET: SEED,
                tags.ROLE: "retained",
                tags.ROLE_SINCE: "2026-10-01T10:00:00Z",
            },
        )
        for day in ("10", "15", "20"):
            fleet.create_ours(
                f"web-app-test-run-{day}",
                "retained",
                since=f"2026-11-{day}T10:00:00Z",
                sizes=(0, 0, 0),
                target_groups=[],
            )
        yield fleet


def retire(fleet: Fleet, *, dry_run: bool = False) -> dict[str, Any]:
    request = RetireGroupsInput(execution_id=EXECUTION, dry_run=dry_run, target=fleet.target)
    return logic.run(request, fleet.config, groups=fleet.groups).model_dump(by_alias=True, mode="json")


def test_retire_keeps_the_newest_retained_groups_and_never_deletes_the_seed(fleet: Fleet) -> None:
    # When retiring with keepGroups 2 (the default)
    output = retire(fleet)
    # Then the two newest retained groups stay with the live one; the older one of ours is deleted;
    # the seed, older still, is skipped
    assert output == {
        "deleted": ["web-app-test-run-10"],
        "kept": [LIVE, "web-app-test-run-20", "web-app-test-run-15"],
        "skipped": [{"group": SEED, "reason": "the seed group is never deleted, only scaled and tagged"}],
    }
    assert fleet.names() == sorted([LIVE, SEED, "web-app-test-run-15", "web-app-test-run-20"])


def test_retire_with_keep_groups_zero_deletes_every_retained_group_of_ours(fleet: Fleet) -> None:
    fleet.with_config(retention={"keepGroups": 0})
    output = retire(fleet)
    assert sorted(output["deleted"]) == ["web-app-test-run-10", "web-app-test-run-15", "web-app-test-run-20"]
    assert fleet.names() == sorted([LIVE, SEED])


def test_retire_dry_run_reports_and_deletes_nothing(fleet: Fleet) -> None:
    before = fleet.names()
    output = retire(fleet, dry_run=True)
    assert output["deleted"] == ["web-app-test-run-10"]
    assert fleet.names() == before


def test_retire_never_deletes_green_groups_or_retained_groups_of_unknown_age(fleet: Fleet) -> None:
    # Given an old green left by another execution, and an old retained group without a readable ROLE_SINCE
    fleet.create_ours("web-app-test-run-1", "green", since="2026-09-01T10:00:00Z", execution=OTHER_EXECUTION)
    fleet.create_ours("web-app-test-run-2", "retained", since="last tuesday")
    # When retiring
    output = retire(fleet)
    # Then both stay, each with its reason
    skipped = {s["group"]: s["reason"] for s in output["skipped"]}
    assert skipped["web-app-test-run-1"] == f"a green group (execution {OTHER_EXECUTION}) is never retired"
    assert skipped["web-app-test-run-2"] == f"{tags.ROLE_SINCE} is missing or unreadable: its age is unknown"
    assert {"web-app-test-run-1", "web-app-test-run-2"} <= set(fleet.names())


def test_retire_refuses_to_act_with_two_live_groups(fleet: Fleet) -> None:
    fleet.create_ours("web-app-test-run-3", "live", since="2026-11-22T09:30:00Z")
    with pytest.raises(BlueGreenConflict):
        retire(fleet)
    assert "web-app-test-run-10" in fleet.names()


def test_handler_retires_through_the_lambda_entry_point(
    fleet: Fleet, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = importlib.import_module("retire_groups.handler")
    monkeypatch.setattr(handler, "CONFIG", fleet.config)
    monkeypatch.setattr(handler, "groups", lambda: fleet.groups)
    result = handler.lambda_handler(
        {
            "executionId": EXECUTION,
            "dryRun": False,
            "target": {"autoScalingGroupName": SEED, "launchTemplateId": fleet.template_id},
        },
        lambda_context,
    )
    assert result["deleted"] == ["web-app-test-run-10"]
    assert set(result) == {"deleted", "kept", "skipped"}
