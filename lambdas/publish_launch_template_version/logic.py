"""Publish the new AMI as a launch template version, make it the default, prune old versions.

Safety rules: the new version is copied from the current default with only ImageId changed and
becomes the default (rule 1); at most `keepLaunchTemplateVersions` are kept, never the default, the
previous default or a version the group, its instances, an in-flight refresh or any other Auto Scaling
group of the application uses (a retained blue-green group scaled to zero included: a rollback brings it
back), deleted in batches of at most 200 with every unexpected per-version error reported (rule 3); the
output says why each remaining version was kept; a retry finds the version this execution made through
the marker in its description and the ClientToken (rule 6).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools.metrics import MetricUnit

from publish_launch_template_version.models import (
    KeptVersion,
    PruneFailure,
    PublishInput,
    PublishOutput,
    RestoreOutput,
)
from shared import tags
from shared.aws.autoscaling import Group, Refresh
from shared.aws.images import ImageRecord
from shared.aws.launch_templates import MAX_VERSIONS_PER_DELETE, DeleteOutcome, TemplateVersion
from shared.aws.references import ApplicationGroup
from shared.config import DeployConfig
from shared.errors import InvalidInput, LaunchTemplateNotFound, RollbackFailed
from shared.observability import logger, metrics
from shared.targets import require_configured_target
from shared.versions import version_number

MARKER_PREFIX = "immutable-ami"
MAX_DESCRIPTION_LENGTH = 255  # VersionDescription: max 255
VERSION_ALREADY_GONE = "launchTemplateVersionDoesNotExist"
_SOURCE_RE = re.compile(r" src=(\d+) ")


class LaunchTemplateStore(Protocol):
    def list_versions(self, template_id: str) -> list[TemplateVersion]: ...

    def create_version(
        self, template_id: str, *, source_version: int, image_id: str, description: str, client_token: str
    ) -> TemplateVersion: ...

    def set_default_version(self, template_id: str, version: int) -> None: ...

    def delete_versions(self, template_id: str, versions: Sequence[int]) -> DeleteOutcome: ...


class GroupReader(Protocol):
    def describe_group(self, name: str) -> Group: ...

    def describe_refreshes(self, group_name: str, refresh_ids: Sequence[str] = ()) -> list[Refresh]: ...


class ApplicationGroupReader(Protocol):
    def application_groups(self, application: str, names: Sequence[str] = ()) -> list[ApplicationGroup]: ...


class ImageReader(Protocol):
    def get_own_image(self, image_id: str) -> ImageRecord | None: ...


def image_of_own_commit(
    request: PublishInput, versions: Sequence[TemplateVersion], images: ImageReader
) -> PublishInput:
    """rebuild-base: the request with the image of the commit this target runs today.

    The commit is read from the AMI of the default version (tag COMMIT). A retry after this execution
    published keeps the version it published (its AMI is one of this rebuild's images).
    """
    assert request.images is not None
    template_id = request.target.launch_template_id
    baked = {image.ami_id: image for image in request.images}
    ours = own_version(request.execution_id, template_id, versions)
    if ours is not None and ours.image_id in baked:
        chosen = baked[ours.image_id]
        return request.model_copy(update={"ami_id": chosen.ami_id, "commit": chosen.commit})
    default = next((v for v in versions if v.is_default), None)
    if default is None or default.image_id is None:
        raise LaunchTemplateNotFound(f"launch template {template_id} has no default version with an AMI")
    running = images.get_own_image(default.image_id)
    commit = running.tags.get(tags.COMMIT) if running else None
    chosen_image = next((i for i in request.images if commit and i.commit == commit), None)
    if chosen_image is None:
        raise InvalidInput(
            f"rebuild-base: {request.target.auto_scaling_group_name} runs {default.image_id} (commit {commit}), "
            f"and this rebuild baked only {', '.join(str(i.commit) for i in request.images)}: "
            "a rebuild never moves a target to another commit"
        )
    logger.info(
        "rebuild-base: the target keeps its commit, on the new base",
        extra={"commit": commit, "amiId": chosen_image.ami_id, "launchTemplateId": template_id},
    )
    return request.model_copy(update={"ami_id": chosen_image.ami_id, "commit": commit})


def execution_digest(execution_id: str, template_id: str) -> str:
    return hashlib.sha256(f"{execution_id}|{template_id}".encode()).hexdigest()[:32]


def client_token(execution_id: str, template_id: str) -> str:
    """Deterministic per (execution, template): EC2 returns the same version when a create is retried."""
    return f"ia-{execution_digest(execution_id, template_id)}"


def marker(execution_id: str, template_id: str) -> str:
    return f"{MARKER_PREFIX} {execution_digest(execution_id, template_id)} "


def version_description(request: PublishInput, source_version: int) -> str:
    """Marker first (so truncation to 255 characters never cuts it), then what a human wants to read."""
    execution_name = request.execution_id.rsplit(":", 1)[-1]
    text = f"{marker(request.execution_id, request.target.launch_template_id)}src={source_version} ami={request.ami_id}"
    if request.commit:
        text += f" commit={request.commit}"
    text += f" execution={execution_name}"
    return text[:MAX_DESCRIPTION_LENGTH]


def plan_prune(existing: Iterable[int], keep: int, protected: Iterable[int]) -> list[int]:
    """Versions to delete: all but the newest `keep`, never a protected one; oldest first."""
    if keep < 2:
        raise ValueError("keepLaunchTemplateVersions must be at least 2")
    newest_first = sorted(set(existing), reverse=True)
    kept = set(newest_first[:keep]) | set(protected)
    return sorted(v for v in newest_first if v not in kept)


def resolve_version(version: str | None, versions: Sequence[TemplateVersion]) -> int | None:
    """A version as a group, instance or refresh names it, as a number.

    "$Default" (or no version: Auto Scaling then uses the default) and "$Latest" are resolved against the
    versions read before publishing: what the instances launched so far run.
    """
    default = next((v.number for v in versions if v.is_default), None)
    return version_number(version, (v.number for v in versions), default)


def versions_in_use(
    template_id: str,
    versions: Sequence[TemplateVersion],
    group: Group,
    refreshes: Iterable[Refresh],
    application_groups: Iterable[ApplicationGroup] = (),
) -> dict[int, list[str]]:
    """Versions of this template that something launches from, each with why.

    The configured group, its instances, an in-flight refresh, and every other group of the application: a
    retained blue-green group scaled to zero launches nothing today, but a rollback scales it back up. A refresh
    or group naming its template by name only cannot be matched to the id: its version is kept anyway.
    """
    reasons: dict[int, list[str]] = {}

    def keep(version: str | None, why: str) -> None:
        n = resolve_version(version, versions)
        if n is not None and why not in reasons.setdefault(n, []):
            reasons[n].append(why)

    if group.launch_template_id == template_id:
        keep(group.launch_template_version, f"used by the configured group {group.name}")
    for instance in group.instances:
        if instance.launch_template_id == template_id:
            keep(instance.launch_template_version, f"used by instances of {group.name}")
    for refresh in refreshes:
        if refresh.active and refresh.launch_template_id in (template_id, None):
            keep(refresh.launch_template_version, f"named by refresh {refresh.refresh_id} ({refresh.status})")
    for other in application_groups:
        if other.name == group.name:
            continue  # read above, with its instances
        for ref in other.launch_templates:
            if ref.launch_template_id in (template_id, None):
                keep(ref.version, f"used by {other.description}")
    return reasons


@dataclass(frozen=True)
class _Published:
    version: int
    previous_version: int
    created: bool


def own_version(execution_id: str, template_id: str, versions: Sequence[TemplateVersion]) -> TemplateVersion | None:
    """The version this execution published on the template, found by the marker its description starts with."""
    own_marker = marker(execution_id, template_id)
    return next((v for v in versions if v.description.startswith(own_marker)), None)


def replaced_default(ours: TemplateVersion, versions: Sequence[TemplateVersion]) -> int:
    """The default this execution replaced, recorded as src=N in the description of the version it made."""
    match = _SOURCE_RE.search(ours.description)
    if match:
        return int(match.group(1))
    older = [v.number for v in versions if v.number < ours.number]
    return max(older) if older else ours.number


def _publish(
    request: PublishInput, launch_templates: LaunchTemplateStore, versions: list[TemplateVersion]
) -> _Published:
    template_id = request.target.launch_template_id
    default = next((v for v in versions if v.is_default), None)
    if default is None:
        raise LaunchTemplateNotFound(f"launch template {template_id} has no default version")
    ours = own_version(request.execution_id, template_id, versions)

    if ours is not None:
        if ours.image_id != request.ami_id:
            raise InvalidInput(
                f"this execution already published {template_id} version {ours.number} with {ours.image_id}; "
                f"refusing to publish a different AMI ({request.ami_id}) in the same execution"
            )
        if ours.is_default:
            logger.info("this execution's version is already the default", extra={"version": ours.number})
            return _Published(version=ours.number, previous_version=replaced_default(ours, versions), created=False)
        logger.info("found this execution's version; making it the default", extra={"version": ours.number})
        if not request.dry_run:
            launch_templates.set_default_version(template_id, ours.number)
        return _Published(version=ours.number, previous_version=default.number, created=False)

    if request.dry_run:
        # EC2 numbers versions sequentially after the highest ever created: a prediction, exact unless the
        # latest version was deleted by hand.
        predicted = max(v.number for v in versions) + 1
        return _Published(version=predicted, previous_version=default.number, created=True)
    new = launch_templates.create_version(
        template_id,
        source_version=default.number,
        image_id=request.ami_id,
        description=version_description(request, default.number),
        client_token=client_token(request.execution_id, template_id),
    )
    launch_templates.set_default_version(template_id, new.number)
    metrics.add_metric(name="LaunchTemplateVersionsCreated", unit=MetricUnit.Count, value=1)
    logger.info(
        "published launch template version",
        extra={"launchTemplateId": template_id, "version": new.number, "previousVersion": default.number},
    )
    return _Published(version=new.number, previous_version=default.number, created=True)


def _delete(
    template_id: str, doomed: list[int], launch_templates: LaunchTemplateStore
) -> tuple[list[int], list[PruneFailure]]:
    pruned: list[int] = []
    failures: list[PruneFailure] = []
    for start in range(0, len(doomed), MAX_VERSIONS_PER_DELETE):
        outcome = launch_templates.delete_versions(template_id, doomed[start : start + MAX_VERSIONS_PER_DELETE])
        pruned.extend(outcome.deleted)
        for failure in outcome.failures:
            if failure.code == VERSION_ALREADY_GONE:
                pruned.append(failure.version)
                continue
            failures.append(PruneFailure(version=failure.version, code=failure.code, message=failure.message))
            logger.warning(
                "could not delete launch template version",
                extra={
                    "launchTemplateId": template_id,
                    "version": failure.version,
                    "code": failure.code,
                    "reason": failure.message,
                },
            )
    return sorted(pruned), failures


def kept_versions(
    existing: Iterable[int], doomed: Iterable[int], keep: int, protected: dict[int, list[str]]
) -> list[KeptVersion]:
    """Every version left after the prune, newest first, with why it stays."""
    newest_first = sorted(set(existing), reverse=True)
    newest = set(newest_first[:keep])
    gone = set(doomed)
    return [
        KeptVersion(
            version=v,
            reasons=[*protected.get(v, []), *([f"one of the newest {keep}"] if v in newest else [])],
        )
        for v in newest_first
        if v not in gone
    ]


def run(
    request: PublishInput,
    config: DeployConfig,
    *,
    launch_templates: LaunchTemplateStore,
    autoscaling: GroupReader,
    groups: ApplicationGroupReader,
    images: ImageReader | None = None,
) -> PublishOutput:
    require_configured_target(config, request.target)
    template_id = request.target.launch_template_id
    group_name = request.target.auto_scaling_group_name
    keep = config.retention.keep_launch_template_versions

    # Every read first: a missing template or group fails before anything changes.
    versions = launch_templates.list_versions(template_id)
    if request.images:
        if images is None:
            raise InvalidInput("images: this function was deployed without an image reader")
        request = image_of_own_commit(request, versions, images)
    group = autoscaling.describe_group(group_name)
    refreshes = autoscaling.describe_refreshes(group_name)
    # Groups tagged with the application (blue-green: live, green, retained), and the other configured groups
    # of this template by name (they may carry no tag); the target's own group was read just above.
    sharing = [t.auto_scaling_group_name for t in config.all_targets() if t.launch_template_id == template_id]
    others = groups.application_groups(config.application, [n for n in dict.fromkeys(sharing) if n != group_name])
    protected = versions_in_use(template_id, versions, group, refreshes, others)

    published = _publish(request, launch_templates, versions)

    for version, why in (
        (published.version, "published by this execution: the default"),
        (published.previous_version, "the previous default"),
    ):
        if why not in protected.setdefault(version, []):
            protected[version].insert(0, why)
    existing = {v.number for v in versions} | {published.version}
    doomed = plan_prune(existing, keep, protected.keys())
    kept = kept_versions(existing, doomed, keep, protected)
    logger.info(
        "launch template versions to prune",
        extra={
            "launchTemplateId": template_id,
            "versions": doomed,
            "kept": [k.model_dump(by_alias=True) for k in kept],
        },
    )
    if request.dry_run:
        pruned, failures = doomed, list[PruneFailure]()
    else:
        pruned, failures = _delete(template_id, doomed, launch_templates)
        metrics.add_metric(name="LaunchTemplateVersionsPruned", unit=MetricUnit.Count, value=len(pruned))
        if failures:
            metrics.add_metric(name="LaunchTemplateVersionPruneFailures", unit=MetricUnit.Count, value=len(failures))

    return PublishOutput(
        launch_template_id=template_id,
        ami_id=request.ami_id,
        version=published.version,
        previous_version=published.previous_version,
        created=published.created,
        pruned_versions=pruned,
        prune_failures=failures,
        kept_versions=kept,
    )


def restore(request: PublishInput, config: DeployConfig, launch_templates: LaunchTemplateStore) -> RestoreOutput:
    """After a publish failed, whatever failed: if the version this execution made is the default, make the default
    it replaced (src=N in its description) the default again, so no scale-out launches the untested image. Anything
    else (no version of ours, or ours is not the default) changed nothing that needs undoing."""
    require_configured_target(config, request.target)
    template_id = request.target.launch_template_id
    versions = launch_templates.list_versions(template_id)
    default = next((v for v in versions if v.is_default), None)
    ours = own_version(request.execution_id, template_id, versions)
    if default is None:
        raise LaunchTemplateNotFound(f"launch template {template_id} has no default version")
    if ours is None or not ours.is_default:
        why = "this execution published no version" if ours is None else f"its version {ours.number} is not the default"
        logger.info("nothing to restore", extra={"launchTemplateId": template_id, "reason": why})
        return RestoreOutput(launch_template_id=template_id, restored=False, default_version=default.number, reason=why)
    previous = replaced_default(ours, versions)
    if previous == ours.number or previous not in {v.number for v in versions}:
        raise RollbackFailed(
            f"launch template {template_id}: version {ours.number} of this execution is the default and the default "
            f"it replaced ({previous}) is gone; set the default by hand"
        )
    if not request.dry_run:
        launch_templates.set_default_version(template_id, previous)
    logger.warning(
        "the publish failed after its version became the default: the previous default is restored",
        extra={"launchTemplateId": template_id, "version": ours.number, "restoredDefault": previous},
    )
    return RestoreOutput(
        launch_template_id=template_id,
        restored=True,
        default_version=previous,
        reason=f"version {ours.number} of this execution was the default; version {previous} is again",
    )
