"""publish_launch_template_version: copy the default with the new AMI, make it the default, prune safely."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws
from publish_launch_template_version import logic
from publish_launch_template_version.models import PublishInput

from shared import tags
from shared.aws.autoscaling import AutoScaling, LaunchTemplateRef
from shared.aws.launch_templates import (
    DeleteOutcome,
    LaunchTemplates,
    TemplateVersion,
)
from shared.aws.references import ApplicationGroup, FleetReferences
from shared.config import DeployConfig, Retention, Target
from shared.errors import InvalidInput, LaunchTemplateNotFound
from tests.conftest import REGION, SAMPLE_DEPLOY_CONFIG
from tests.unit.fakes import OLD_AMI, FakeGroups, FakeLaunchTemplates, FakeOwnImages
from tests.unit.test_start_instance_refresh import (
    CONFIG,
    EXECUTION,
    GROUP,
    STARTED,
    TARGET,
    TEMPLATE,
    FakeAutoScaling,
    _powertools_metrics,  # noqa: F401 (autouse fixture)
    instance,
    make_group,
    make_refresh,
)

AMI = "ami-0123456789abcdef0"


def app_group(
    name: str, version: str, role: str | None = "retained", template: str | None = TEMPLATE
) -> ApplicationGroup:
    ref = LaunchTemplateRef(launch_template_id=template, launch_template_name="web-app", version=version)
    return ApplicationGroup(name=name, role=role, launch_templates=(ref,), image_ids=())


def publish_request(
    *, execution: str = EXECUTION, ami: str = AMI, dry_run: bool = False, commit: str | None = "3f2c1e9"
) -> PublishInput:
    return PublishInput(execution_id=execution, dry_run=dry_run, target=TARGET, ami_id=ami, commit=commit)


def config_keeping(keep: int) -> DeployConfig:
    return CONFIG.model_copy(update={"retention": Retention(keep_images=3, keep_launch_template_versions=keep)})


# --- restore after a failed publish ---------------------------------------------------------------


class FailingDelete(FakeLaunchTemplates):
    """EC2 refuses the delete call itself (throttled, denied): the publish fails after its version is the default."""

    def delete_versions(self, template_id: str, versions: Sequence[int]) -> DeleteOutcome:
        raise RuntimeError("DeleteLaunchTemplateVersions: RequestLimitExceeded")


def test_restore_after_a_publish_that_failed_past_the_default_switch_puts_the_previous_default_back() -> None:
    # Given a publish that made version 5 the default (replacing 3), then failed while pruning old versions
    store = FailingDelete(versions=[1, 2, 3, 4], default=3)
    with pytest.raises(RuntimeError):
        logic.run(
            publish_request(),
            config_keeping(2),
            launch_templates=store,
            autoscaling=FakeAutoScaling(),
            groups=FakeGroups(),
        )
    assert store.default == 5
    # When the state machine's failure path asks the step to restore
    output = logic.restore(publish_request().model_copy(update={"restore": True}), CONFIG, store)
    # Then version 3 is the default again: no scale-out launches the untested image
    assert store.default == 3
    assert (output.restored, output.default_version) == (True, 3)


def test_restore_changes_nothing_when_the_execution_published_no_version_or_it_is_not_the_default() -> None:
    # Given a template this execution never touched, and one where its version exists but the default is another
    untouched = FakeLaunchTemplates(versions=[1, 2], default=2)
    created_only = FakeLaunchTemplates(versions=[1, 2], default=2)
    description = logic.version_description(publish_request(), source_version=2)
    created_only.create_version(TEMPLATE, source_version=2, image_id=AMI, description=description, client_token="x")
    # When each is restored
    first = logic.restore(publish_request(), CONFIG, untouched)
    second = logic.restore(publish_request(), CONFIG, created_only)
    # Then no default changes, and each says why
    assert untouched.default_changes == []
    assert created_only.default_changes == []
    assert (first.restored, first.reason) == (False, "this execution published no version")
    assert (second.restored, second.default_version) == (False, 2)


def test_restore_in_a_dry_run_changes_nothing() -> None:
    # Given a real publish, then a dry-run restore by the same execution
    store = FakeLaunchTemplates(versions=[1, 2], default=2)
    logic.run(
        publish_request(), config_keeping(5), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
    )
    # When it is restored as a dry run
    output = logic.restore(publish_request(dry_run=True), CONFIG, store)
    # Then it reports what it would do and the default stays
    assert (output.restored, output.default_version, store.default) == (True, 2, 3)


# --- publish -------------------------------------------------------------------------------------


def test_publish_copies_the_default_version_with_the_new_ami_and_makes_it_the_default() -> None:
    # Given versions 1..4 with version 3 as the default
    store = FakeLaunchTemplates(versions=[1, 2, 3, 4], default=3)
    # When the new AMI is published
    output = logic.run(
        publish_request(),
        config_keeping(10),
        launch_templates=store,
        autoscaling=FakeAutoScaling(),
        groups=FakeGroups(),
    )
    # Then version 5 is copied from the default (3) with only the image changed, and is the new default
    assert store.created[0]["source"] == 3
    assert store.created[0]["image"] == AMI
    assert (output.version, output.previous_version, output.created) == (5, 3, True)
    assert store.default == 5


def test_publish_retry_with_the_same_execution_returns_the_version_it_already_made() -> None:
    # Given a first successful publish
    store = FakeLaunchTemplates(versions=[1, 2], default=2)
    first = logic.run(
        publish_request(), config_keeping(5), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
    )
    # When the same execution retries the step
    second = logic.run(
        publish_request(), config_keeping(5), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
    )
    # Then no second version is made and the answer is the same, with created=false
    assert len(store.created) == 1
    assert (second.version, second.previous_version, second.created) == (first.version, 2, False)


def test_publish_retry_after_a_crash_before_the_default_switch_makes_the_found_version_default() -> None:
    # Given our version was created (found by its description marker) but the default was never switched
    store = FakeLaunchTemplates(versions=[1, 2], default=2)
    description = logic.version_description(publish_request(), source_version=2)
    store.create_version(TEMPLATE, source_version=2, image_id=AMI, description=description, client_token="x")
    # When the step is retried
    output = logic.run(
        publish_request(), config_keeping(5), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
    )
    # Then it sets that version as the default without creating another
    assert (output.version, output.previous_version, output.created) == (3, 2, False)
    assert store.default == 3
    assert len(store.created) == 1


def test_publish_a_new_execution_with_the_same_ami_still_creates_a_new_version() -> None:
    # Given the default already uses the AMI, made by another execution
    store = FakeLaunchTemplates(versions=[1, 2], default=2)
    logic.run(
        publish_request(execution=f"{EXECUTION}-earlier"),
        config_keeping(5),
        launch_templates=store,
        autoscaling=FakeAutoScaling(),
        groups=FakeGroups(),
    )
    # When a new execution publishes the same AMI
    output = logic.run(
        publish_request(), config_keeping(5), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
    )
    # Then it gets its own version
    assert (output.version, output.previous_version, output.created) == (4, 3, True)


def test_publish_refuses_a_different_ami_in_the_same_execution() -> None:
    # Given this execution already published AMI
    store = FakeLaunchTemplates(versions=[1], default=1)
    logic.run(
        publish_request(), config_keeping(5), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
    )
    # When it tries another AMI
    # Then it fails clearly instead of reusing the ClientToken with other parameters
    with pytest.raises(InvalidInput, match="refusing to publish a different AMI"):
        logic.run(
            publish_request(ami="ami-0fffffffffffffff0"),
            config_keeping(5),
            launch_templates=store,
            autoscaling=FakeAutoScaling(),
            groups=FakeGroups(),
        )


def test_publish_description_keeps_the_marker_within_255_characters() -> None:
    # Given a very long execution id and commit
    request = publish_request(execution="arn:aws:states:eu-west-1:1:execution:deploy:" + "x" * 300, commit="c" * 128)
    # When the description is built
    description = logic.version_description(request, source_version=12)
    # Then it fits and still starts with the marker (so a retry finds the version)
    assert len(description) <= 255
    assert description.startswith(logic.marker(request.execution_id, TEMPLATE))
    assert " src=12 " in description
    assert len(logic.client_token(request.execution_id, TEMPLATE)) <= 64


def test_publish_client_token_differs_per_execution_and_per_template() -> None:
    # Given / When tokens for two executions and two templates
    tokens = {
        logic.client_token(EXECUTION, TEMPLATE),
        logic.client_token(f"{EXECUTION}-2", TEMPLATE),
        logic.client_token(EXECUTION, "lt-0bbbbbbbbbbbbbbb2"),
    }
    # Then they are distinct
    assert len(tokens) == 3


def test_publish_missing_template_raises_launch_template_not_found() -> None:
    # Given a configured template that does not exist in EC2
    store = FakeLaunchTemplates(template_id="lt-0ffffffffffffffff")
    # When / Then
    with pytest.raises(LaunchTemplateNotFound):
        logic.run(
            publish_request(),
            config_keeping(5),
            launch_templates=store,
            autoscaling=FakeAutoScaling(),
            groups=FakeGroups(),
        )


def test_publish_rejects_an_unconfigured_target_before_touching_aws() -> None:
    # Given a target that is not configured
    store = FakeLaunchTemplates()
    request = PublishInput(
        execution_id=EXECUTION,
        target=Target(auto_scaling_group_name="other", launch_template_id=TEMPLATE),
        ami_id=AMI,
    )
    # When / Then
    with pytest.raises(InvalidInput, match="not a configured target"):
        logic.run(
            request, config_keeping(5), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
        )
    assert store.created == []


# --- rebuild-base: each target gets the image of the commit it runs --------------------------------------

RUNNING_COMMIT = "3f2c1e9d8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e"
OTHER_STAGE_COMMIT = "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
RUNNING_COMMIT_IMAGE = "ami-0aaaaaaaaaaaaaaa1"
OTHER_STAGE_IMAGE = "ami-0bbbbbbbbbbbbbbb2"


def rebuild_request(*, images: Sequence[tuple[str, str]] | None = None) -> PublishInput:
    """publish's payload in a rebuild-base: the first image as amiId, every commit's image in images."""
    baked = images or [(OTHER_STAGE_COMMIT, OTHER_STAGE_IMAGE), (RUNNING_COMMIT, RUNNING_COMMIT_IMAGE)]
    return PublishInput.model_validate(
        {
            "executionId": EXECUTION,
            "target": TARGET.model_dump(by_alias=True),
            "amiId": baked[0][1],
            "commit": None,
            "images": [{"commit": commit, "amiId": ami} for commit, ami in baked],
        }
    )


def test_rebuild_base_publishes_the_image_of_the_commit_the_target_runs_not_the_first_one() -> None:
    # Given the target's default version runs an AMI of RUNNING_COMMIT, and the rebuild baked two commits
    store = FakeLaunchTemplates(versions=[1, 2], default=2)
    images = FakeOwnImages({OLD_AMI: RUNNING_COMMIT})
    # When the new images are published (amiId names the other stage's image)
    output = logic.run(
        rebuild_request(),
        config_keeping(5),
        launch_templates=store,
        autoscaling=FakeAutoScaling(),
        groups=FakeGroups(),
        images=images,
    )
    # Then the target gets its own commit on the new base, and the version says which commit it is
    assert store.created[0]["image"] == RUNNING_COMMIT_IMAGE
    assert f" commit={RUNNING_COMMIT} " in store.created[0]["description"]
    assert (output.version, output.previous_version, output.created) == (3, 2, True)


def test_rebuild_base_retry_after_publishing_keeps_the_version_this_execution_made() -> None:
    # Given a first publish made version 3 the default, with RUNNING_COMMIT's new image
    store = FakeLaunchTemplates(versions=[1, 2], default=2)
    first = logic.run(
        rebuild_request(),
        config_keeping(5),
        launch_templates=store,
        autoscaling=FakeAutoScaling(),
        groups=FakeGroups(),
        images=FakeOwnImages({OLD_AMI: RUNNING_COMMIT}),
    )
    # When the step is retried, and the new default's AMI cannot be read (EC2 does not list it to this call)
    second = logic.run(
        rebuild_request(),
        config_keeping(5),
        launch_templates=store,
        autoscaling=FakeAutoScaling(),
        groups=FakeGroups(),
        images=FakeOwnImages({}),
    )
    # Then the version it made is kept: no second version, and no other commit's image
    assert len(store.created) == 1
    assert (second.version, second.created) == (first.version, False)
    assert store.versions[second.version].image_id == RUNNING_COMMIT_IMAGE


@pytest.mark.parametrize(
    ("running", "message"),
    [
        ({OLD_AMI: "e" * 40}, f"runs {OLD_AMI} \\(commit {'e' * 40}\\), and this rebuild baked only"),
        ({OLD_AMI: None}, f"runs {OLD_AMI} \\(commit None\\)"),
        ({}, f"runs {OLD_AMI} \\(commit None\\)"),
    ],
    ids=["commit-not-baked", "no-commit-tag", "ami-not-ours"],
)
def test_rebuild_base_refuses_a_target_whose_commit_was_not_baked(running: dict[str, str | None], message: str) -> None:
    # Given the target runs a commit the rebuild did not bake (or one that cannot be told)
    store = FakeLaunchTemplates(versions=[1, 2], default=2)
    # When / Then nothing is published: a rebuild never moves a target to another commit
    with pytest.raises(InvalidInput, match=message):
        logic.run(
            rebuild_request(),
            config_keeping(5),
            launch_templates=store,
            autoscaling=FakeAutoScaling(),
            groups=FakeGroups(),
            images=FakeOwnImages(running),
        )
    assert store.created == []
    assert store.default_changes == []


def test_images_without_an_image_reader_are_refused() -> None:
    store = FakeLaunchTemplates(versions=[1], default=1)

    with pytest.raises(InvalidInput, match="without an image reader"):
        logic.run(
            rebuild_request(),
            config_keeping(5),
            launch_templates=store,
            autoscaling=FakeAutoScaling(),
            groups=FakeGroups(),
        )
    assert store.created == []


def test_a_deploy_without_images_publishes_the_ami_it_is_given_without_reading_images() -> None:
    # Given a deploy's payload (no images) and an image reader that knows nothing
    store = FakeLaunchTemplates(versions=[1], default=1)
    # When published
    logic.run(
        publish_request(),
        config_keeping(5),
        launch_templates=store,
        autoscaling=FakeAutoScaling(),
        groups=FakeGroups(),
        images=FakeOwnImages({}),
    )
    # Then the given AMI is published
    assert store.created[0]["image"] == AMI


# --- prune ---------------------------------------------------------------------------------------


def test_prune_keeps_the_newest_versions_the_previous_default_and_in_flight_refresh_versions() -> None:
    # Given versions 1..10, default 4 (older than the newest), a group on version 5 and a refresh to 2 in flight
    store = FakeLaunchTemplates(versions=range(1, 11), default=4)
    autoscaling = FakeAutoScaling(
        group=make_group([instance("i-1", "5")], version="5"),
        refreshes=[make_refresh("r-1", "InProgress", "2"), make_refresh("r-0", "Successful", "1")],
    )
    # When version 11 is published with keep=3
    output = logic.run(
        publish_request(), config_keeping(3), launch_templates=store, autoscaling=autoscaling, groups=FakeGroups()
    )
    # Then kept: newest 3 (11, 10, 9), previous default 4, group/instance version 5, in-flight 2
    assert output.pruned_versions == [1, 3, 6, 7, 8]
    assert sorted(store.versions) == [2, 4, 5, 9, 10, 11]
    assert output.prune_failures == []


def test_prune_keeps_the_version_a_template_named_refresh_uses() -> None:
    # Given an in-flight refresh naming its template by name (its id is unknown)
    store = FakeLaunchTemplates(versions=range(1, 6), default=5)
    refresh = make_refresh("r-1", "Baking", "1", template=None)
    # When version 6 is published with keep=2
    output = logic.run(
        publish_request(),
        config_keeping(2),
        launch_templates=store,
        autoscaling=FakeAutoScaling(refreshes=[refresh]),
        groups=FakeGroups(),
    )
    # Then version 1 is kept anyway
    assert output.pruned_versions == [2, 3, 4]


def test_prune_ignores_versions_of_other_templates() -> None:
    # Given a refresh in flight on another template's version 2
    store = FakeLaunchTemplates(versions=range(1, 6), default=5)
    refresh = make_refresh("r-1", "InProgress", "2", template="lt-0ccccccccccccccc3")
    # When version 6 is published with keep=2
    output = logic.run(
        publish_request(),
        config_keeping(2),
        launch_templates=store,
        autoscaling=FakeAutoScaling(refreshes=[refresh]),
        groups=FakeGroups(),
    )
    # Then version 2 of our template is pruned (the group runs version 1, which stays)
    assert output.pruned_versions == [2, 3, 4]


def test_prune_deletes_in_batches_of_at_most_200() -> None:
    # Given 451 versions, default 451: after publishing 452 and keeping 2, 450 versions are deletable
    store = FakeLaunchTemplates(versions=range(1, 452), default=451)
    autoscaling = FakeAutoScaling(group=make_group(version="451"))
    # When the new version is published
    output = logic.run(
        publish_request(), config_keeping(2), launch_templates=store, autoscaling=autoscaling, groups=FakeGroups()
    )
    # Then deletion takes 3 calls of 200, 200 and 50
    assert [len(batch) for batch in store.delete_batches] == [200, 200, 50]
    assert output.pruned_versions == list(range(1, 451))
    assert sorted(store.versions) == [451, 452]


def test_prune_reports_unexpected_per_version_errors_and_counts_missing_versions_as_done() -> None:
    # Given version 2 fails with an unexpected error and version 3 disappears before deletion
    store = FakeLaunchTemplates(versions=range(1, 6), default=5)
    store.delete_failures[2] = ("unexpectedError", "throttled")
    store.delete_failures[3] = ("launchTemplateVersionDoesNotExist", "gone")
    # When version 6 is published with keep=2
    output = logic.run(
        publish_request(), config_keeping(2), launch_templates=store, autoscaling=FakeAutoScaling(), groups=FakeGroups()
    )
    # Then 3 counts as pruned, 2 is reported with its code and message
    assert output.pruned_versions == [3, 4]
    assert [f.model_dump(by_alias=True) for f in output.prune_failures] == [
        {"version": 2, "code": "unexpectedError", "message": "throttled"}
    ]


def test_publish_dry_run_reports_the_versions_and_the_prune_plan_and_changes_nothing() -> None:
    # Given versions 1..6, default 6
    store = FakeLaunchTemplates(versions=range(1, 7), default=6)
    # When publishing in dry run with keep=3
    output = logic.run(
        publish_request(dry_run=True),
        config_keeping(3),
        launch_templates=store,
        autoscaling=FakeAutoScaling(),
        groups=FakeGroups(),
    )
    # Then it predicts version 7 and pruning 1..4 (the group's version 1 is kept), and changes nothing
    assert (output.version, output.previous_version, output.created) == (7, 6, True)
    assert output.pruned_versions == [2, 3, 4]
    assert store.created == []
    assert store.default_changes == []
    assert store.delete_batches == []


# --- prune: other groups of the application (blue-green) ---------------------------------------------


def test_publish_keeps_version_used_by_retained_group() -> None:
    # Given versions 1..10 (default 10), the configured group on 10, and a retained blue-green group scaled to
    # zero on version 2 (found by the application tag)
    store = FakeLaunchTemplates(versions=range(1, 11), default=10)
    autoscaling = FakeAutoScaling(group=make_group(version="10"))
    groups = FakeGroups(tagged=[app_group(f"{GROUP}-exec1", "2"), app_group(f"{GROUP}-exec2", "10", role="live")])
    # When version 11 is published with keep=3
    output = logic.run(
        publish_request(), config_keeping(3), launch_templates=store, autoscaling=autoscaling, groups=groups
    )
    # Then version 2 stays for the retained group, and the output says why each remaining version stays
    assert output.pruned_versions == [1, 3, 4, 5, 6, 7, 8]
    assert sorted(store.versions) == [2, 9, 10, 11]
    kept = {k.version: k.reasons for k in output.kept_versions}
    assert kept[2] == [f"used by Auto Scaling group {GROUP}-exec1 (retained)"]
    assert kept[10] == [
        "the previous default",
        f"used by the configured group {GROUP}",
        f"used by Auto Scaling group {GROUP}-exec2 (live)",
        "one of the newest 3",
    ]
    assert kept[11] == ["published by this execution: the default", "one of the newest 3"]
    assert [k.version for k in output.kept_versions] == [11, 10, 9, 2]


def test_publish_resolves_latest_and_default_of_groups_against_the_versions_before_publishing() -> None:
    # Given versions 1..10 with default 4, one group on $Latest and one on $Default
    store = FakeLaunchTemplates(versions=range(1, 11), default=4)
    groups = FakeGroups(tagged=[app_group("green", "$Latest", role="green"), app_group("blue", "$Default")])
    # When version 11 is published with keep=2
    output = logic.run(
        publish_request(), config_keeping(2), launch_templates=store, autoscaling=FakeAutoScaling(), groups=groups
    )
    # Then $Latest is 10 and $Default is 4 (what their instances run), not the new version 11
    kept = {k.version: k.reasons for k in output.kept_versions}
    assert "used by Auto Scaling group green (green)" in kept[10]
    assert "used by Auto Scaling group blue (retained)" in kept[4]
    assert not any("Auto Scaling group" in reason for reason in kept[11])
    assert output.pruned_versions == [2, 3, 5, 6, 7, 8, 9]  # the configured group is on version 1


def test_publish_ignores_groups_on_other_launch_templates() -> None:
    # Given a group of the application on version 3 of another template
    store = FakeLaunchTemplates(versions=range(1, 6), default=5)
    groups = FakeGroups(tagged=[app_group("other", "3", template="lt-0ccccccccccccccc3")])
    # When version 6 is published with keep=2
    output = logic.run(
        publish_request(), config_keeping(2), launch_templates=store, autoscaling=FakeAutoScaling(), groups=groups
    )
    # Then version 3 of our template is pruned (the configured group runs version 1, which stays)
    assert output.pruned_versions == [2, 3, 4]


def test_publish_keeps_versions_of_other_configured_groups_sharing_the_template() -> None:
    # Given a second, untagged configured group on the same template, on version 2
    config = config_keeping(2).model_copy(
        update={
            "stages": (
                CONFIG.stages[0].model_copy(
                    update={
                        "targets": (
                            TARGET,
                            Target(auto_scaling_group_name="web-app-canary", launch_template_id=TEMPLATE),
                        )
                    }
                ),
                *CONFIG.stages[1:],
            )
        }
    )
    store = FakeLaunchTemplates(versions=range(1, 6), default=5)
    groups = FakeGroups(untagged=[app_group("web-app-canary", "2", role=None)])
    # When version 6 is published for the first group with keep=2
    output = logic.run(publish_request(), config, launch_templates=store, autoscaling=FakeAutoScaling(), groups=groups)
    # Then the other configured group was asked for by name (not the target's own, already read), and its
    # version stays
    assert groups.asked == [("web-app", ["web-app-canary"])]
    assert output.pruned_versions == [3, 4]
    assert {k.version: k.reasons for k in output.kept_versions}[2] == ["used by Auto Scaling group web-app-canary"]


@given(
    existing=st.sets(st.integers(min_value=1, max_value=60), min_size=1, max_size=40),
    keep=st.integers(min_value=2, max_value=10),
    protected=st.sets(st.integers(min_value=1, max_value=60), max_size=5),
)
def test_prune_plan_never_deletes_protected_or_newest_and_only_existing_versions(
    existing: set[int], keep: int, protected: set[int]
) -> None:
    # Given any set of versions, keep count and protected versions
    # When the plan is made
    doomed = logic.plan_prune(existing, keep, protected)
    # Then it deletes only existing, unprotected versions outside the newest `keep`, and all others
    newest = set(sorted(existing, reverse=True)[:keep])
    assert set(doomed) <= existing
    assert not set(doomed) & (newest | protected)
    assert set(doomed) == existing - newest - protected
    assert doomed == sorted(doomed)


def test_prune_plan_refuses_keeping_fewer_than_two() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        logic.plan_prune({1, 2, 3}, 1, set())


# --- adapter (Stubber) ---------------------------------------------------------------------------


def _version_item(n: int, *, default: bool = False, description: str = "", image: str = OLD_AMI) -> dict[str, Any]:
    return {
        "LaunchTemplateId": TEMPLATE,
        "VersionNumber": n,
        "DefaultVersion": default,
        "VersionDescription": description,
        "LaunchTemplateData": {"ImageId": image, "InstanceType": "t3.micro"},
    }


def test_publish_sends_source_version_client_token_and_only_the_image_then_deletes_with_real_shapes() -> None:
    # Given EC2 with versions 1..5 (default 5), the configured group on version 5 and a retained group of the
    # application on version 4 through a mixed instances policy, behind Stubbers
    ec2 = boto3.client("ec2", region_name=REGION)
    asg = boto3.client("autoscaling", region_name=REGION)
    request = publish_request()
    with Stubber(ec2) as ec2_stub, Stubber(asg) as asg_stub:
        ec2_stub.add_response(
            "describe_launch_template_versions",
            {"LaunchTemplateVersions": [_version_item(n, default=n == 5) for n in range(1, 6)]},
            {"LaunchTemplateId": TEMPLATE, "MaxResults": 200},
        )
        asg_stub.add_response(
            "describe_auto_scaling_groups",
            {
                "AutoScalingGroups": [
                    {
                        "AutoScalingGroupName": GROUP,
                        "MinSize": 1,
                        "MaxSize": 2,
                        "DesiredCapacity": 1,
                        "DefaultCooldown": 300,
                        "AvailabilityZones": ["eu-west-1a"],
                        "HealthCheckType": "EC2",
                        "CreatedTime": STARTED,
                        "LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "Version": "5"},
                    }
                ]
            },
            {"AutoScalingGroupNames": [GROUP]},
        )
        asg_stub.add_response(
            "describe_instance_refreshes", {"InstanceRefreshes": []}, {"AutoScalingGroupName": GROUP, "MaxRecords": 100}
        )
        asg_stub.add_response(
            "describe_auto_scaling_groups",
            {
                "AutoScalingGroups": [
                    {
                        "AutoScalingGroupName": f"{GROUP}-exec1",
                        "MinSize": 0,
                        "MaxSize": 0,
                        "DesiredCapacity": 0,
                        "DefaultCooldown": 300,
                        "AvailabilityZones": ["eu-west-1a"],
                        "HealthCheckType": "ELB",
                        "CreatedTime": STARTED,
                        "MixedInstancesPolicy": {
                            "LaunchTemplate": {
                                "LaunchTemplateSpecification": {"LaunchTemplateId": TEMPLATE, "Version": "4"},
                                "Overrides": [{"InstanceType": "t3.small"}],
                            }
                        },
                        "Tags": [
                            {"Key": tags.APPLICATION, "Value": "web-app"},
                            {"Key": tags.ROLE, "Value": "retained"},
                        ],
                    }
                ]
            },
            {"Filters": [{"Name": f"tag:{tags.APPLICATION}", "Values": ["web-app"]}], "MaxRecords": 100},
        )
        ec2_stub.add_response(
            "create_launch_template_version",
            {"LaunchTemplateVersion": _version_item(6, image=AMI)},
            {
                "LaunchTemplateId": TEMPLATE,
                "SourceVersion": "5",
                "LaunchTemplateData": {"ImageId": AMI},
                "VersionDescription": logic.version_description(request, 5),
                "ClientToken": logic.client_token(EXECUTION, TEMPLATE),
            },
        )
        ec2_stub.add_response(
            "modify_launch_template",
            {"LaunchTemplate": {"LaunchTemplateId": TEMPLATE, "DefaultVersionNumber": 6}},
            {"LaunchTemplateId": TEMPLATE, "DefaultVersion": "6"},
        )
        ec2_stub.add_response(
            "delete_launch_template_versions",
            {
                "SuccessfullyDeletedLaunchTemplateVersions": [{"LaunchTemplateId": TEMPLATE, "VersionNumber": 1}],
                "UnsuccessfullyDeletedLaunchTemplateVersions": [
                    {
                        "LaunchTemplateId": TEMPLATE,
                        "VersionNumber": 2,
                        "ResponseError": {"Code": "launchTemplateVersionDoesNotExist", "Message": "gone"},
                    },
                    {
                        "LaunchTemplateId": TEMPLATE,
                        "VersionNumber": 3,
                        "ResponseError": {"Code": "unexpectedError", "Message": "try later"},
                    },
                ],
            },
            {"LaunchTemplateId": TEMPLATE, "Versions": ["1", "2", "3"]},
        )
        # When version 6 is published with keep=3
        output = logic.run(
            request,
            config_keeping(3),
            launch_templates=LaunchTemplates(ec2),
            autoscaling=AutoScaling(asg),
            groups=FleetReferences(ec2, asg),
        )
        ec2_stub.assert_no_pending_responses()
        asg_stub.assert_no_pending_responses()
    # Then the results are translated: 2 (already gone) counts as pruned, 3 is reported; each kept version says why
    assert output.model_dump(by_alias=True) == {
        "launchTemplateId": TEMPLATE,
        "amiId": request.ami_id,
        "version": 6,
        "previousVersion": 5,
        "created": True,
        "prunedVersions": [1, 2],
        "pruneFailures": [{"version": 3, "code": "unexpectedError", "message": "try later"}],
        "keptVersions": [
            {"version": 6, "reasons": ["published by this execution: the default", "one of the newest 3"]},
            {
                "version": 5,
                "reasons": ["the previous default", f"used by the configured group {GROUP}", "one of the newest 3"],
            },
            {
                "version": 4,
                "reasons": [f"used by Auto Scaling group {GROUP}-exec1 (retained)", "one of the newest 3"],
            },
        ],
    }


def test_adapter_reports_a_failed_delete_call_for_every_version_of_the_batch() -> None:
    # Given DeleteLaunchTemplateVersions fails as a whole
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as stub:
        stub.add_client_error("delete_launch_template_versions", service_error_code="UnauthorizedOperation")
        # When two versions are deleted
        outcome = LaunchTemplates(ec2).delete_versions(TEMPLATE, [1, 2])
    # Then both are reported as failures with the code, none silently dropped
    assert [(f.version, f.code) for f in outcome.failures] == [
        (1, "UnauthorizedOperation"),
        (2, "UnauthorizedOperation"),
    ]


def test_adapter_refuses_more_than_200_versions_per_delete() -> None:
    with pytest.raises(ValueError, match="at most 200"):
        LaunchTemplates(boto3.client("ec2", region_name=REGION)).delete_versions(TEMPLATE, list(range(1, 202)))


NOT_FOUND_CODES = [
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateId.Malformed",
    "InvalidLaunchTemplateId.VersionNotFound",
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateName.MalformedException",
]
# Every reader of DescribeLaunchTemplateVersions: publish's (as it is) and prune's (aliases resolved).
VERSION_READERS: list[Callable[[Any], Any]] = [
    lambda ec2: LaunchTemplates(ec2).list_versions(TEMPLATE),
    lambda ec2: LaunchTemplates(ec2).default_version(TEMPLATE),
    lambda ec2: FleetReferences(ec2, object()).launch_template_versions(TEMPLATE),
    lambda ec2: FleetReferences(ec2, object()).default_version_image_id(TEMPLATE),
]


@pytest.mark.parametrize("read", VERSION_READERS)
@pytest.mark.parametrize("code", NOT_FOUND_CODES)
def test_adapter_translates_ec2_not_found_codes_into_launch_template_not_found(
    code: str, read: Callable[[Any], Any]
) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as stub:
        # Given EC2 answers a not-found code
        stub.add_client_error("describe_launch_template_versions", service_error_code=code)
        # When / Then every reader says the same
        with pytest.raises(LaunchTemplateNotFound, match=code):
            read(ec2)


@pytest.mark.parametrize("read", VERSION_READERS)
def test_a_version_that_cannot_be_read_is_an_error_not_a_version_without_an_ami(read: Callable[[Any], Any]) -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    with Stubber(ec2) as stub:
        # Given the read is denied (the role may not describe versions, or a resolved read its AMI parameter)
        stub.add_client_error("describe_launch_template_versions", service_error_code="UnauthorizedOperation")
        # When / Then the error reaches the caller: prune never takes it for a template that launches nothing
        with pytest.raises(ClientError, match="UnauthorizedOperation"):
            read(ec2)


def test_publish_and_prune_read_the_same_version_alike_but_only_prune_resolves_aliases() -> None:
    ec2 = boto3.client("ec2", region_name=REGION)
    answer = {
        "LaunchTemplateVersions": [
            {
                "LaunchTemplateId": TEMPLATE,
                "VersionNumber": 3,
                "VersionDescription": "deployed",
                "DefaultVersion": True,
                "LaunchTemplateData": {"ImageId": AMI},
            }
        ]
    }
    with Stubber(ec2) as stub:
        # Given one version, asked for by publish (as it is) and by prune (ResolveAlias)
        stub.add_response(
            "describe_launch_template_versions", answer, {"LaunchTemplateId": TEMPLATE, "MaxResults": 200}
        )
        stub.add_response(
            "describe_launch_template_versions",
            answer,
            {"LaunchTemplateId": TEMPLATE, "ResolveAlias": True, "MaxResults": 200},
        )
        # When both read it
        published = LaunchTemplates(ec2).list_versions(TEMPLATE)
        pruned = FleetReferences(ec2, object()).launch_template_versions(TEMPLATE)
        # Then they hold one record: the same number, AMI and default
        stub.assert_no_pending_responses()
    assert published == pruned == [TemplateVersion(number=3, image_id=AMI, description="deployed", is_default=True)]


# --- handler end to end (moto EC2 and groups, stubbed configured group reads) ------------------------------


@pytest.fixture
def moto_handler(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The handler with EC2 in moto, a Stubber-backed Auto Scaling for the configured group's reads (moto has
    no instance refreshes), and the application's groups listed from moto's Auto Scaling."""
    with mock_aws():
        handler = importlib.import_module("publish_launch_template_version.handler")
        ec2 = boto3.client("ec2", region_name=REGION)
        template_id = ec2.create_launch_template(
            LaunchTemplateName="web-app", LaunchTemplateData={"ImageId": OLD_AMI, "InstanceType": "t3.micro"}
        )["LaunchTemplate"]["LaunchTemplateId"]
        config = dict(SAMPLE_DEPLOY_CONFIG)
        config["stages"] = [
            {"name": "test", "targets": [{"autoScalingGroupName": GROUP, "launchTemplateId": template_id}]}
        ]
        monkeypatch.setattr(handler, "CONFIG", DeployConfig.model_validate(config))
        monkeypatch.setattr(handler, "launch_templates", lambda: LaunchTemplates(ec2))
        asg = boto3.client("autoscaling", region_name=REGION)
        monkeypatch.setattr(handler, "autoscaling", lambda: AutoScaling(asg))
        moto_asg = boto3.client("autoscaling", region_name=REGION)
        monkeypatch.setattr(handler, "fleet", lambda: FleetReferences(ec2, moto_asg))
        yield handler, ec2, asg, template_id, moto_asg


def _stub_group_reads(stub: Stubber, template_id: str) -> None:
    stub.add_response(
        "describe_auto_scaling_groups",
        {
            "AutoScalingGroups": [
                {
                    "AutoScalingGroupName": GROUP,
                    "MinSize": 0,
                    "MaxSize": 2,
                    "DesiredCapacity": 0,
                    "DefaultCooldown": 300,
                    "AvailabilityZones": ["eu-west-1a"],
                    "HealthCheckType": "EC2",
                    "CreatedTime": STARTED,
                    "LaunchTemplate": {"LaunchTemplateId": template_id, "Version": "1"},
                }
            ]
        },
    )
    stub.add_response("describe_instance_refreshes", {"InstanceRefreshes": []})


def test_handler_publishes_with_moto_and_a_retry_returns_the_same_version(
    moto_handler: Any, lambda_context: Any
) -> None:
    handler, ec2, asg, template_id, _ = moto_handler
    event = {
        "executionId": EXECUTION,
        "target": {"autoScalingGroupName": GROUP, "launchTemplateId": template_id},
        "amiId": AMI,
        "commit": "3f2c1e9",
    }
    with Stubber(asg) as stub:
        _stub_group_reads(stub, template_id)
        _stub_group_reads(stub, template_id)
        # Given a template with one version; When the handler runs twice for the same execution
        first = handler.lambda_handler(event, lambda_context)
        second = handler.lambda_handler(event, lambda_context)
    # Then one version 2 exists, it is the default with the new AMI, and the retry reports created=false
    assert first == {
        "launchTemplateId": template_id,
        "amiId": event["amiId"],
        "version": 2,
        "previousVersion": 1,
        "created": True,
        "prunedVersions": [],
        "pruneFailures": [],
        "keptVersions": [
            {"version": 2, "reasons": ["published by this execution: the default", "one of the newest 3"]},
            {
                "version": 1,
                "reasons": ["the previous default", f"used by the configured group {GROUP}", "one of the newest 3"],
            },
        ],
    }
    assert second == {**first, "created": False}
    versions = ec2.describe_launch_template_versions(LaunchTemplateId=template_id)["LaunchTemplateVersions"]
    assert len(versions) == 2
    default = next(v for v in versions if v["DefaultVersion"])
    assert (default["VersionNumber"], default["LaunchTemplateData"]["ImageId"]) == (2, AMI)


def _moto_group(asg: Any, name: str, template_id: str, version: str, group_tags: dict[str, str]) -> None:
    """A group scaled to zero (as a retained blue-green group is), tagged as given."""
    asg.create_auto_scaling_group(
        AutoScalingGroupName=name,
        LaunchTemplate={"LaunchTemplateId": template_id, "Version": version},
        MinSize=0,
        MaxSize=0,
        DesiredCapacity=0,
        AvailabilityZones=[f"{REGION}a"],
        Tags=[{"Key": k, "Value": v, "PropagateAtLaunch": False} for k, v in group_tags.items()],
    )


def test_handler_keeps_the_version_of_a_retained_group_scaled_to_zero(moto_handler: Any, lambda_context: Any) -> None:
    handler, ec2, asg, template_id, moto_asg = moto_handler
    # Given versions 1..5 (default 5; the configured group's reads say version 1, keep 3), a retained group of
    # the application scaled to zero on version 2, and another application's group on version 3
    for _ in range(4):
        ec2.create_launch_template_version(LaunchTemplateId=template_id, LaunchTemplateData={"ImageId": OLD_AMI})
    ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion="5")
    _moto_group(moto_asg, f"{GROUP}-exec1", template_id, "2", {tags.APPLICATION: "web-app", tags.ROLE: "retained"})
    _moto_group(moto_asg, "other-app-prod", template_id, "3", {tags.APPLICATION: "other-app", tags.ROLE: "retained"})
    event = {"executionId": EXECUTION, "target": {"autoScalingGroupName": GROUP, "launchTemplateId": template_id}}
    with Stubber(asg) as stub:
        _stub_group_reads(stub, template_id)
        # When version 6 is published in dry run (moto has no DeleteLaunchTemplateVersions)
        result = handler.lambda_handler({**event, "amiId": AMI, "dryRun": True}, lambda_context)
    # Then 2 would stay for the retained group (the configured group keeps 1), only 3 would go: the other
    # application's group is not ours to protect
    assert result["prunedVersions"] == [3]
    kept = {k["version"]: k["reasons"] for k in result["keptVersions"]}
    assert sorted(kept) == [1, 2, 4, 5, 6]
    assert kept[2] == [f"used by Auto Scaling group {GROUP}-exec1 (retained)"]


def test_handler_reports_a_missing_template_as_launch_template_not_found(
    moto_handler: Any, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler, _, _, _, _ = moto_handler
    # Given a configured template id that EC2 (moto) does not know
    missing = "lt-0123456789abcdef0"
    config = dict(SAMPLE_DEPLOY_CONFIG)
    config["stages"] = [{"name": "test", "targets": [{"autoScalingGroupName": GROUP, "launchTemplateId": missing}]}]
    monkeypatch.setattr(handler, "CONFIG", DeployConfig.model_validate(config))
    event = {
        "executionId": EXECUTION,
        "target": {"autoScalingGroupName": GROUP, "launchTemplateId": missing},
        "amiId": AMI,
    }
    # When / Then the real EC2 error code is translated
    with pytest.raises(LaunchTemplateNotFound, match=r"InvalidLaunchTemplateId\.NotFound"):
        handler.lambda_handler(event, lambda_context)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"amiId": "ami-XYZ"}, "amiId"),
        ({"amiId": None}, "amiId"),
        ({"target": {"autoScalingGroupName": GROUP, "launchTemplateId": "$Default"}}, "launchTemplateId"),
        ({"dryRun": "yes"}, "dryRun"),
        ({"extra": 1}, "extra: unknown field"),
    ],
)
def test_handler_rejects_malformed_payloads_before_touching_aws(
    lambda_context: Any, monkeypatch: pytest.MonkeyPatch, change: dict[str, Any], message: str
) -> None:
    # Given clients behind Stubbers with no responses: any AWS call would fail the test
    handler = importlib.import_module("publish_launch_template_version.handler")
    ec2 = boto3.client("ec2", region_name=REGION)
    asg = boto3.client("autoscaling", region_name=REGION)
    monkeypatch.setattr(handler, "launch_templates", lambda: LaunchTemplates(ec2))
    monkeypatch.setattr(handler, "autoscaling", lambda: AutoScaling(asg))
    event = {
        "executionId": EXECUTION,
        "target": {"autoScalingGroupName": GROUP, "launchTemplateId": TEMPLATE},
        "amiId": AMI,
        **change,
    }
    # When / Then the payload is rejected with the field named
    with Stubber(ec2), Stubber(asg), pytest.raises(InvalidInput, match=message):
        handler.lambda_handler(event, lambda_context)
