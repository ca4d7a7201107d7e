"""The one check every step that changes a group makes first: is this a configured target?"""

from __future__ import annotations

from shared.config import DeployConfig, Strategy, Target
from shared.errors import InvalidInput


def _describe(target: Target) -> str:
    return (
        f"target {{autoScalingGroupName: {target.auto_scaling_group_name!r}, launchTemplateId: "
        f"{target.launch_template_id!r}}}"
    )


def require_configured_target(config: DeployConfig, target: Target) -> None:
    """Only the configured (Auto Scaling group, launch template) pairs may be changed."""
    if target not in config.all_targets():
        raise InvalidInput(f"{_describe(target)} is not a configured target")


def require_target_strategy(config: DeployConfig, target: Target, strategy: Strategy) -> None:
    """A configured target, in a stage of this strategy: a blue-green step never touches a rolling target's group
    (it would create, detach or delete groups the user expects to be refreshed in place), nor the reverse."""
    require_configured_target(config, target)
    if not any(stage.strategy == strategy and target in stage.targets for stage in config.stages):
        raise InvalidInput(f"{_describe(target)} is not configured in a {strategy} stage")
