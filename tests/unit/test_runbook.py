"""docs/runbook.md stays honest: every name it gives an operator exists in the code or in AWS's API models.

- every `make <target>` is a Makefile target;
- every configuration key (`lock.ttlMinutes`, `refresh.timeoutMinutes`, ...) is a field of the synth-time
  configuration model (stacks/config.py's PipelineConfig, which includes the deploy-time DeployConfig);
- every error or state name in backticks that looks like one (`RollbackFailed`, `DeploymentInProgress`,
  `LockTimedOut`, `Superseded`, ...) appears in statemachine/deploy.asl.json, lambdas/ or stacks/;
- every `aws <service> <command>` is an operation of botocore's service model and its `--options` are members of
  the operation's input shape (the CLI's own names: kebab-case of the member names);
- every stack output it reads (`OutputKey=='X'`, "`X` output") is a CfnOutput of the stack.
"""

from __future__ import annotations

import importlib
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore import xform_name

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "runbook.md"
ASL = ROOT / "statemachine" / "deploy.asl.json"

# Options the CLI adds to every command, or to paginated ones; not members of any input shape.
GLOBAL_OPTIONS = frozenset(
    {
        "--region",
        "--output",
        "--query",
        "--profile",
        "--cli-input-json",
        "--cli-input-yaml",
        "--generate-cli-skeleton",
        "--debug",
        "--endpoint-url",
        "--no-verify-ssl",
        "--no-paginate",
        "--color",
        "--no-sign-request",
        "--ca-bundle",
        "--cli-read-timeout",
        "--cli-connect-timeout",
        "--cli-binary-format",
        "--no-cli-pager",
        "--max-items",
        "--page-size",
        "--starting-token",
    }
)
# CLI service names that differ from botocore's.
CLI_SERVICES = {"s3api": "s3"}
# Shell words that end one command (the options after them belong to the next one).
COMMAND_ENDS = frozenset({"|", "||", "&&", ";", "&", ")", "(", "$"})
# Backticked words that name an error or a state of this project: CamelCase with one of these endings.
ERROR_NAME = re.compile(
    r"[A-Z][a-z]+[A-Za-z]*(Failed|InProgress|TimedOut|Expired|Rejected|Conflict|Missing|Unhealthy|Cancelled|"
    r"Superseded|Busy|Lost)|Superseded"
)
CONFIG_SECTIONS = ("lock", "refresh", "build", "retention", "blueGreen", "approval", "baseImage", "appImage")
CONFIG_KEY = re.compile(r"`((?:" + "|".join(CONFIG_SECTIONS) + r")(?:\.[A-Za-z]+)+)`")
TOP_LEVEL_KEYS = ("logRetentionDays", "passRoleArns")


def runbook() -> str:
    return RUNBOOK.read_text(encoding="utf-8")


def code_spans(text: str) -> list[str]:
    """Inline `code` spans and the lines of fenced code blocks."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.DOTALL)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.DOTALL)
    return [*blocks, *re.findall(r"`([^`\n]+)`", prose)]


def logical_lines(snippet: str) -> Iterator[str]:
    """Shell lines with backslash continuations joined."""
    yield from snippet.replace("\\\n", " ").splitlines()


def words(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # unbalanced quotes: prose in a code span, not a command
        return line.split()


@dataclass(frozen=True)
class AwsCommand:
    service: str
    command: str
    options: tuple[str, ...]

    def __str__(self) -> str:
        return f"aws {self.service} {self.command}"


def aws_commands(text: str) -> list[AwsCommand]:
    found: list[AwsCommand] = []
    for snippet in code_spans(text):
        for line in logical_lines(snippet):
            tokens = words(line)
            for i, token in enumerate(tokens):
                if token != "aws" or i + 2 >= len(tokens) or not re.fullmatch(r"[a-z0-9-]+", tokens[i + 1]):
                    continue
                if not re.fullmatch(r"[a-z0-9-]+", tokens[i + 2]):
                    continue
                options = []
                for word in tokens[i + 3 :]:
                    if word in COMMAND_ENDS or word == "aws":
                        break
                    if word.startswith("--"):
                        options.append(word.split("=", 1)[0])
                found.append(AwsCommand(tokens[i + 1], tokens[i + 2], tuple(options)))
    return found


@cache
def _session() -> Any:
    return botocore.session.get_session()


def operation(service: str, command: str) -> Any:
    model = _session().get_service_model(CLI_SERVICES.get(service, service))
    by_cli_name = {xform_name(name, "-"): name for name in model.operation_names}
    if command not in by_cli_name:
        return None
    return model.operation_model(by_cli_name[command])


def cli_options(op: Any) -> set[str]:
    """The CLI options of an operation: --kebab-case of each input member, and --no-... for booleans."""
    members = op.input_shape.members if op.input_shape is not None else {}
    options = set()
    for name, shape in members.items():
        option = "--" + xform_name(name, "-")
        options.add(option)
        if shape.type_name == "boolean":
            options.add("--no-" + option.removeprefix("--"))
    return options


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, flags=re.MULTILINE))


def _code_sources() -> str:
    paths = [ASL, *sorted((ROOT / "lambdas").rglob("*.py")), *sorted((ROOT / "stacks").rglob("*.py"))]
    return "\n".join(p.read_text(encoding="utf-8") for p in paths)


def config_model() -> Any:
    """stacks.config.PipelineConfig (imported lazily: a CDK-side module)."""
    return importlib.import_module("stacks.config").PipelineConfig


def config_key_exists(key: str) -> bool:
    """Walk the pydantic model by the JSON names (camelCase aliases) of its fields."""
    model: Any = config_model()
    for part in key.split("."):
        fields = {(f.alias or name): f for name, f in model.model_fields.items()}
        if part not in fields:
            return False
        model = fields[part].annotation
    return True


def test_the_runbook_exists_and_names_things() -> None:
    text = runbook()

    assert aws_commands(text), "no aws command found: the parser is broken"
    assert CONFIG_KEY.findall(text), "no configuration key found: the parser is broken"


def test_every_make_target_exists() -> None:
    mentioned = {m for span in code_spans(runbook()) for m in re.findall(r"\bmake ([a-z][a-z0-9-]*)", span)}
    targets = makefile_targets()

    assert mentioned, "no make target found: the parser is broken"
    assert mentioned <= targets, f"not in the Makefile: {sorted(mentioned - targets)}"


def test_every_configuration_key_exists() -> None:
    text = runbook()
    keys = set(CONFIG_KEY.findall(text)) | {k for k in TOP_LEVEL_KEYS if f"`{k}`" in text}
    missing = sorted(k for k in keys if not config_key_exists(k))

    assert {"lock.ttlMinutes", "lock.queueHours", "lock.waitSeconds"} <= keys
    assert not missing, f"not configuration keys (stacks/config.py): {missing}"


def test_every_error_and_state_name_exists_in_the_code() -> None:
    names = {s for s in re.findall(r"`([A-Za-z]+)`", runbook()) if ERROR_NAME.fullmatch(s)}
    code = _code_sources()
    missing = sorted(n for n in names if not re.search(rf"\b{n}\b", code))

    assert {"RollbackFailed", "DeploymentInProgress", "LockTimedOut", "Superseded"} <= names
    assert not missing, f"named in the runbook, absent from the ASL, lambdas/ and stacks/: {missing}"


@pytest.mark.parametrize("command", aws_commands(runbook()), ids=str)
def test_every_aws_command_is_an_operation_with_those_options(command: AwsCommand) -> None:
    op = operation(command.service, command.command)

    assert op is not None, f"{command}: no such operation in botocore's {command.service} model"
    unknown = sorted(set(command.options) - GLOBAL_OPTIONS - cli_options(op))
    assert not unknown, f"{command}: not options of {op.name}: {unknown}"


def test_every_stack_output_it_reads_exists() -> None:
    text = runbook()
    outputs = set(re.findall(r"OutputKey=='(\w+)'", text)) | set(re.findall(r"`(\w+)`(?:,| stack)? output", text))
    table = re.search(r"\| Stack outputs \| (.*?) \|\n", text)
    assert table is not None, "the runbook's table of stack outputs is gone"
    outputs |= set(re.findall(r"`(\w+)`", table.group(1)))
    stacks = "\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "stacks").glob("*.py")))
    missing = sorted(o for o in outputs if f'"{o}"' not in stacks)

    assert {"StateMachineArn", "LockTableName", "ApproverPolicyArn"} <= outputs
    assert not missing, f"not stack outputs (stacks/): {missing}"


def test_the_log_group_it_names_is_the_state_machines() -> None:
    text = runbook()
    source = (ROOT / "stacks" / "deploy_workflow.py").read_text(encoding="utf-8")

    assert "/aws/vendedlogs/states/web-app-deploy" in text
    assert 'log_group_name=f"/aws/vendedlogs/states/{config.application}-deploy"' in source


# The checks themselves can fail: a made-up command, option, key or name is caught.
def test_the_checks_reject_what_does_not_exist() -> None:
    bogus = aws_commands("`aws autoscaling describe-instance-refreshes --group-name g`\n```\naws ec2 frobnicate\n```")
    by_command = {c.command: c for c in bogus}
    refresh, frob = by_command["describe-instance-refreshes"], by_command["frobnicate"]

    assert operation(frob.service, frob.command) is None
    assert set(refresh.options) - cli_options(operation(refresh.service, refresh.command)) == {"--group-name"}
    assert not config_key_exists("lock.ttlHours")
    assert config_key_exists("lock.ttlMinutes")


def test_teardown_uses_the_destroy_target_once_the_makefile_has_one() -> None:
    text = runbook()

    if "destroy" in makefile_targets():
        assert "make destroy" in text, "the Makefile has a destroy target now: the teardown runbook should use it"
    else:
        assert "npx cdk destroy" in text
