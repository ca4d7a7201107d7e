"""Input (an EventBridge event), output and environment of the relay_event function."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models import StepModel

WaitKind = Literal["refresh", "image"]


class EventBridgeEvent(BaseModel):
    """The envelope fields the relay reads; EventBridge adds others (id, account, time, region...), ignored.

    Fields default to empty so that any event parses and an unexpected one is ignored with a reason
    instead of failing (a failing target is retried by EventBridge for nothing).
    """

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")

    source: str = ""
    detail_type: str = Field(default="", alias="detail-type")
    resources: list[str] = Field(default_factory=list)
    detail: dict[str, Any] = Field(default_factory=dict)


class RelayEventOutput(StepModel):
    resumed: bool
    kind: WaitKind | None
    resource_id: str | None
    reason: str


class RelayEventEnvironment(BaseModel):
    """What the stack sets on the relay_event function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lock_table_name: str = Field(alias="LOCK_TABLE_NAME", min_length=1)
