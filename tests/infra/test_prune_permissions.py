"""What the prune may delete and read: deletes only what carries this application's tag, SSM and Image Builder
reads scoped to what DescribeImageReferences needs; check_image_build may tag snapshots only with our tag."""

from __future__ import annotations

from typing import Any

from tests.infra.conftest import Synthesized
from tests.infra.test_stack import render, statements_of

OURS = {"StringEquals": {"aws:ResourceTag/immutable-ami:application": "web-app"}}


def actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def resources(statement: dict[str, Any]) -> list[str]:
    found = render(statement["Resource"])
    return found if isinstance(found, list) else [found]


def granting(synth: Synthesized, step: str, action: str) -> list[dict[str, Any]]:
    return [s for s in statements_of(synth, step) if action in actions(s) and s["Effect"] == "Allow"]


def test_prune_deletes_snapshots_and_deregisters_amis_only_with_the_application_tag(synthesized: Synthesized) -> None:
    for action in ("ec2:DeleteSnapshot", "ec2:DeregisterImage"):
        found = granting(synthesized, "prune_images", action)
        assert found, action
        for statement in found:
            assert statement.get("Condition") == OURS, action


def test_prune_holds_no_other_delete(synthesized: Synthesized) -> None:
    deletes = {
        action
        for statement in statements_of(synthesized, "prune_images")
        for action in actions(statement)
        if ":Delete" in action or ":Deregister" in action
    }
    assert deletes == {"ec2:DeleteSnapshot", "ec2:DeregisterImage"}


def test_prune_reads_ssm_parameters_of_this_account_and_region_only(synthesized: Synthesized) -> None:
    found = granting(synthesized, "prune_images", "ssm:GetParameters")
    assert found
    for statement in found:
        assert resources(statement) == ["arn:<AWS::Partition>:ssm:<AWS::Region>:<AWS::AccountId>:parameter/*"]


def test_reads_without_resource_types_are_usable_only_through_describe_image_references(
    synthesized: Synthesized,
) -> None:
    via_ec2 = {"ForAnyValue:StringEquals": {"aws:CalledVia": ["ec2-images.amazonaws.com"]}}
    for action in (
        "ssm:DescribeParameters",
        "imagebuilder:ListImageRecipes",
        "imagebuilder:ListContainerRecipes",
        "imagebuilder:GetContainerRecipe",
        "imagebuilder:GetImageRecipe",
    ):
        found = granting(synthesized, "prune_images", action)
        assert found, action
        for statement in found:
            assert statement.get("Condition") == via_ec2, action


def test_prune_reads_recipes_of_this_account_and_region_only(synthesized: Synthesized) -> None:
    for action in ("imagebuilder:GetContainerRecipe", "imagebuilder:GetImageRecipe"):
        for statement in granting(synthesized, "prune_images", action):
            assert all(
                r.startswith("arn:<AWS::Partition>:imagebuilder:<AWS::Region>:<AWS::AccountId>:")
                for r in resources(statement)
            ), action


def test_no_ssm_or_image_builder_read_of_the_prune_is_on_star_unconditioned(synthesized: Synthesized) -> None:
    for statement in statements_of(synthesized, "prune_images"):
        if any(a.startswith(("ssm:", "imagebuilder:")) for a in actions(statement)) and "*" in resources(statement):
            assert "aws:CalledVia" in str(statement.get("Condition")), statement


def test_check_image_build_tags_snapshots_only_with_our_application_and_keys_and_never_another_apps(
    synthesized: Synthesized,
) -> None:
    found = [
        s
        for s in granting(synthesized, "check_image_build", "ec2:CreateTags")
        if any(":snapshot/" in r for r in resources(s))
    ]
    assert len(found) == 2
    unless = []
    for statement in found:
        condition = statement["Condition"]
        assert condition["StringEquals"]["aws:RequestTag/immutable-ami:application"] == "web-app"
        keys = condition["ForAllValues:StringEquals"]["aws:TagKeys"]
        assert all(k.startswith("immutable-ami:") for k in keys)
        unless.append(
            condition.get("Null", {}).get("aws:ResourceTag/immutable-ami:application")
            or condition["StringEquals"].get("aws:ResourceTag/immutable-ami:application")
        )
    # Either the snapshot has no application tag yet, or it already has ours.
    assert sorted(unless) == ["true", "web-app"]
