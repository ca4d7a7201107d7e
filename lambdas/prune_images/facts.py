"""prune_images, the facts and the plan: what uses this application's images, read from AWS (reads only), and
the plan checked against DescribeImageReferences (plan.py decides; this module only gathers what it decides on).

What uses an image: every version of the configured launch templates, instances in a state that holds their AMI,
in-flight instance refreshes of the configured groups, and the launch template version of every Auto Scaling
group of the application (tagged with it: live, green or retained blue-green groups, even scaled to zero; and the
configured groups by name), so a rollback to a retained group finds its AMI. A version these readers cannot read
stops the prune (the error is raised): only a template or version that does not exist protects nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from botocore.exceptions import BotoCoreError, ClientError

from prune_images.plan import PruneFacts, PrunePlan, plan_prune
from shared.aws.autoscaling import LaunchTemplateRef
from shared.aws.images import Images
from shared.aws.launch_templates import TemplateVersion
from shared.aws.references import ApplicationGroup, FleetReferences
from shared.config import DeployConfig
from shared.errors import LaunchTemplateNotFound
from shared.observability import logger
from shared.recipes import RECIPE_DIGEST_LENGTH
from shared.statuses import ACTIVE_REFRESH_STATUSES
from shared.versions import version_number

# Instances in these states hold their AMI (a stopped instance can be started again).
IN_USE_INSTANCE_STATES = ("pending", "running", "stopping", "stopped")


def gather_facts(
    config: DeployConfig, images: Images, fleet: FleetReferences, protected_ids: frozenset[str]
) -> PruneFacts:
    all_images = images.list_application_images(config.application)
    candidate_ids = [i.image_id for i in all_images]

    launch_template_refs: dict[str, list[str]] = defaultdict(list)
    configured_versions: dict[str, list[TemplateVersion]] = {}
    for template_id in dict.fromkeys(t.launch_template_id for t in config.all_targets()):
        configured_versions[template_id] = fleet.launch_template_versions(template_id)
        for version in configured_versions[template_id]:
            if version.image_id:
                default = " (default)" if version.is_default else ""
                launch_template_refs[version.image_id].append(f"{template_id} version {version.number}{default}")

    instance_refs = fleet.instances_using_images(candidate_ids, IN_USE_INSTANCE_STATES) if candidate_ids else {}

    refresh_refs: dict[str, list[str]] = defaultdict(list)
    for group in dict.fromkeys(t.auto_scaling_group_name for t in config.all_targets()):
        for refresh in fleet.instance_refreshes(group):
            if refresh.status not in ACTIVE_REFRESH_STATUSES:
                continue
            where = f"{group} refresh {refresh.refresh_id} ({refresh.status})"
            for image_id in refresh.image_ids:
                refresh_refs[image_id].append(where)
            for ref in refresh.launch_templates:
                for image_id in _template_images(fleet, ref):
                    refresh_refs[image_id].append(where)

    group_refs: dict[str, list[str]] = defaultdict(list)
    configured_groups = list(dict.fromkeys(t.auto_scaling_group_name for t in config.all_targets()))
    for app_group in fleet.application_groups(config.application, configured_groups):
        for image_id in _group_images(fleet, app_group, configured_versions):
            if app_group.description not in group_refs[image_id]:
                group_refs[image_id].append(app_group.description)

    return PruneFacts(
        application=config.application,
        keep_images=config.retention.keep_images,
        images=tuple(all_images),
        launch_template_refs={k: tuple(v) for k, v in launch_template_refs.items()},
        instance_refs={k: tuple(v) for k, v in instance_refs.items()},
        refresh_refs={k: tuple(v) for k, v in refresh_refs.items()},
        group_refs={k: tuple(v) for k, v in group_refs.items()},
        protected_ids=protected_ids,
    )


def _template_images(fleet: FleetReferences, ref: LaunchTemplateRef) -> list[str]:
    versions = fleet.launch_template_versions(
        ref.launch_template_id, launch_template_name=ref.launch_template_name, versions=[ref.version]
    )
    return [v.image_id for v in versions if v.image_id]


def _group_images(
    fleet: FleetReferences, group: ApplicationGroup, configured: dict[str, list[TemplateVersion]]
) -> list[str]:
    """The AMIs a group launches from: its launch template version(s), and AMIs its overrides name.

    Versions of a configured template are resolved from the versions already read (no extra call, whatever the
    number of groups); another template (a target moved to a new one while retained groups still use the old)
    costs one DescribeLaunchTemplateVersions per distinct reference. A template or version that no longer
    exists launches nothing, so it protects nothing.
    """
    found = list(group.image_ids)
    for ref in group.launch_templates:
        known = configured.get(ref.launch_template_id or "")
        if known is not None:
            found.extend(v.image_id for v in _resolve(known, ref.version) if v.image_id)
            continue
        try:
            found.extend(_template_images(fleet, ref))
        except LaunchTemplateNotFound as exc:
            logger.warning(
                "launch template of a group not found: it protects no AMI",
                extra={"autoScalingGroupName": group.name, "error": str(exc)},
            )
    return found


def _resolve(versions: list[TemplateVersion], version: str) -> list[TemplateVersion]:
    """The version a group names ("7", "$Default" or "$Latest") among a template's versions."""
    default = next((v.number for v in versions if v.is_default), None)
    number = version_number(version, (v.number for v in versions), default)
    return [v for v in versions if v.number == number]


def own_bake_recipe(reference_arn: str, application: str) -> bool:
    """A per-bake app recipe of this application (image-recipe/<app>-app-<digest>/<version>).

    Every bake's recipe names its base AMI as parent, so DescribeImageReferences (IncludeAllResourceTypes
    covers imagebuilder:ImageRecipe, EC2 API Reference, DescribeImageReferences) reports each base ever used
    as referenced, forever. Such a reference does not keep a base: the app images built on it do (an app image
    that stays keeps its base), and the newest base images are kept by count.
    """
    marker = f":image-recipe/{application}-app-"
    if marker not in reference_arn:
        return False
    digest = reference_arn.split(marker, 1)[1].split("/", 1)[0]
    return len(digest) == RECIPE_DIGEST_LENGTH and all(c in "0123456789abcdef" for c in digest)


def final_plan(facts: PruneFacts, images: Images, batch: list[str] | None = None) -> PrunePlan:
    """Plan, then ask DescribeImageReferences about what the plan would delete (only `batch`, when given: the
    images this invocation deletes), and plan again with the answer."""
    draft = plan_prune(facts)
    drafted = draft.by_id()
    to_check = draft.ids("delete") if batch is None else [i for i in batch if drafted[i].action == "delete"]
    if not to_check:
        return draft
    try:
        found: dict[str, list[str]] = defaultdict(list)
        for reference in images.find_references(to_check):
            if own_bake_recipe(reference.arn, facts.application):
                continue
            found[reference.image_id].append(reference.arn or reference.resource_type)
        checked = replace(facts, image_references={k: tuple(v) for k, v in found.items()})
    except (ClientError, BotoCoreError) as exc:
        code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
        logger.warning(
            "DescribeImageReferences failed: nothing is deleted this time",
            extra={"error": str(exc), "amiIds": to_check},
        )
        checked = replace(facts, image_references_error=f"DescribeImageReferences failed: {code}")
    return plan_prune(checked)
