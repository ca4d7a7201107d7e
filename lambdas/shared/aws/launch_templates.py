"""EC2 launch template versions: describe (the one reader of DescribeLaunchTemplateVersions), create, set the
default, delete.

Error translation: every "this template (or version) does not exist / is malformed" code becomes
`LaunchTemplateNotFound`; any other error (throttling, a denied ResolveAlias read of the AMI parameter) is raised
as it is, so a reader that cannot tell which AMI a version uses never answers "none" (prune depends on it).
`DeleteLaunchTemplateVersions` reports per-version results; they are returned as they are, the caller decides
what counts as done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from shared.aws.clients import adapter_client
from shared.errors import LaunchTemplateNotFound

# AWS limit of DeleteLaunchTemplateVersions (documented on the Versions parameter, not enforced by the model).
MAX_VERSIONS_PER_DELETE = 200
_PAGE_SIZE = 200  # the maximum MaxResults of DescribeLaunchTemplateVersions

# Amazon EC2 API Reference, "Error codes for the Amazon EC2 API" (client errors): the template id or name, or the
# version, does not exist or is not valid. botocore's EC2 model declares no error shapes, so the codes are listed
# here; they are the only ones that mean "no such template or version".
_NOT_FOUND_CODES = frozenset(
    {
        "InvalidLaunchTemplateId.NotFound",
        "InvalidLaunchTemplateId.Malformed",
        "InvalidLaunchTemplateId.VersionNotFound",
        "InvalidLaunchTemplateName.NotFoundException",
        "InvalidLaunchTemplateName.MalformedException",
    }
)


@dataclass(frozen=True)
class TemplateVersion:
    number: int
    image_id: str | None  # None when the version sets no AMI; the AMI an SSM alias resolves to when read resolved
    description: str
    is_default: bool
    created: datetime | None = None  # CreateTime


@dataclass(frozen=True)
class VersionDeleteFailure:
    version: int
    code: str
    message: str


@dataclass(frozen=True)
class DeleteOutcome:
    deleted: tuple[int, ...]
    failures: tuple[VersionDeleteFailure, ...]


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _to_version(item: dict[str, Any]) -> TemplateVersion:
    return TemplateVersion(
        number=int(item["VersionNumber"]),
        image_id=item.get("LaunchTemplateData", {}).get("ImageId") or None,
        description=item.get("VersionDescription") or "",
        is_default=bool(item.get("DefaultVersion", False)),
        created=item.get("CreateTime"),
    )


class LaunchTemplates:
    def __init__(self, ec2: Any = None) -> None:
        self._ec2 = adapter_client(ec2, "ec2")

    def _not_found(self, exc: ClientError, template_id: str) -> LaunchTemplateNotFound:
        message = exc.response.get("Error", {}).get("Message", "")
        return LaunchTemplateNotFound(f"launch template {template_id}: {_error_code(exc)}: {message}")

    def describe_versions(
        self,
        template_id: str | None = None,
        *,
        template_name: str | None = None,
        versions: Sequence[str] = (),
        resolve_alias: bool = False,
    ) -> list[TemplateVersion]:
        """The template's versions (all of them, 200 a page, unless `versions` names some: numbers, "$Default",
        "$Latest"), by id or else by name.

        `resolve_alias`: an ImageId given as "resolve:ssm:<parameter>" comes back as the AMI id it resolves to
        (ResolveAlias, which reads the parameter as the caller: ssm:GetParameters); without it, as the alias.
        """
        request: dict[str, Any] = (
            {"LaunchTemplateId": template_id} if template_id else {"LaunchTemplateName": template_name}
        )
        if resolve_alias:
            request["ResolveAlias"] = True
        if versions:
            request["Versions"] = list(versions)
        else:
            request["PaginationConfig"] = {"PageSize": _PAGE_SIZE}
        paginator = self._ec2.get_paginator("describe_launch_template_versions")
        try:
            return [
                _to_version(item)
                for page in paginator.paginate(**request)
                for item in page.get("LaunchTemplateVersions", [])
            ]
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                which = template_id or template_name
                raise self._not_found(exc, f"{which} (versions {list(versions) or 'all'})") from exc
            raise

    def list_versions(self, template_id: str) -> list[TemplateVersion]:
        """Every version of the template."""
        return self.describe_versions(template_id)

    def default_version(self, template_id: str, *, resolve_alias: bool = False) -> TemplateVersion:
        found = self.describe_versions(template_id, versions=["$Default"], resolve_alias=resolve_alias)
        if not found:
            raise LaunchTemplateNotFound(f"launch template {template_id} has no default version")
        return found[0]

    def create_version(
        self, template_id: str, *, source_version: int, image_id: str, description: str, client_token: str
    ) -> TemplateVersion:
        """A new version copied from `source_version` with only ImageId replaced."""
        try:
            response = self._ec2.create_launch_template_version(
                LaunchTemplateId=template_id,
                SourceVersion=str(source_version),
                LaunchTemplateData={"ImageId": image_id},
                VersionDescription=description,
                ClientToken=client_token,
            )
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise self._not_found(exc, template_id) from exc
            raise
        return _to_version(response["LaunchTemplateVersion"])

    def set_default_version(self, template_id: str, version: int) -> None:
        try:
            self._ec2.modify_launch_template(LaunchTemplateId=template_id, DefaultVersion=str(version))
        except ClientError as exc:
            if _error_code(exc) in _NOT_FOUND_CODES:
                raise self._not_found(exc, template_id) from exc
            raise

    def delete_versions(self, template_id: str, versions: Sequence[int]) -> DeleteOutcome:
        """Delete up to MAX_VERSIONS_PER_DELETE versions in one call.

        A call that fails as a whole (other than for a missing template) reports every version of the
        batch as failed with the call's error code, so nothing is silently dropped.
        """
        if not versions:
            return DeleteOutcome(deleted=(), failures=())
        if len(versions) > MAX_VERSIONS_PER_DELETE:
            raise ValueError(f"DeleteLaunchTemplateVersions takes at most {MAX_VERSIONS_PER_DELETE} versions")
        try:
            response = self._ec2.delete_launch_template_versions(
                LaunchTemplateId=template_id, Versions=[str(v) for v in versions]
            )
        except ClientError as exc:
            code = _error_code(exc)
            if code in _NOT_FOUND_CODES:
                raise self._not_found(exc, template_id) from exc
            message = str(exc.response.get("Error", {}).get("Message", ""))
            return DeleteOutcome(
                deleted=(),
                failures=tuple(VersionDeleteFailure(version=v, code=code, message=message) for v in versions),
            )
        deleted = tuple(
            int(item["VersionNumber"]) for item in response.get("SuccessfullyDeletedLaunchTemplateVersions", [])
        )
        failures = tuple(
            VersionDeleteFailure(
                version=int(item["VersionNumber"]),
                code=str(item.get("ResponseError", {}).get("Code", "unexpectedError")),
                message=str(item.get("ResponseError", {}).get("Message", "")),
            )
            for item in response.get("UnsuccessfullyDeletedLaunchTemplateVersions", [])
        )
        return DeleteOutcome(deleted=deleted, failures=failures)
