"""Undoing a prune: Recycle Bin retention rules for this application's AMIs and their EBS snapshots.

A deregistered AMI, and a deleted snapshot, that carries the application tag is kept in the Recycle Bin for
`retention.recycleBinDays` days instead of being gone at once; `scripts/restore_image.py AMI` brings one back.
`retention.recycleBinDays: 0` makes no rule: pruned images are then gone for good.

What the AWS docs say, and what this relies on:
- `AWS::Rbin::Rule` (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-rbin-rule.html):
  ResourceType `EC2_IMAGE` or `EBS_SNAPSHOT`; ResourceTags (key and value) make a tag-level rule, which retains
  the resources of that type tagged with at least one of the pairs; RetentionPeriod is a value with the unit
  `DAYS`, 1 to 365 (https://docs.aws.amazon.com/recyclebin/latest/APIReference/API_RetentionPeriod.html).
- No LockConfiguration: the rule stays unlocked, so it can be changed or deleted (a stack update, or deleting the
  stack, must be able to); a locked rule cannot be changed until its unlock delay has passed.
- "If you have retention rules for AMIs and for their associated snapshots, make the retention period for the
  snapshots the same or longer than the retention period for the AMIs" (Considerations for Recycle Bin,
  https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/recycle-bin-factors.html): both rules use the same days.
  The same page: the first rule of an account and region can take up to 30 minutes to start retaining.
- The snapshots rule only finds snapshots with the application tag: check_image_build tags them; snapshots of
  AMIs baked before that are untagged, and the prune may not delete them (README, "Undoing a prune").
- Rules are regional: AMI copies of build.extraRegions are not covered (the prune only deletes in this region).
"""

from __future__ import annotations

from aws_cdk import aws_rbin as rbin
from constructs import Construct

from shared.tags import APPLICATION as APPLICATION_TAG
from stacks.config import PipelineConfig

# Recycle Bin resource types (AWS::Rbin::Rule ResourceType) and what each rule is for.
RESOURCE_TYPES = {"EC2_IMAGE": "AMIs", "EBS_SNAPSHOT": "EBS snapshots"}


class RecycleBin(Construct):
    """One tag-level retention rule per resource type, unlocked; none when retention.recycleBinDays is 0."""

    def __init__(self, scope: Construct, construct_id: str, *, config: PipelineConfig) -> None:
        super().__init__(scope, construct_id)
        self.days = config.retention.recycle_bin_days
        self.rules: dict[str, rbin.CfnRule] = {}
        if self.days == 0:
            return
        for resource_type, what in RESOURCE_TYPES.items():
            self.rules[resource_type] = rbin.CfnRule(
                self,
                f"{resource_type.title().replace('_', '')}Rule",
                resource_type=resource_type,
                description=(
                    f"Pruned {config.application} {what} stay restorable for {self.days} days "
                    f"(retention.recycleBinDays)"
                ),
                resource_tags=[
                    rbin.CfnRule.ResourceTagProperty(
                        resource_tag_key=APPLICATION_TAG, resource_tag_value=config.application
                    )
                ],
                retention_period=rbin.CfnRule.RetentionPeriodProperty(
                    retention_period_unit="DAYS", retention_period_value=self.days
                ),
            )
