"""Input and output of the publish_launch_template_version step."""

from __future__ import annotations

from pydantic import Field

from shared.config import Target
from shared.models import Payload, StepInput, StepModel


class CommitImage(Payload):
    commit: str | None
    ami_id: str = Field(pattern=r"^ami-[0-9a-f]{8,17}$")


class PublishInput(StepInput):
    target: Target
    ami_id: str = Field(pattern=r"^ami-[0-9a-f]{8,17}$")
    commit: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._/-]{1,128}$")
    # After a failed publish: put back the default this execution replaced, if it replaced one (rule 5).
    restore: bool = False
    # rebuild-base: the image baked for each commit the targets run. The target gets the image of the commit
    # its default version runs today (never another stage's commit); amiId is then only the first of them.
    images: list[CommitImage] | None = None


class PruneFailure(StepModel):
    version: int
    code: str
    message: str


class KeptVersion(StepModel):
    version: int
    reasons: list[str]  # "the previous default", "used by Auto Scaling group web-app-prod-exec1 (retained)", ...


class PublishOutput(StepModel):
    launch_template_id: str
    # The AMI the version runs: in a rebuild of several commits, the image of this target's own commit.
    ami_id: str
    version: int
    previous_version: int
    created: bool
    pruned_versions: list[int]
    prune_failures: list[PruneFailure]
    kept_versions: list[KeptVersion]  # every version left, newest first, with why it stays


class RestoreOutput(StepModel):
    launch_template_id: str
    restored: bool  # True when this execution's version was the default and the previous one is again
    default_version: int
    reason: str
