"""Input, output and environment of the register_wait step."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.statuses import FINAL_IMAGE_STATUSES, FINAL_REFRESH_STATUSES

WaitKind = Literal["refresh", "image"]
# An image *build version* ARN (botocore imagebuilder ImageBuildVersionArn): the ARN Image Builder's state
# change events name in resources[0], so the only one a wait can be matched with.
IMAGE_BUILD_VERSION_ARN_PATTERN = (
    r"^arn:aws[^:]*:imagebuilder:[^:]+:(?:[0-9]{12}|aws(?:-[a-z-]+)?):image/[a-z0-9-_]+/[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$"
)

# A wait ends on these statuses; anything else is still under way.
TERMINAL_STATUSES: dict[str, frozenset[str]] = {"refresh": FINAL_REFRESH_STATUSES, "image": FINAL_IMAGE_STATUSES}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class RegisterWaitInput(_Model):
    model_config = ConfigDict(extra="forbid", strict=True)

    task_token: str = Field(min_length=1, max_length=2048, repr=False)  # $$.Task.Token
    execution_id: str = Field(min_length=1, max_length=2048)
    dry_run: bool = False
    kind: WaitKind
    # The instance refresh id (kind refresh) or the image build version ARN (kind image).
    resource_id: str = Field(min_length=1, max_length=1024)
    auto_scaling_group_name: str | None = Field(default=None, min_length=1, max_length=255)


class RegisterWaitOutput(_Model):
    registered: bool
    already_done: bool  # the resource had already finished when the wait was registered
    status: str | None  # its status at that look (None when the look failed or found nothing yet)


class RegisterWaitEnvironment(BaseModel):
    """What the stack sets on the register_wait function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    lock_table_name: str = Field(alias="LOCK_TABLE_NAME", min_length=1)
    wait_ttl_seconds: int = Field(alias="WAIT_TTL_SECONDS", gt=0)
