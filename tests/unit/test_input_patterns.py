"""Every input pattern matches the whole value: "<valid value>\\n" is refused everywhere.

Python's `re.match`/`re.search` with `^...$` accept a final newline (`$` also matches just before one), so
"abcdef1\\n" once passed as a commit. Two rules close that for good, each pinned here by a scan that fails on a
new module breaking it (and on an allowance that no longer applies):

- Python regexes validate with `fullmatch` only: no module under lambdas/ or stacks/ calls `.match(` or
  `.search(` (the one allowed `search` extracts a number from a description this project wrote).
- pydantic patterns are strings run by pydantic-core's default engine, Rust's `regex` crate, whose `$` without
  the `m` flag is "the end of text" (https://docs.rs/regex/latest/regex/#empty-matches), never before a final
  newline; a compiled `re.Pattern`, or `regex_engine="python-re"`, would switch that field to Python's `re`
  (https://docs.pydantic.dev/latest/api/config/#pydantic.config.ConfigDict.regex_engine). And Rust's
  `is_match` searches, so each pattern is anchored `^...$` with no top-level alternative.

Then the validators themselves, fed a valid value and that value with a trailing newline.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from finish_execution.models import FinishExecutionEnvironment
from github_webhook import logic as webhook
from github_webhook.models import FunctionUrlRequest, GithubWebhookEnvironment, PushEvent
from prune_images.models import PruneProgress
from publish_launch_template_version.models import CommitImage
from pydantic import BaseModel, Field, ValidationError
from validate_request.logic import parse_request

from shared.config import DeployConfig
from shared.errors import InvalidInput
from tests.conftest import SAMPLE_DEPLOY_CONFIG

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("lambdas", "stacks")
# (file, receiver) of every `.match(` / `.search(` call allowed, and why: none of them validates input.
ALLOWED_MATCH_OR_SEARCH = {
    ("lambdas/publish_launch_template_version/logic.py", "_SOURCE_RE.search"): (
        "reads back the src=N this project wrote into its own launch template version description"
    ),
}
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:web-app/github-token-AbC123"
STATE_MACHINE_ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:web-app-deploy"


def python_files() -> list[Path]:
    return sorted(path for folder in SCANNED for path in (ROOT / folder).rglob("*.py"))


# -- Python regexes: fullmatch only -------------------------------------------------------------------


def match_or_search_calls(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in {"match", "search"}
        ):
            yield ast.unparse(node.func), node.lineno


def test_no_module_validates_with_re_match_or_re_search() -> None:
    # Given every module of the functions and the stacks
    found = {
        (str(path.relative_to(ROOT)), call): line
        for path in python_files()
        for call, line in match_or_search_calls(path)
    }
    # Then the only .match(/.search( calls are the allowed ones (re.match and re.search included), and each
    # allowance still names a call that exists
    unexpected = {f"{file}:{line}: {call}" for (file, call), line in found.items()} - {
        f"{file}:{found[(file, call)]}: {call}" for file, call in ALLOWED_MATCH_OR_SEARCH if (file, call) in found
    }
    assert unexpected == set(), "validate with fullmatch (a ^...$ match/search accepts a trailing newline)"
    assert set(ALLOWED_MATCH_OR_SEARCH) <= set(found), "an allowance names a call that no longer exists"


def test_the_scan_sees_the_calls_it_forbids(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import re\nre.match('^a$', x)\nP.search(y)\nP.fullmatch(z)\n")
    assert list(match_or_search_calls(module)) == [("re.match", 2), ("P.search", 3)]


# -- pydantic patterns: anchored strings for the Rust engine ---------------------------------------------


def whole_string(pattern: str) -> bool:
    """`^...$` around the whole pattern: no flag group first, no escaped final `$`, no top-level `|`."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    inner = pattern[1:-1]
    depth, in_class, index = 0, False, 0
    while index < len(inner):
        char = inner[index]
        if char == "\\":
            index += 2
            if index > len(inner):  # the final `$` was escaped
                return False
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if inner[index + 1 : index + 2] == "^":
                index += 1
            if inner[index + 1 : index + 2] == "]":  # a leading ] is a literal
                index += 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return False
        index += 1
    return True


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"^ami-[0-9a-f]{8,17}$", True),
        (r"^(a|b)$", True),
        (r"^[|]$", True),
        (r"^[]|]$", True),
        (r"^a|b$", False),
        (r"^a\$", False),
        (r"^a", False),
        (r"a$", False),
        (r"(?m)^a$", False),
    ],
)
def test_whole_string_tells_anchored_patterns_from_partial_ones(pattern: str, expected: bool) -> None:
    assert whole_string(pattern) is expected


def _defines_models(path: Path) -> bool:
    """A module that imports pydantic, or a model base from another module, may define models."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and (node.module.startswith("pydantic") or any(alias.name.endswith("Model") for alias in node.names))
        ):
            return True
        if isinstance(node, ast.Import) and any(alias.name.startswith("pydantic") for alias in node.names):
            return True
    return False


def _module_name(path: Path) -> str:
    """lambdas/<step>/models.py is `<step>.models`, as the functions import it; stacks/x.py is `stacks.x`."""
    relative = path.relative_to(ROOT).with_suffix("")
    parts = relative.parts[1:] if relative.parts[0] == "lambdas" else relative.parts
    return ".".join(part for part in parts if part != "__init__")


def scanned_models() -> list[type[BaseModel]]:
    """Every pydantic model defined under lambdas/ or stacks/ (handlers excluded: they read the environment)."""
    for path in python_files():
        if path.name != "handler.py" and _defines_models(path):
            importlib.import_module(_module_name(path))
    models: list[type[BaseModel]] = []
    pending = list(BaseModel.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        source = inspect.getsourcefile(cls)
        if source and any(Path(source).resolve().is_relative_to(ROOT / folder) for folder in SCANNED):
            models.append(cls)
    return models


def patterns(node: Any, where: str) -> Iterator[tuple[str, Any, Any]]:
    """(where, pattern, regex_engine) of every string constraint in a pydantic-core schema."""
    if isinstance(node, dict):
        if "pattern" in node:
            yield where, node["pattern"], node.get("regex_engine")
        for key, value in node.items():
            yield from patterns(value, f"{where}/{key}")
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from patterns(value, f"{where}[{index}]")


def test_every_pydantic_pattern_is_a_whole_string_pattern_for_the_rust_engine() -> None:
    # Given every model of the functions and the stacks
    models = scanned_models()
    names = {cls.__name__ for cls in models}
    assert {"ExecutionRequest", "DeployConfig", "PipelineConfig", "GithubWebhookEnvironment", "PushEvent"} <= names
    found: list[tuple[str, Any, Any]] = []
    for cls in models:
        cls.model_rebuild()
        assert cls.model_config.get("regex_engine", "rust-regex") == "rust-regex", cls
        found.extend(patterns(cls.__pydantic_core_schema__, f"{cls.__module__}.{cls.__qualname__}"))
    # Then every pattern is a string (a compiled re.Pattern runs on Python's re), run by the Rust engine, and
    # anchored at both ends around the whole pattern
    assert len(found) >= 20
    problems = [
        f"{where}: {pattern!r}"
        for where, pattern, engine in found
        if not isinstance(pattern, str) or engine not in (None, "rust-regex") or not whole_string(pattern)
    ]
    assert problems == []


def test_the_rust_engine_refuses_a_trailing_newline_that_pythons_re_match_accepts() -> None:
    import re

    class Probe(BaseModel):
        value: str = Field(pattern=r"^[0-9a-f]{7}$")

    assert re.match(r"^[0-9a-f]{7}$", "abcdef1\n")  # why every Python check is a fullmatch
    assert Probe(value="abcdef1").value == "abcdef1"
    with pytest.raises(ValidationError, match="String should match pattern"):
        Probe(value="abcdef1\n")


# -- the validators --------------------------------------------------------------------------------------

COMMIT = "3f2c1e9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e"
AMI = "ami-0abc1234def567890"


def deploy_config(**change: Any) -> DeployConfig:
    config = copy.deepcopy(SAMPLE_DEPLOY_CONFIG)
    for path, value in change.items():
        node: Any = config
        *parents, leaf = path.split("__")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[leaf] = value
    return DeployConfig.model_validate(config)


def webhook_environment(**change: str) -> GithubWebhookEnvironment:
    values = {
        "WEBHOOK_SECRET_ARN": SECRET_ARN,
        "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
        "GITHUB_REPOSITORY": "acme/web-app",
        "DEPLOY_BRANCH": "main",
    }
    return GithubWebhookEnvironment.model_validate({**values, **change})


def finish_environment(**change: str) -> FinishExecutionEnvironment:
    values = {
        "LOCK_TABLE_NAME": "web-app-locks",
        "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:web-app-Notifications-ABC123",
        "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
    }
    return FinishExecutionEnvironment.model_validate({**values, **change})


def push(after: str) -> PushEvent:
    return PushEvent.model_validate(
        {"ref": "refs/heads/main", "after": after, "repository": {"full_name": "acme/web-app"}, "pusher": {"name": "o"}}
    )


def header(name: str, value: str) -> FunctionUrlRequest:
    return FunctionUrlRequest.model_validate({"headers": {name: value}, "body": ""})


def pipeline_config(path: str, value: Any) -> Any:
    """stacks.config.load_config on a minimal configuration with one key set (imported as the app imports it)."""
    config: dict[str, Any] = {
        "application": "web-app",
        "stages": [
            {"name": "test", "targets": [{"autoScalingGroupName": "g", "launchTemplateId": "lt-0123456789abcdef0"}]}
        ],
    }
    node = config
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return importlib.import_module("stacks.config").load_config(config)


GITHUB = {"type": "github", "repository": "acme/web-app", "branch": "main"}
Check = Callable[[str], object]
VALIDATORS: list[tuple[str, Check, str]] = [
    ("validate_request commit", lambda v: parse_request({"action": "deploy", "commit": v}), COMMIT),
    ("validate_request amiId", lambda v: parse_request({"action": "deploy-image", "amiId": v}), AMI),
    ("validate_request rollback to", lambda v: parse_request({"action": "rollback", "to": v}), AMI),
    (
        "deploy config launchTemplateId",
        lambda v: deploy_config(stages__0__targets__0__launchTemplateId=v),
        "lt-0aaaaaaaaaaaaaaa1",
    ),
    ("deploy config stage name", lambda v: deploy_config(stages__0__name=v), "test"),
    ("deploy config application", lambda v: deploy_config(application=v), "web-app"),
    ("deploy config github repository", lambda v: deploy_config(source={**GITHUB, "repository": v}), "acme/web-app"),
    ("deploy config tokenSecretArn", lambda v: deploy_config(source={**GITHUB, "tokenSecretArn": v}), SECRET_ARN),
    (
        "prune referenced AMI ids",
        lambda v: PruneProgress.model_validate(
            {
                "rounds": 0,
                "imagesPruned": 0,
                "snapshotsDeleted": 0,
                "failures": 0,
                "remaining": 0,
                "referencedAmiIds": [v],
            }
        ),
        AMI,
    ),
    ("publish AMI id", lambda v: CommitImage.model_validate({"commit": None, "amiId": v}), AMI),
    ("webhook secret ARN", lambda v: webhook_environment(WEBHOOK_SECRET_ARN=v), SECRET_ARN),
    ("webhook state machine ARN", lambda v: webhook_environment(STATE_MACHINE_ARN=v), STATE_MACHINE_ARN),
    ("webhook repository", lambda v: webhook_environment(GITHUB_REPOSITORY=v), "acme/web-app"),
    ("webhook push after", push, COMMIT),
    (
        "webhook signature header",
        lambda v: webhook.presented_signature(header("x-hub-signature-256", v)),
        "sha256=" + "a" * 64,
    ),
    (
        "webhook delivery id",
        lambda v: webhook.delivery_id(header("x-github-delivery", v)),
        "72d3162e-cc78-11e3-81ab-4c9367dc0958",
    ),
    (
        "finish topic ARN",
        lambda v: finish_environment(NOTIFICATION_TOPIC_ARN=v),
        "arn:aws:sns:eu-west-1:123456789012:web-app-Notifications-ABC123",
    ),
    ("finish state machine ARN", lambda v: finish_environment(STATE_MACHINE_ARN=v), STATE_MACHINE_ARN),
    (
        "config build.subnetId",
        lambda v: pipeline_config("build", {"subnetId": v, "securityGroupIds": ["sg-0123456789abcdef0"]}),
        "subnet-0123456789abcdef0",
    ),
    (
        "config build.securityGroupIds",
        lambda v: pipeline_config("build", {"subnetId": "subnet-0123456789abcdef0", "securityGroupIds": [v]}),
        "sg-0123456789abcdef0",
    ),
    ("config build.logsBucket", lambda v: pipeline_config("build.logsBucket", v), "acme-build-logs"),
    ("config build.shareWithAccounts", lambda v: pipeline_config("build.shareWithAccounts", [v]), "123456789012"),
    ("config environment.account", lambda v: pipeline_config("environment.account", v), "123456789012"),
    ("config environment.region", lambda v: pipeline_config("environment.region", v), "eu-west-1"),
    ("config notifications.emails", lambda v: pipeline_config("notifications.emails", [v]), "ops@example.com"),
    (
        "config passRoleArns",
        lambda v: pipeline_config("passRoleArns", [v]),
        "arn:aws:iam::123456789012:role/web-app-instance",
    ),
    ("config baseImage.components", lambda v: pipeline_config("baseImage.components", [v]), "aws:update-linux"),
    ("config baseImage.version", lambda v: pipeline_config("baseImage.version", v), "1.0.0"),
    ("config baseImage.schedule", lambda v: pipeline_config("baseImage.schedule", v), "cron(0 3 * * ? *)"),
    (
        "config baseImage.ansiblePlaybook",
        lambda v: pipeline_config("baseImage.ansiblePlaybook", v),
        "s3://acme-playbooks/site.yml",
    ),
    ("config appImage.installScript", lambda v: pipeline_config("appImage.installScript", v), "deploy/install.sh"),
]
REFUSALS = (ValidationError, InvalidInput, ValueError, webhook.DeliveryRejectedError)


@pytest.mark.parametrize(("check", "valid"), [pytest.param(c, v, id=name) for name, c, v in VALIDATORS])
def test_a_valid_value_with_a_trailing_newline_is_refused(check: Check, valid: str) -> None:
    # Given a value the validator accepts
    check(valid)
    # When a newline is appended / Then it is refused
    with pytest.raises(REFUSALS):
        check(valid + "\n")
