"""Payload and result of the prune_images step."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from shared.models import StepInput

_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")


def _ami_id(value: str) -> str:
    if not _AMI_ID.fullmatch(value):
        raise PydanticCustomError("ami_id", "must be an AMI id like ami-0123456789abcdef0")
    return value


class _Input(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class _Output(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class PruneProgress(_Input):
    """What the invocations of one execution have done so far (cumulative), read back by the next invocation."""

    rounds: int = Field(ge=0)  # invocations that pruned (or planned, in a dry run)
    images_pruned: int = Field(ge=0)
    snapshots_deleted: int = Field(ge=0)
    failures: int = Field(ge=0)
    remaining: int = Field(ge=0)  # images the plan still deletes after the last invocation
    # Images DescribeImageReferences found referenced during this execution: kept, and not asked about again
    # (bounded: see logic.MAX_REFERENCED_CARRIED).
    referenced_ami_ids: list[Annotated[str, AfterValidator(_ami_id)]] = Field(default_factory=list)


class PruneImagesInput(StepInput):
    # AMIs this execution must keep whatever the rules say (the image just deployed, the rollback target).
    # A null entry (an optional id the state machine did not have) protects nothing and is dropped.
    protect_ami_ids: list[Annotated[str, AfterValidator(_ami_id)] | None] = Field(default_factory=list)

    # Null on an execution's first call; afterwards the previous invocation's progress.
    progress: PruneProgress | None = None

    def protected(self) -> frozenset[str]:
        return frozenset(i for i in self.protect_ami_ids if i is not None)


class SkippedImage(_Output):
    ami_id: str
    reason: str


class PruneFailure(_Output):
    ami_id: str
    code: str
    message: str


class PruneImagesOutput(_Output):
    """The lists are this invocation's (the images it pruned, ...); `progress` sums every invocation's."""

    images_kept: list[str]
    images_pruned: list[str]  # in a dry run: the images that would be pruned
    snapshots_deleted: list[str]  # in a dry run: the snapshots that would be deleted with them
    skipped: list[SkippedImage]
    failures: list[PruneFailure]
    # False: more images are to be pruned than this invocation could within its timeout and result size; the
    # state machine calls again with `progress` (its PruneProgress Choice loops until done).
    done: bool = True
    progress: PruneProgress
    # Snapshots of deregistered images left in place: untagged (baked before check_image_build tagged snapshots), so
    # the role may not delete them. Ids only (as snapshots_deleted, within the result budget); the why, once.
    snapshots_kept: list[str] = []
    snapshots_kept_reason: str | None = None
    # retention.recycleBinDays: how long a pruned image (and its tagged snapshots) stays restorable; 0 = never.
    recycle_bin_days: int = 0
    restorable: str = ""  # the same in words, for the notification
