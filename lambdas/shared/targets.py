"""The one check every step that changes a group makes first: is this a configured target?"""

from __future__ import annotations

from shared.config import DeployConfig, Target
from shared.errors import InvalidInput


def require_configured_target(config: DeployConfig, target: Target) -> None:
    """Only the configured (Auto Scaling group, launch template) pairs may be changed."""
    if target not in config.all_targets():
        raise InvalidInput(
            f"target {{autoScalingGroupName: {target.auto_scaling_group_name!r}, launchTemplateId: "
            f"{target.launch_template_id!r}}} is not a configured target"
        )
