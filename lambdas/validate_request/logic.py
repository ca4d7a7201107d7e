"""Turn any trigger's execution input into one checked request, or reject it before anything in AWS changes.

Three passes, each collecting every problem it finds before raising `InvalidInput`:
1. shape: JSON types, known fields, value formats (pydantic): every string is plain text (no control character,
   no line break, no whitespace at either end: refused, never trimmed); a commit is a full 40-hex SHA;
2. meaning: combinations per action, the configured source, the configured stages;
3. AWS (reads only): the commit to bake is in the configured CodeCommit repository, the image to deploy is ours,
   the rollback target is a kept image.

A commit is always the full SHA, never resolved here: CodeCommit's GetCommit cannot resolve a short one (it takes
"the full SHA ID of the commit"), a GitHub push carries the full SHA in `after`, and a manual run must give it.
"""

from __future__ import annotations

from typing import Any

from shared import tags
from shared.aws.codecommit import CodeCommit
from shared.aws.images import ImageRecord, Images, newest_first
from shared.aws.references import FleetReferences
from shared.config import DeployConfig, Stage
from shared.errors import InvalidInput
from shared.observability import logger
from shared.parsing import parse_step_input
from validate_request.models import (
    ExecutionRequest,
    NormalisedRequest,
    Pipeline,
    StageOut,
    TargetOut,
    ValidateRequestInput,
    ValidateRequestOutput,
)

APP: Pipeline = "app"
BASE: Pipeline = "base"
PREVIOUS = "previous"

_BAKES: dict[str, Pipeline] = {"deploy": APP, "rebuild-base": BASE}
_ACTIONS_FROM_SOURCE = ("deploy", "rebuild-base")
# Which action each automatic trigger may start (manual runs may start any).
_TRIGGER_ACTIONS = {"codecommit": ("deploy",), "github": ("deploy",), "schedule": ("rebuild-base",)}


def validate_request(
    event: ValidateRequestInput, config: DeployConfig, *, images: Images, fleet: FleetReferences, codecommit: CodeCommit
) -> ValidateRequestOutput:
    request = parse_request(event.input)
    stages = check_request(request, config)
    ami_id = request.ami_id
    if request.commit is not None:
        check_commit_exists(request.commit, config, codecommit)
    if request.action == "deploy-image":
        assert ami_id is not None  # check_request requires it
        check_deployable_image(ami_id, config, images)
    elif request.action == "rollback":
        assert request.to is not None  # check_request requires it
        ami_id = resolve_rollback(request.to, stages, config, images, fleet)

    branch, repository = request.branch, request.repository
    if request.action in _ACTIONS_FROM_SOURCE and config.source is not None:
        branch = branch or config.source.branch
        repository = repository or config.source.repository
    output = ValidateRequestOutput(
        request=NormalisedRequest(
            action=request.action,
            commit=request.commit,
            branch=branch,
            repository=repository,
            ami_id=ami_id,
            to=request.to,
            stages=[s.name for s in stages],
            dry_run=request.dry_run,
            trigger=request.trigger,
            pusher=request.pusher,
            delivery_id=request.delivery_id,
            when_busy=request.when_busy or ("wait" if request.trigger == "manual" else "queue"),
        ),
        stages=[
            StageOut(
                name=s.name,
                approval=s.approval,
                wave_size=s.wave_size,
                strategy=s.strategy,
                targets=[
                    TargetOut(
                        auto_scaling_group_name=t.auto_scaling_group_name, launch_template_id=t.launch_template_id
                    )
                    for t in s.targets
                ],
            )
            for s in stages
        ],
        needs_bake=request.action in _BAKES,
        pipeline=_BAKES.get(request.action),
    )
    logger.info(
        "request accepted",
        extra={"executionName": event.execution_name, "request": output.request.model_dump(by_alias=True)},
    )
    return output


def parse_request(raw: Any) -> ExecutionRequest:
    """Pass 1: the raw input must be a JSON object with known fields of the right JSON types and formats."""
    if not isinstance(raw, dict):
        raise InvalidInput(f'input: must be a JSON object like {{"action": "deploy", ...}}, got {type(raw).__name__}')
    return parse_step_input(raw, ExecutionRequest)


def check_request(request: ExecutionRequest, config: DeployConfig) -> list[Stage]:
    """Pass 2: combinations per action, source, trigger and stages. Returns the selected stages in configured order."""
    problems = _combination_problems(request) + _source_problems(request, config)
    stages, stage_problems = _select_stages(request.stages, config)
    problems += stage_problems
    if problems:
        raise InvalidInput("; ".join(problems))
    return stages


def _combination_problems(request: ExecutionRequest) -> list[str]:
    action = request.action
    problems: list[str] = []

    def required(field: str, value: object, what: str) -> None:
        if value is None:
            problems.append(f'{field}: required for action "{action}" ({what})')

    def forbidden(field: str, value: object, who: str) -> None:
        if value is not None:
            problems.append(f'{field}: not allowed for action "{action}" ({who})')

    if action == "deploy":
        required("commit", request.commit, "the commit to bake and deploy")
    else:
        forbidden("commit", request.commit, 'only "deploy" takes a commit')
    if action == "deploy-image":
        required("amiId", request.ami_id, "the AMI to roll out")
    else:
        forbidden("amiId", request.ami_id, 'only "deploy-image" takes an amiId')
    if action == "rollback":
        required("to", request.to, '"previous" or the AMI id of a kept image')
    else:
        forbidden("to", request.to, 'only "rollback" takes "to"')
    if action not in _ACTIONS_FROM_SOURCE:
        forbidden("branch", request.branch, 'only "deploy" and "rebuild-base" build from the source')
        forbidden("repository", request.repository, 'only "deploy" and "rebuild-base" build from the source')

    allowed = _TRIGGER_ACTIONS.get(request.trigger)
    if allowed is not None and action not in allowed:
        problems.append(f'trigger: a "{request.trigger}" trigger starts only {" or ".join(allowed)}, not "{action}"')
    if request.trigger != "github":
        for field, value in (("pusher", request.pusher), ("deliveryId", request.delivery_id)):
            if value is not None:
                problems.append(f'{field}: only a "github" trigger carries it (trigger is "{request.trigger}")')
    return problems


def _source_problems(request: ExecutionRequest, config: DeployConfig) -> list[str]:
    source = config.source
    if source is None:
        return []
    problems: list[str] = []
    if request.trigger in ("codecommit", "github") and request.trigger != source.type:
        problems.append(f'trigger: "{request.trigger}" does not match the configured source type "{source.type}"')
    if request.branch is not None and request.branch != source.branch:
        problems.append(f'branch: "{request.branch}" is not the configured branch "{source.branch}"')
    if request.repository is not None:
        # GitHub owner/repo names are case-insensitive; CodeCommit repository names are not.
        same = (
            request.repository.lower() == source.repository.lower()
            if source.type == "github"
            else request.repository == source.repository
        )
        if not same:
            problems.append(
                f'repository: "{request.repository}" is not the configured repository "{source.repository}"'
            )
    return problems


def _select_stages(names: list[str] | None, config: DeployConfig) -> tuple[list[Stage], list[str]]:
    configured = [s.name for s in config.stages]
    if names is None:
        return list(config.stages), []
    if not names:
        return [], [f"stages: must name at least one stage, or be omitted to use all ({', '.join(configured)})"]
    problems: list[str] = []
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            problems.append(f'stages[{index}]: "{name}" is listed more than once')
        elif config.stage(name) is None:
            problems.append(f'stages[{index}]: "{name}" is not configured (configured: {", ".join(configured)})')
        seen.add(name)
    return [s for s in config.stages if s.name in seen], problems


def check_commit_exists(commit: str, config: DeployConfig, codecommit: CodeCommit) -> None:
    """Pass 3 for a commit from a CodeCommit source: it is a commit of the configured repository (GetCommit).

    A GitHub source is not asked: the function holds no GitHub token (the webhook forwards the push's full SHA).
    """
    source = config.source
    if source is None or source.type != "codecommit":
        return
    found = codecommit.get_commit(source.repository, commit)
    if found.status == "no-such-commit":
        raise InvalidInput(
            f"commit: {commit} is not a commit of the CodeCommit repository {source.repository} "
            f"(GetCommit: {found.code}: {found.message}); push it first, or give a commit of that repository"
        )
    if found.status == "no-such-repository":
        raise InvalidInput(
            f"repository: the configured CodeCommit repository {source.repository} does not exist in this account "
            f"and region (GetCommit: {found.code}: {found.message})"
        )


def check_deployable_image(ami_id: str, config: DeployConfig, images: Images) -> ImageRecord:
    """Pass 3 for deploy-image: the AMI is ours, available, built by this application's app pipeline."""
    image = images.get_own_image(ami_id)
    if image is None:
        raise InvalidInput(f"amiId: {ami_id} is not an image this account owns (DescribeImages with Owners=self)")
    problems = []
    if image.state != "available":
        problems.append(f'amiId: {ami_id} is in state "{image.state}", not "available"')
    if image.application != config.application:
        problems.append(
            f'amiId: {ami_id} is not tagged {tags.APPLICATION}="{config.application}" (found: {image.application!r})'
        )
    if image.pipeline != APP:
        problems.append(f'amiId: {ami_id} is not tagged {tags.PIPELINE}="{APP}" (found: {image.pipeline!r})')
    if problems:
        raise InvalidInput("; ".join(problems))
    return image


def kept_app_images(config: DeployConfig, images: Images) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """(kept, all available app images newest first): the kept ones are the newest `keepImages`."""
    available = newest_first(
        i
        for i in images.list_application_images(config.application)
        if i.state == "available" and i.pipeline == APP and i.application == config.application
    )
    return available[: config.retention.keep_images], available


def resolve_rollback(to: str, stages: list[Stage], config: DeployConfig, images: Images, fleet: FleetReferences) -> str:
    """Pass 3 for rollback: the concrete AMI to roll back to, which must be one of the kept images."""
    kept, available = kept_app_images(config, images)
    kept_ids = [i.image_id for i in kept]
    described = ", ".join(kept_ids) or "none"
    if not kept:
        raise InvalidInput(f"to: {config.application} has no kept {APP} image to roll back to")
    if to != PREVIOUS:
        if to not in kept_ids:
            raise InvalidInput(
                f"to: {to} is not among the kept images of {config.application} "
                f"(the newest {config.retention.keep_images} available {APP} images: {described})"
            )
        return to

    target = stages[0].targets[0]
    current_id = fleet.default_version_image_id(target.launch_template_id)
    current = next((i for i in available if i.image_id == current_id), None)
    if current is not None:
        older = [i for i in kept if i.creation_date < current.creation_date]
        if not older:
            raise InvalidInput(
                f'to: "previous": no kept image is older than {current.image_id}, which the default version of '
                f"{target.launch_template_id} ({target.auto_scaling_group_name}) uses (kept: {described})"
            )
        chosen, how = older[0], "rollback target resolved"
        why = "the newest kept app image created before the AMI the first target's default version uses"
    else:
        if len(kept) < 2:
            raise InvalidInput(
                f'to: "previous": {target.launch_template_id} uses {current_id or "no AMI"}, which is not one of '
                f"{config.application}'s images, and there is no second kept image to fall back to (kept: {described})"
            )
        chosen, how = kept[1], "rollback target resolved by fallback"
        why = (
            "the first target's default version does not use one of this application's available app images, "
            "so the second-newest kept image was chosen"
        )
    logger.info(
        how,
        extra={
            "to": PREVIOUS,
            "amiId": chosen.image_id,
            "currentAmiId": current_id,
            "launchTemplateId": target.launch_template_id,
            "why": why,
        },
    )
    return chosen.image_id
