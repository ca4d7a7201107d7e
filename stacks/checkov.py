"""checkov skips: each check by its id, next to the resource it is about, each with a one-line reason.

checkov reads a skip from the resource's own template metadata (`Metadata.checkov.skip`, a list of
`{"id": ..., "comment": ...}`: https://www.checkov.io/2.Basics/Suppressing%20and%20Skipping%20Policies.html,
"CloudFormation"). tests/infra/test_checkov.py runs checkov on every synthesized variant and fails on any
failed check, and on a skip whose reason is missing or not one line: the way cdk-nag acknowledgements work
(stacks/nag.py).
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct

METADATA_KEY = "checkov"


def _resource(scope: IConstruct) -> CfnResource:
    if isinstance(scope, CfnResource):
        return scope
    child = scope.node.default_child
    if not isinstance(child, CfnResource):
        raise TypeError(f"{scope.node.path} is not a CloudFormation resource and has none as its default child")
    return child


def skip(scope: IConstruct, reason: str, *check_ids: str) -> None:
    """Skip `check_ids` on the resource `scope` is (or whose default child it is), giving `reason`."""
    if not reason.strip() or "\n" in reason:
        raise ValueError(f"a checkov skip needs a one-line reason, got {reason!r}")
    resource = _resource(scope)
    metadata = resource.get_metadata(METADATA_KEY) or {}
    skips = list(metadata.get("skip", []))
    known = {entry["id"] for entry in skips}
    skips.extend({"id": check_id, "comment": reason} for check_id in check_ids if check_id not in known)
    resource.add_metadata(METADATA_KEY, {**metadata, "skip": skips})


__all__ = ["skip"]
