"""Elastic Load Balancing v2: target health of a target group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client
from shared.errors import TargetGroupNotFound


@dataclass(frozen=True)
class TargetHealth:
    target_id: str
    port: int | None
    state: str  # initial | healthy | unhealthy | unhealthy.draining | unused | draining | unavailable
    reason: str
    description: str


class LoadBalancing:
    def __init__(self, elbv2: Any = None) -> None:
        self._elbv2 = adapter_client(elbv2, "elbv2")

    def target_health(self, target_group_arn: str) -> list[TargetHealth]:
        """Health of every target registered in the group (DescribeTargetHealth is not paginated)."""
        try:
            response = self._elbv2.describe_target_health(TargetGroupArn=target_group_arn)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "TargetGroupNotFound":
                raise TargetGroupNotFound(f"target group {target_group_arn} does not exist") from exc
            raise
        return [
            TargetHealth(
                target_id=item["Target"]["Id"],
                port=item["Target"].get("Port"),
                state=item.get("TargetHealth", {}).get("State", ""),
                reason=item.get("TargetHealth", {}).get("Reason", ""),
                description=item.get("TargetHealth", {}).get("Description", ""),
            )
            for item in response.get("TargetHealthDescriptions", [])
        ]
