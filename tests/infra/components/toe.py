"""AWSTOE component documents as the tests read, check and run them.

Every rule and every emulated behaviour names the AWS page it follows; where the pages are silent, the
comment says so. Only what this project's documents use is emulated (ExecuteBash steps): running any
other action is refused, so a new kind of step cannot pass here untested.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stacks.config import PROJECT_ROOT

COMPONENTS_DIR = PROJECT_ROOT / "imagebuilder" / "components"
BASH = shutil.which("bash") or "/bin/bash"

USER_GUIDE = "https://docs.aws.amazon.com/imagebuilder/latest/userguide"
DOCUMENTS_PAGE = f"{USER_GUIDE}/toe-use-documents.html"
VARIABLES_PAGE = f"{USER_GUIDE}/toe-user-defined-variables.html"
ACTIONS_PAGE = f"{USER_GUIDE}/toe-action-modules.html"
LOOPS_PAGE = f"{USER_GUIDE}/toe-looping-constructs.html"
CONDITIONALS_PAGE = f"{USER_GUIDE}/toe-conditional-constructs.html"

# DOCUMENTS_PAGE, "Document schema and definitions": name and description optional, schemaVersion and
# phases required; VARIABLES_PAGE adds the `parameters` and `constants` sections.
TOP_LEVEL_KEYS = frozenset({"name", "description", "schemaVersion", "parameters", "constants", "phases"})
REQUIRED_TOP_LEVEL_KEYS = frozenset({"schemaVersion", "phases"})
SCHEMA_VERSION = "1.0"  # "Schema version of the document, currently 1.0"
# DOCUMENTS_PAGE, "Phases": Image Builder runs build and validate in its build stage and test in its test
# stage; container-host-test is for container images only, and this project bakes AMIs.
PHASES = ("build", "validate", "test")
PHASE_KEYS = frozenset({"name", "steps"})
# DOCUMENTS_PAGE step schema (name, action, timeoutSeconds, onFailure, maxAttempts, inputs), plus `loop`
# (LOOPS_PAGE, "Step fields") and `if` (CONDITIONALS_PAGE).
STEP_KEYS = frozenset({"name", "action", "timeoutSeconds", "onFailure", "maxAttempts", "inputs", "loop", "if"})
REQUIRED_STEP_KEYS = frozenset({"name", "action", "inputs"})
ON_FAILURE = ("Abort", "Continue", "Ignore")  # DOCUMENTS_PAGE: default Abort
TEST_TIMEOUT_SECONDS = 120
DEFAULT_TIMEOUT_SECONDS = 7200  # DOCUMENTS_PAGE: "7,200 sec (120 mins)"; -1 is no timeout, 0 and below are refused
# ACTIONS_PAGE: every action module AWSTOE documents.
ACTIONS = frozenset(
    {
        "Assert",
        "ExecuteBash",
        "ExecuteBinary",
        "ExecuteDocument",
        "ExecutePowerShell",
        "S3Download",
        "S3Upload",
        "WebDownload",
        "AppendFile",
        "CopyFile",
        "CopyFolder",
        "CreateFile",
        "CreateFolder",
        "CreateSymlink",
        "DeleteFile",
        "DeleteFolder",
        "ListFiles",
        "MoveFile",
        "MoveFolder",
        "ReadFile",
        "SetFileEncoding",
        "SetFileOwner",
        "SetFolderOwner",
        "SetFilePermissions",
        "SetFolderPermissions",
        "InstallMSI",
        "UninstallMSI",
        "Reboot",
        "SetRegistry",
        "UpdateOS",
    }
)
# VARIABLES_PAGE: parameter keys (type required, string the only type; default and description optional),
# constant keys (type and value required), and the naming rule they share.
PARAMETER_KEYS = frozenset({"type", "default", "description"})
CONSTANT_KEYS = frozenset({"type", "value"})
VARIABLE_NAME = re.compile(r"[A-Za-z0-9_-]{3,128}")
# VARIABLES_PAGE: `{{ Name }}`, spaces inside the braces trimmed, names case-sensitive. A dotted name is a
# chaining expression (DOCUMENTS_PAGE, "Input and output chaining") or a loop variable (LOOPS_PAGE).
REFERENCE = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
CHAINING = re.compile(r"(?P<phase>[A-Za-z0-9_-]+)\.(?P<step>[A-Za-z0-9_-]+)\.(inputs|outputs)\b.*")
LOOP_VARIABLE = re.compile(r"(?P<loop>[A-Za-z0-9_-]+)\.(index|value)")


# -- reading ---------------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML mapping keys are unique (YAML 1.2, 3.2.1.1); PyYAML would keep the last one silently."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def document_paths() -> list[Path]:
    return sorted([*COMPONENTS_DIR.glob("*.yml"), *COMPONENTS_DIR.glob("*.yaml")])


def parse(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)


def load(path: Path) -> dict[str, Any]:
    document = parse(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name}: a component document is a YAML mapping"
    return document


def _single_key_entries(section: Any) -> Iterator[tuple[Any, Any]]:
    """`parameters` and `constants` are lists of one-key mappings: `- Name: {type: …}` (VARIABLES_PAGE)."""
    for entry in section if isinstance(section, list) else []:
        if isinstance(entry, dict) and len(entry) == 1:
            yield next(iter(entry.items()))
        else:
            yield None, entry


def parameters(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in _single_key_entries(document.get("parameters")) if isinstance(name, str)}


def constants(document: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in _single_key_entries(document.get("constants")) if isinstance(name, str)}


def steps(document: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(phase name, step) in document order."""
    for phase in document.get("phases") or []:
        for step in phase.get("steps") or []:
            yield phase["name"], step


def bash_script(step: Mapping[str, Any], values: Mapping[str, str]) -> str:
    """The file ExecuteBash runs: all of the step's commands, in order, in one file (ACTIONS_PAGE, ExecuteBash)."""
    return "\n".join(substitute(command, values) for command in step["inputs"]["commands"]) + "\n"


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Parameter and constant references replaced by their values as plain text (VARIABLES_PAGE).

    The page does not say that a value is pasted without escaping; the documents assume it is (their
    here-documents keep any value inert), which is the cautious reading.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return values[name] if name in values else match.group(0)

    return REFERENCE.sub(replace, text)


# -- checking --------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(key, f"{where}.{key}")
            yield from _strings(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{where}[{index}]")


def _check_variables(document: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for section, keys, required in (
        ("parameters", PARAMETER_KEYS, {"type"}),
        ("constants", CONSTANT_KEYS, {"type", "value"}),
    ):
        raw = document.get(section)
        if raw is not None and not isinstance(raw, list):
            problems.append(f"{section}: must be a list of one-key mappings ({VARIABLES_PAGE})")
            continue
        for name, spec in _single_key_entries(raw):
            if not isinstance(name, str):
                problems.append(f"{section}: {spec!r} is not a one-key mapping `- Name: {{type: string}}`")
                continue
            if not VARIABLE_NAME.fullmatch(name):
                problems.append(f"{section}.{name}: names are 3 to 128 of A-Z a-z 0-9 - _ ({VARIABLES_PAGE})")
            if name in seen:
                problems.append(f"{section}.{name}: declared twice (parameter and constant names are unique)")
            seen.add(name)
            if not isinstance(spec, dict):
                problems.append(f"{section}.{name}: must be a mapping")
                continue
            if unknown := set(spec) - keys:
                problems.append(f"{section}.{name}: unknown keys {sorted(unknown)} (allowed: {sorted(keys)})")
            if missing := required - set(spec):
                problems.append(f"{section}.{name}: missing {sorted(missing)}")
            if spec.get("type", "string") != "string":
                problems.append(f"{section}.{name}: type must be string, the only supported type")
            for key in ("default", "value", "description"):
                if key in spec and not isinstance(spec[key], str):
                    problems.append(f"{section}.{name}.{key}: must be a string, got {spec[key]!r}")
    return problems


def _check_inputs(where: str, action: str, inputs: Any) -> list[str]:
    if action == "ExecuteBash":  # ACTIONS_PAGE, ExecuteBash: `commands`, a list, required
        if not isinstance(inputs, dict) or set(inputs) != {"commands"}:
            return [f"{where}.inputs: ExecuteBash takes exactly `commands` ({ACTIONS_PAGE}#action-modules-executebash)"]
        commands = inputs["commands"]
        if not isinstance(commands, list) or not commands:
            return [f"{where}.inputs.commands: must be a non-empty list"]
        return [
            f"{where}.inputs.commands[{i}]: must be a string (an unquoted {{{{ X }}}} parses as a mapping)"
            for i, command in enumerate(commands)
            if not isinstance(command, str) or not command.strip()
        ]
    return [f"{where}: no input rules for {action} here yet: add its documented inputs ({ACTIONS_PAGE})"]


def _check_steps(document: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    phases = document.get("phases")
    if not isinstance(phases, list) or not phases:
        return [f"phases: must be a non-empty list ({DOCUMENTS_PAGE})"]
    phase_names: list[str] = []
    for index, phase in enumerate(phases):
        if not isinstance(phase, dict) or set(phase) != PHASE_KEYS:
            problems.append(f"phases[{index}]: a phase has exactly `name` and `steps`")
            continue
        name = phase["name"]
        if name not in PHASES:
            problems.append(f"phases[{index}]: {name!r} is not a phase Image Builder runs for an AMI {PHASES}")
        if name in phase_names:
            problems.append(f"phases[{index}]: phase {name!r} appears twice (phase names are unique)")
        phase_names.append(name)
        if not isinstance(phase["steps"], list) or not phase["steps"]:
            problems.append(f"{name}: steps must be a non-empty list")
            continue
        step_names: set[str] = set()
        for step_index, step in enumerate(phase["steps"]):
            where = f"{name}.steps[{step_index}]"
            if not isinstance(step, dict):
                problems.append(f"{where}: a step is a mapping")
                continue
            if unknown := set(step) - STEP_KEYS:
                problems.append(f"{where}: unknown step fields {sorted(unknown)} (allowed: {sorted(STEP_KEYS)})")
            if missing := REQUIRED_STEP_KEYS - set(step):
                problems.append(f"{where}: missing {sorted(missing)}")
            step_name = step.get("name")
            if not isinstance(step_name, str) or not step_name:
                problems.append(f"{where}.name: must be a non-empty string")
            else:
                where = f"{name}.{step_name}"
                if step_name in step_names:
                    problems.append(f"{where}: step name used twice in phase {name} (unique per phase)")
                step_names.add(step_name)
            if "timeoutSeconds" in step and not (
                _is_int(step["timeoutSeconds"]) and (step["timeoutSeconds"] == -1 or step["timeoutSeconds"] > 0)
            ):
                problems.append(f"{where}.timeoutSeconds: a positive integer, or -1 for none")
            if "onFailure" in step and step["onFailure"] not in ON_FAILURE:
                problems.append(f"{where}.onFailure: one of {ON_FAILURE}")
            if "maxAttempts" in step and not (_is_int(step["maxAttempts"]) and step["maxAttempts"] >= 1):
                problems.append(f"{where}.maxAttempts: a positive integer")
            action = step.get("action")
            if action not in ACTIONS:
                problems.append(f"{where}.action: {action!r} is not an AWSTOE action module ({ACTIONS_PAGE})")
            elif "inputs" in step:
                problems.extend(_check_inputs(where, action, step["inputs"]))
    return problems


def _check_references(document: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    declared = {*parameters(document), *constants(document)}
    used: set[str] = set()
    step_names = {(phase, step.get("name")) for phase, step in steps(document) if isinstance(step, dict)}
    for where, text in _strings({k: v for k, v in document.items() if k != "phases"}, ""):
        for match in REFERENCE.finditer(text):
            problems.append(f"{where.lstrip('.')}: {match.group(0)} outside step inputs and loops ({VARIABLES_PAGE})")
    for phase, step in steps(document):
        if not isinstance(step, dict):
            continue
        for field, node in step.items():
            for where, text in _strings(node, f"{phase}.{step.get('name')}.{field}"):
                for match in REFERENCE.finditer(text):
                    name = match.group(1)
                    if field not in ("inputs", "loop"):
                        problems.append(f"{where}: {match.group(0)} outside inputs and loop ({VARIABLES_PAGE})")
                    elif name in declared:
                        used.add(name)
                    elif chaining := CHAINING.fullmatch(name):
                        if (chaining["phase"], chaining["step"]) not in step_names:
                            problems.append(f"{where}: {match.group(0)} chains from a step that does not exist")
                    elif LOOP_VARIABLE.fullmatch(name):
                        if "loop" not in step:
                            problems.append(f"{where}: {match.group(0)} in a step without a loop ({LOOPS_PAGE})")
                    else:
                        problems.append(f"{where}: {match.group(0)} names no declared parameter or constant")
    problems.extend(f"{name}: declared but never referenced" for name in sorted(declared - used))
    return problems


def problems(document: Any) -> list[str]:
    """Every way `document` departs from the documented component document format; empty when it fits."""
    if not isinstance(document, dict):
        return ["a component document is a YAML mapping"]
    found: list[str] = []
    if unknown := set(document) - TOP_LEVEL_KEYS:
        found.append(f"unknown top-level keys {sorted(unknown)} (allowed: {sorted(TOP_LEVEL_KEYS)}, {DOCUMENTS_PAGE})")
    if missing := REQUIRED_TOP_LEVEL_KEYS - set(document):
        found.append(f"missing top-level keys {sorted(missing)}")
    if "schemaVersion" in document and str(document["schemaVersion"]) != SCHEMA_VERSION:
        found.append(f"schemaVersion must be {SCHEMA_VERSION}, got {document['schemaVersion']!r}")
    for key in ("name", "description"):
        if key in document and not isinstance(document[key], str):
            found.append(f"{key}: must be a string")
    found.extend(_check_variables(document))
    found.extend(_check_steps(document))
    if not found:  # references are read through a well-formed structure only
        found.extend(_check_references(document))
    return found


# -- running ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepRun:
    phase: str
    step: str
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class Run:
    steps: tuple[StepRun, ...]

    @property
    def ok(self) -> bool:
        return all(step.returncode == 0 for step in self.steps)

    @property
    def failed(self) -> StepRun | None:
        return next((step for step in self.steps if step.returncode != 0), None)

    @property
    def output(self) -> str:
        return "".join(step.output for step in self.steps)

    def ran(self, step: str) -> bool:
        return any(run.step == step for run in self.steps)


def resolve(document: Mapping[str, Any], given: Mapping[str, str]) -> dict[str, str]:
    """The value of every parameter (the recipe's, else the document's default) and constant.

    VARIABLES_PAGE says the AWSTOE CLI ignores parameters the document does not declare; Image Builder's
    pages do not say what a recipe gets for one. Here an undeclared or missing value fails the test, so a
    test cannot pass on a misspelt parameter name.
    """
    declared = parameters(document)
    if unknown := set(given) - set(declared):
        raise AssertionError(f"parameters the document does not declare: {sorted(unknown)}")
    values: dict[str, str] = {}
    for name, spec in declared.items():
        if name in given:
            values[name] = given[name]
        elif "default" in spec:
            values[name] = spec["default"]
        else:
            raise AssertionError(f"parameter {name} has no default and no value was given")
    values.update({name: spec["value"] for name, spec in constants(document).items()})
    return values


def run(
    document: Mapping[str, Any],
    phases: Sequence[str],
    given: Mapping[str, str],
    *,
    workdir: Path,
    env: Mapping[str, str],
) -> Run:
    """Run `phases` of `document` the way AWSTOE does, as far as its pages say.

    Phases run in document order whatever order is asked for, steps in order (DOCUMENTS_PAGE); each
    ExecuteBash step is one file run with bash, its exit code the step's result (ACTIONS_PAGE); a failed
    step is retried up to maxAttempts, then stops the run unless onFailure is Continue or Ignore
    (DOCUMENTS_PAGE). The pages do not name the working directory or the environment a step gets: here
    it is `workdir` and exactly `env`.
    """
    values = resolve(document, given)
    done: list[StepRun] = []
    for phase, step in steps(document):
        if phase not in phases:
            continue
        if step["action"] != "ExecuteBash":
            raise NotImplementedError(f"{phase}.{step['name']}: only ExecuteBash steps are emulated")
        script = workdir / phase / step["name"] / "input.sh"
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(bash_script(step, values), encoding="utf-8")
        # The step's own timeout (-1: none), but never more than two minutes here, so a hung step fails fast.
        timeout = step.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
        timeout = TEST_TIMEOUT_SECONDS if timeout == -1 else min(timeout, TEST_TIMEOUT_SECONDS)
        for _ in range(step.get("maxAttempts", 1)):
            result = subprocess.run(
                [BASH, str(script)],
                cwd=workdir,
                env=dict(env),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode == 0:
                break
        done.append(StepRun(phase, step["name"], result.returncode, result.stdout, result.stderr))
        if result.returncode != 0 and step.get("onFailure", "Abort") == "Abort":
            break
    return Run(tuple(done))
