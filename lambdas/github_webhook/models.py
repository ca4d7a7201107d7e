"""The function URL request, the GitHub push payload, the execution request, the response, the environment."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from validate_request.models import PlainText

from shared.models import Payload, StepModel

# ARNs as botocore's secretsmanager and stepfunctions models spell them (secret ARNs end in a random suffix).
SECRET_ARN_PATTERN = r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]+$"  # noqa: S105 (a pattern, not a password)
STATE_MACHINE_ARN_PATTERN = r"^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$"
# GitHub's owner/name: owners are letters, digits and hyphens; repository names add "." and "_".
REPOSITORY_PATTERN = r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+$"
COMMIT_PATTERN = r"^[0-9a-fA-F]{40}$"


def _is_utf8_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


class FunctionUrlRequest(StepModel):
    """The parts of a Lambda function URL event (payload format 2.0) the webhook reads.

    Other fields (requestContext, rawPath, ...) are AWS's and ignored; header names are lower-cased
    (function URLs already do so; this makes the lookups independent of that).
    """

    model_config = ConfigDict(extra="ignore", strict=True)

    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    is_base64_encoded: bool = False

    @field_validator("headers")
    @classmethod
    def _lower_case_names(cls, headers: dict[str, str]) -> dict[str, str]:
        """Names lower-cased; a name sent twice in different cases, or text no HTTP request can carry, is refused.

        Function URLs already send each name once, lower-cased: two spellings of one name would leave the webhook
        choosing one of two values (say, two X-GitHub-Event). A lone surrogate cannot come from HTTP bytes and
        would break every log line that names it. The messages name the header, never its value (a signature).
        """
        lowered: dict[str, str] = {}
        for name, value in headers.items():
            if not (_is_utf8_text(name) and _is_utf8_text(value)):
                raise ValueError(f"header {name!a} is not valid UTF-8 text")
            key = name.lower()
            if key in lowered:
                raise ValueError(f"header {key} is sent more than once (its names differ only in case)")
            lowered[key] = value
        return lowered

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _GitHub(BaseModel):
    """GitHub's payload objects: snake_case field names, many fields the webhook does not read."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


# What the webhook forwards is held to validate_request's rule for every string (PlainText: no control character,
# no line break, no whitespace at either end), here as a 400: nothing is trimmed on the way.
class Repository(_GitHub):
    full_name: Annotated[str, PlainText] = Field(min_length=3, max_length=255)


class Pusher(_GitHub):
    name: Annotated[str, PlainText] = Field(min_length=1, max_length=255)


class PushEvent(_GitHub):
    """The fields of a `push` delivery that decide whether to deploy (docs.github.com: webhook events, push)."""

    ref: Annotated[str, PlainText] = Field(min_length=1)
    # The full SHA of the branch's new head ("after": "The SHA of the most recent commit on ref after the push"):
    # forwarded as the commit, so no short SHA ever reaches the bake.
    after: str = Field(pattern=COMMIT_PATTERN)
    deleted: bool = False
    repository: Repository
    pusher: Pusher


class DeployRequest(Payload):
    """The execution input for an accepted push: the `deploy` request validate_request accepts from GitHub."""

    action: Literal["deploy"] = "deploy"
    commit: str = Field(pattern=r"^[0-9a-f]{40}$")
    branch: str = Field(min_length=1, max_length=255)
    repository: str = Field(min_length=1, max_length=255)
    trigger: Literal["github"] = "github"
    pusher: str | None = Field(default=None, max_length=255)
    delivery_id: str | None = Field(default=None, max_length=255)

    def execution_input(self) -> str:
        """Compact JSON in field order: a redelivery serialises to the very same string."""
        return json.dumps(self.model_dump(by_alias=True, mode="json", exclude_none=True), separators=(",", ":"))


class WebhookResponse(StepModel):
    status_code: int
    body: dict[str, Any]

    def to_function_url(self) -> dict[str, Any]:
        """The function URL response: status code, JSON content type, JSON body."""
        return {
            "statusCode": self.status_code,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(self.body, separators=(",", ":")),
        }


class GithubWebhookEnvironment(BaseModel):
    """What the stack sets on the github_webhook function (validated once, at cold start)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    webhook_secret_arn: str = Field(alias="WEBHOOK_SECRET_ARN", pattern=SECRET_ARN_PATTERN)
    state_machine_arn: str = Field(alias="STATE_MACHINE_ARN", pattern=STATE_MACHINE_ARN_PATTERN)
    github_repository: str = Field(alias="GITHUB_REPOSITORY", pattern=REPOSITORY_PATTERN, max_length=255)
    deploy_branch: str = Field(alias="DEPLOY_BRANCH", min_length=1, max_length=255)
