"""The bake's own scripts: every AWSTOE component document is well formed, its bash passes shellcheck, and
the app components do what they promise when their steps run in a sandbox (tests/infra/components/).

Format rules follow the AWSTOE pages named in tests/infra/components/toe.py:
https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-use-documents.html (document, phases, steps),
https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-user-defined-variables.html (parameters),
https://docs.aws.amazon.com/imagebuilder/latest/userguide/toe-action-modules.html (actions, ExecuteBash).
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from stacks.config_sections import PLAYBOOK_URI, PROJECT_ROOT, AppImage, BaseImage
from stacks.image_builder import ANSIBLE_COMPONENT
from tests.infra.components import toe
from tests.infra.components.sandbox import Sandbox, Upstream, basic, http_server

SHELLCHECK = Path(sys.executable).parent / "shellcheck"
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

TOKEN = "ghp_ComponentTestToken0123456789abcdefXYZ"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:web-app/github-token-AbCdEf"
CODECOMMIT_USER = "build-role-user"
CODECOMMIT_PASSWORD = "build-role-signed-password-123"


def _bash_steps() -> list[Any]:
    cases = []
    for path in toe.document_paths():
        document = toe.load(path)
        for phase, step in toe.steps(document):
            if step.get("action") == "ExecuteBash":
                cases.append(pytest.param(document, step, id=f"{path.stem}/{phase}/{step['name']}"))
    return cases


def install_parameters(commit: str, clone_url: str, **overrides: str) -> dict[str, str]:
    """What the per-bake recipe gives app-install for a public GitHub repository, unless overridden."""
    return {
        "Commit": commit,
        "Branch": "main",
        "Repository": "acme/web-app",
        "CloneUrl": clone_url,
        "SourceType": "github",
        **overrides,
    }


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path / "instance")


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return Upstream(tmp_path / "upstream", tmp_path / "upstream-home")


# -- the documents -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", toe.document_paths(), ids=lambda path: path.name)
def test_every_component_document_fits_the_documented_format(path: Path) -> None:
    assert toe.problems(toe.load(path)) == []


def test_the_format_check_reads_every_component_file_the_recipes_can_use() -> None:
    base, app = BaseImage(), AppImage()
    refs = [*base.components, *app.components, *app.test_components, ANSIBLE_COMPONENT]

    files = {PROJECT_ROOT / ref for ref in refs if ref.endswith((".yml", ".yaml"))}

    assert files
    assert files <= set(toe.document_paths())


MINIMAL: dict[str, Any] = {
    "name": "minimal",
    "schemaVersion": 1.0,
    "parameters": [{"Value": {"type": "string", "default": "x"}}],
    "phases": [
        {
            "name": "build",
            "steps": [{"name": "Echo", "action": "ExecuteBash", "inputs": {"commands": ["echo '{{ Value }}'"]}}],
        }
    ],
}


def _first_step(document: dict[str, Any]) -> dict[str, Any]:
    step: dict[str, Any] = document["phases"][0]["steps"][0]
    return step


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], object], str]] = {
    "unknown top-level key": (lambda d: d.update(Parameters=[]), "unknown top-level keys ['Parameters']"),
    "no phases": (lambda d: d.pop("phases"), "missing top-level keys ['phases']"),
    "schema version": (lambda d: d.update(schemaVersion=2.0), "schemaVersion must be 1.0"),
    "phase Image Builder does not run": (lambda d: d["phases"][0].update(name="install"), "'install' is not a phase"),
    "phase twice": (lambda d: d["phases"].append(copy.deepcopy(d["phases"][0])), "phase 'build' appears twice"),
    "step name twice": (
        lambda d: d["phases"][0]["steps"].append(copy.deepcopy(_first_step(d))),
        "build.Echo: step name used twice",
    ),
    "unknown step field": (lambda d: _first_step(d).update(timeout=5), "unknown step fields ['timeout']"),
    "unknown action": (lambda d: _first_step(d).update(action="RunBash"), "'RunBash' is not an AWSTOE action"),
    "onFailure value": (lambda d: _first_step(d).update(onFailure="Retry"), "build.Echo.onFailure"),
    "zero timeout": (lambda d: _first_step(d).update(timeoutSeconds=0), "build.Echo.timeoutSeconds"),
    "commands not a list": (
        lambda d: _first_step(d).update(inputs={"commands": "echo"}),
        "commands: must be a non-empty list",
    ),
    "unquoted reference": (
        lambda d: _first_step(d).update(inputs={"commands": [{"{{ Value }}": None}]}),
        "commands[0]: must be a string",
    ),
    "no inputs": (lambda d: _first_step(d).pop("inputs"), "missing ['inputs']"),
    "parameter type": (lambda d: d["parameters"][0]["Value"].update(type="integer"), "type must be string"),
    "parameter name too short": (lambda d: d.update(parameters=[{"V": {"type": "string"}}]), "parameters.V: names"),
    "undeclared reference": (
        lambda d: _first_step(d)["inputs"]["commands"].append("echo '{{ Other }}'"),
        "{{ Other }} names no declared parameter",
    ),
    "unused parameter": (
        lambda d: d["parameters"].append({"Unused": {"type": "string"}}),
        "Unused: declared but never referenced",
    ),
    "reference outside inputs": (lambda d: _first_step(d).update(name="{{ Value }}"), "outside inputs and loop"),
}


def test_the_format_check_accepts_a_minimal_document() -> None:
    assert toe.problems(copy.deepcopy(MINIMAL)) == []


@pytest.mark.parametrize("case", BROKEN, ids=str)
def test_the_format_check_names_each_departure_from_the_documented_format(case: str) -> None:
    # Given a well-formed document broken in one way
    document = copy.deepcopy(MINIMAL)
    breaking, expected = BROKEN[case]
    breaking(document)

    # When it is checked / Then the problem is named
    found = toe.problems(document)
    assert any(expected in problem for problem in found), found


def test_a_duplicate_yaml_key_is_refused_not_silently_dropped() -> None:
    with pytest.raises(yaml.constructor.ConstructorError, match="duplicate key 'action'"):
        toe.parse("phases:\n  - name: build\n    steps:\n      - name: A\n        action: X\n        action: Y\n")


@pytest.mark.parametrize("component", ["app-install", "app-test", "ansible-playbook"])
def test_app_components_read_every_parameter_through_one_quoted_here_document_helper(component: str) -> None:
    # The recipe's values arrive at run time: pasted into a quoted here-document, quotes, `$` and backticks
    # in a value stay inert, and the one `param` helper refuses whitespace.
    document = toe.load(toe.COMPONENTS_DIR / f"{component}.yml")
    helpers = set()
    for phase, step in toe.steps(document):
        script = "\n".join(step["inputs"]["commands"])
        lines = script.splitlines()
        for index, line in enumerate(lines):
            for match in toe.REFERENCE.finditer(line):
                name = match.group(1)
                where = f"{phase}.{step['name']} line {index + 1}"
                assert line == match.group(0), f"{where}: a reference is alone on its line"
                assert lines[index - 1] == f"param {name} <<'PARAM'", f"{where}: read through `param {name}`"
                assert lines[index + 1] == "PARAM", where
        if toe.REFERENCE.search(script):
            helper = re.search(r"^param\(\) \{.*?^\}$", script, re.MULTILINE | re.DOTALL)
            assert helper, f"{phase}.{step['name']}: defines the param helper"
            helpers.add(helper.group(0))

    assert len(helpers) == 1, "every step carries the same param helper"
    assert helpers == {_app_install_helper()}, "app-test's helper is app-install's"


def _app_install_helper() -> str:
    document = toe.load(toe.COMPONENTS_DIR / "app-install.yml")
    _, step = next(toe.steps(document))
    match = re.search(r"^param\(\) \{.*?^\}$", step["inputs"]["commands"][0], re.MULTILINE | re.DOTALL)
    assert match
    return match.group(0)


@pytest.mark.parametrize(("document", "step"), _bash_steps())
def test_every_bash_step_passes_shellcheck(document: dict[str, Any], step: dict[str, Any]) -> None:
    # Given the file ExecuteBash would run, with every parameter at a harmless value
    values = {name: spec.get("default") or f"dummy-{name}" for name, spec in toe.parameters(document).items()}
    values.update({name: spec["value"] for name, spec in toe.constants(document).items()})
    script = toe.bash_script(step, values)

    # When shellcheck reads it (every severity, bash)
    result = subprocess.run(
        [str(SHELLCHECK), "--shell=bash", "--severity=style", "--format=gcc", "-"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    # Then it finds nothing
    numbered = "\n".join(f"{n:4} {line}" for n, line in enumerate(script.splitlines(), start=1))
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\n{numbered}"


# -- app-install in the sandbox ------------------------------------------------------------------

BUILD_STEPS = ["CheckParameters", "InstallTools", "FetchSource", "RunInstallScript", "ReleaseRecorded"]


@needs_git
def test_a_full_commit_is_checked_out_recorded_and_installed(sandbox: Sandbox, upstream: Upstream) -> None:
    # Given a repository with two commits, and a bake of the first one
    first = upstream.commit("v1")
    upstream.commit("v2")
    repository = upstream.publish()

    # When app-install runs (Image Builder's build stage: build, then validate)
    run = sandbox.run("app-install", ("build", "validate"), install_parameters(first, str(repository)))

    # Then exactly that commit is checked out, recorded in full and installed
    assert run.ok, run.output
    assert [step.step for step in run.steps] == BUILD_STEPS
    assert sandbox.head() == first
    assert sandbox.release() == {"commit": first, "branch": "main", "repository": "acme/web-app"}
    assert sandbox.installed_version() == "v1"
    assert sandbox.dnf_calls() == [["-y", "install", "git", "jq"]]
    assert sandbox.aws_calls() == []


@needs_git
@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda sha: sha[:7], id="7-character short SHA"),
        pytest.param(lambda sha: sha[:39], id="39 characters"),
        pytest.param(lambda sha: sha + "0", id="41 characters"),
        pytest.param(lambda sha: sha.upper(), id="uppercase"),
        pytest.param(lambda sha: "main", id="branch name"),
        pytest.param(lambda sha: "", id="empty"),
    ],
)
def test_a_commit_that_is_not_a_full_lowercase_sha_is_refused_before_anything_is_cloned(
    sandbox: Sandbox, upstream: Upstream, make_value: Callable[[str], str]
) -> None:
    # Given a repository where a tag and a branch are named like the wanted commit's short SHA but point
    # at another commit
    wanted = upstream.commit("wanted")
    other = upstream.commit("other")
    repository = upstream.publish(refs={f"refs/tags/{wanted[:7]}": other, f"refs/heads/{wanted[:7]}": other})
    value = make_value(wanted)

    # When the bake names the commit any other way than by its full SHA
    run = sandbox.run("app-install", ("build", "validate"), install_parameters(value, str(repository)))

    # Then the first step refuses it, and nothing was installed, cloned or recorded
    assert run.failed is not None
    assert run.failed.step == "CheckParameters"
    assert (
        f"Commit must be a full commit SHA (40 lowercase hexadecimal characters), got '{value}'." in run.failed.stderr
    )
    assert sandbox.dnf_calls() == []
    assert sandbox.git_calls() == []
    assert not sandbox.source_dir.exists()
    assert not sandbox.release_file.exists()


@needs_git
def test_the_full_sha_builds_that_commit_even_where_tags_and_branches_are_named_like_it(
    sandbox: Sandbox, upstream: Upstream
) -> None:
    # Given a repository whose tag and branch named like the wanted commit's short SHA, and whose default
    # branch named like its full SHA, all point at another commit
    wanted = upstream.commit("wanted")
    other = upstream.commit("other")
    repository = upstream.publish(
        refs={
            f"refs/tags/{wanted[:7]}": other,
            f"refs/heads/{wanted[:7]}": other,
            f"refs/heads/{wanted}": other,
        },
        head=wanted,
    )

    # When the bake asks for the full SHA
    run = sandbox.run("app-install", ("build", "validate"), install_parameters(wanted, str(repository)))

    # Then that commit is built, although the clone's own branch of that name points elsewhere (a plain
    # `git checkout <sha>` would have taken the branch)
    assert run.ok, run.output
    assert sandbox.head() == wanted
    assert sandbox.installed_version() == "wanted"
    assert sandbox.release()["commit"] == wanted
    assert sandbox.git_out("-C", str(sandbox.source_dir), "rev-parse", f"refs/heads/{wanted}") == other


@needs_git
def test_a_checkout_that_lands_on_another_commit_fails_naming_both(sandbox: Sandbox, upstream: Upstream) -> None:
    # Given a git whose checkout goes to another commit than it was asked for
    wanted = upstream.commit("wanted")
    other = upstream.commit("other")
    repository = upstream.publish()
    sandbox.extra_env["SANDBOX_CHECKOUT_INSTEAD"] = other

    # When app-install runs
    run = sandbox.run("app-install", ("build", "validate"), install_parameters(wanted, str(repository)))

    # Then the HEAD check stops the build before anything is recorded or installed
    assert run.failed is not None
    assert run.failed.step == "FetchSource"
    assert f"The checkout is at {other}, but this bake is of commit {wanted}." in run.failed.stderr
    assert not sandbox.release_file.exists()
    assert not run.ran("RunInstallScript")


@needs_git
def test_a_commit_no_branch_or_tag_reaches_fails_clearly(sandbox: Sandbox, upstream: Upstream) -> None:
    upstream.commit("v1")
    repository = upstream.publish()
    absent = "f" * 40

    run = sandbox.run("app-install", ("build",), install_parameters(absent, str(repository)))

    assert run.failed is not None
    assert run.failed.step == "FetchSource"
    assert f"Commit {absent} is not in {repository}: no branch or tag there reaches it." in run.failed.stderr


@needs_git
@pytest.mark.parametrize(
    "name", ["Commit", "Branch", "Repository", "CloneUrl", "SourceType", "TokenSecretArn", "InstallScript"]
)
@pytest.mark.parametrize("suffix", ["\n", " ", "\t"], ids=["trailing newline", "trailing space", "trailing tab"])
def test_a_value_with_trailing_whitespace_is_refused_before_anything_is_cloned(
    sandbox: Sandbox, name: str, suffix: str
) -> None:
    # Given a bake whose values are all right but one, which ends in whitespace
    parameters = install_parameters("a" * 40, "https://github.com/acme/web-app.git", TokenSecretArn=SECRET_ARN)
    parameters["InstallScript"] = "deploy/install.sh"
    parameters[name] += suffix

    # When app-install runs
    run = sandbox.run("app-install", ("build", "validate"), parameters)

    # Then the first step refuses it by name, before anything is installed or cloned
    assert run.failed is not None
    assert run.failed.step == "CheckParameters"
    assert f"{name} must not contain whitespace (spaces, tabs or newlines), got " in run.failed.stderr
    assert sandbox.dnf_calls() == []
    assert sandbox.git_calls() == []
    assert sandbox.aws_calls() == []


@needs_git
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"SourceType": "gitlab"}, "SourceType must be codecommit or github, got 'gitlab'."),
        ({"Branch": ""}, "Branch must not be empty."),
        ({"SourceType": "codecommit", "TokenSecretArn": SECRET_ARN}, "TokenSecretArn is for github sources"),
        ({"TokenSecretArn": "web-app/github-token"}, "TokenSecretArn must be a Secrets Manager secret ARN"),
        ({"InstallScript": "../../usr/bin/install.sh"}, "InstallScript must be a path inside the repository"),
        ({"InstallScript": "/usr/bin/install.sh"}, "InstallScript must be a path inside the repository"),
    ],
    ids=["source type", "empty branch", "token for codecommit", "secret name", "parent path", "absolute path"],
)
def test_check_parameters_names_what_is_wrong_with_a_value(
    sandbox: Sandbox, overrides: dict[str, str], message: str
) -> None:
    parameters = install_parameters("a" * 40, "https://github.com/acme/web-app.git", **overrides)

    run = sandbox.run("app-install", ("build",), parameters)

    assert run.failed is not None
    assert run.failed.step == "CheckParameters"
    assert message in run.failed.stderr
    assert sandbox.git_calls() == []


@needs_git
def test_quotes_and_expansions_in_a_value_stay_inert(sandbox: Sandbox) -> None:
    # Given a branch name (git allows quotes, `$` and backticks in one) that would run commands if a
    # step's bash parsed the value as code
    branch = "it's-$(touch${IFS}injected)-`touch${IFS}injected`-${HOME}"
    parameters = install_parameters("a" * 40, "/nowhere", Branch=branch)

    # When the parameters are checked
    run = sandbox.run("app-install", ("build",), parameters)

    # Then the value is taken literally, and nothing ran
    assert run.steps[0].returncode == 0, run.output
    assert f"(branch {branch})" in run.steps[0].stdout
    assert not list(sandbox.base.rglob("injected"))


@needs_git
def test_a_missing_install_script_fails_the_build_clearly(sandbox: Sandbox, upstream: Upstream) -> None:
    commit = upstream.commit("v1", install=None)
    repository = upstream.publish()

    run = sandbox.run("app-install", ("build", "validate"), install_parameters(commit, str(repository)))

    assert run.failed is not None
    assert run.failed.step == "RunInstallScript"
    assert f"The repository has no deploy/install.sh at commit {commit}" in run.failed.stderr


@needs_git
def test_a_non_executable_install_script_fails_the_build_clearly(sandbox: Sandbox, upstream: Upstream) -> None:
    commit = upstream.commit("v1", executable=False)
    repository = upstream.publish()

    run = sandbox.run("app-install", ("build", "validate"), install_parameters(commit, str(repository)))

    assert run.failed is not None
    assert run.failed.step == "RunInstallScript"
    assert f"deploy/install.sh is not executable at commit {commit}" in run.failed.stderr
    assert not (sandbox.root / "opt" / "app" / "installed-version").exists()


@needs_git
def test_the_validate_phase_fails_when_release_json_records_another_commit(
    sandbox: Sandbox, upstream: Upstream
) -> None:
    first = upstream.commit("v1")
    second = upstream.commit("v2")
    repository = upstream.publish()
    assert sandbox.run("app-install", ("build",), install_parameters(first, str(repository))).ok
    sandbox.release_file.write_text(json.dumps({"commit": second, "branch": "main", "repository": "acme/web-app"}))

    run = sandbox.run("app-install", ("validate",), install_parameters(first, str(repository)))

    assert run.failed is not None
    assert run.failed.step == "ReleaseRecorded"
    assert f"records commit '{second}'; this bake is of {first}." in run.failed.stderr


# -- private repositories over HTTP --------------------------------------------------------------


@pytest.fixture
def private_github(sandbox: Sandbox, upstream: Upstream) -> Iterator[tuple[str, str]]:
    """A private GitHub-like repository over HTTP (token as `x-access-token` Basic credentials), and its secret."""
    commit = upstream.commit("v1")
    repository = upstream.publish()
    (sandbox.secrets / "token").write_text(f"{TOKEN}\n")
    with http_server(repository.parent, basic("x-access-token", TOKEN)) as url:
        yield f"{url}/{repository.name}", commit


@needs_git
def test_a_private_github_repository_is_not_cloned_without_a_token(
    sandbox: Sandbox, private_github: tuple[str, str]
) -> None:
    clone_url, commit = private_github

    run = sandbox.run("app-install", ("build", "validate"), install_parameters(commit, clone_url))

    assert run.failed is not None
    assert run.failed.step == "FetchSource"
    assert f"Could not clone {clone_url}" in run.failed.stderr
    assert sandbox.aws_calls() == []


@needs_git
def test_a_private_github_repository_is_cloned_with_the_token_from_secrets_manager(
    sandbox: Sandbox, private_github: tuple[str, str]
) -> None:
    clone_url, commit = private_github

    run = sandbox.run(
        "app-install", ("build", "validate"), install_parameters(commit, clone_url, TokenSecretArn=SECRET_ARN)
    )

    assert run.ok, run.output
    assert sandbox.head() == commit
    assert sandbox.installed_version() == "v1"
    assert sandbox.aws_calls() == [
        ["secretsmanager", "get-secret-value", "--secret-id", SECRET_ARN, "--query", "SecretString", "--output", "text"]
    ]


@needs_git
def test_the_token_stays_out_of_output_command_lines_and_every_file_of_the_image(
    sandbox: Sandbox, private_github: tuple[str, str]
) -> None:
    # Given a private repository cloned with the token
    clone_url, commit = private_github
    run = sandbox.run(
        "app-install", ("build", "validate"), install_parameters(commit, clone_url, TokenSecretArn=SECRET_ARN)
    )
    assert run.ok, run.output
    header = basic("x-access-token", TOKEN)

    # Then neither the token nor the header made of it is in the steps' output, in any git command line,
    # in .git/config, release.json or any other file (the recorded command lines included)
    for secret in (TOKEN, header.removeprefix("Basic ")):
        assert secret not in run.output
        assert not any(secret in arg for call in sandbox.git_calls() for arg in call)
        assert sandbox.files_containing(secret) == []
    assert "extraheader" not in (sandbox.source_dir / ".git" / "config").read_text().lower()
    assert sandbox.release() == {"commit": commit, "branch": "main", "repository": "acme/web-app"}


@needs_git
def test_a_codecommit_clone_signs_through_the_credential_helper_and_leaves_no_git_config(
    sandbox: Sandbox, upstream: Upstream
) -> None:
    # Given a CodeCommit-like repository that takes the credential helper's username and password
    commit = upstream.commit("v1")
    repository = upstream.publish()
    (sandbox.secrets / "codecommit-user").write_text(CODECOMMIT_USER)
    (sandbox.secrets / "codecommit-password").write_text(CODECOMMIT_PASSWORD)

    with http_server(repository.parent, basic(CODECOMMIT_USER, CODECOMMIT_PASSWORD)) as url:
        # When app-install clones it as a codecommit source
        parameters = install_parameters(commit, f"{url}/{repository.name}", SourceType="codecommit")
        run = sandbox.run("app-install", ("build", "validate"), parameters)

    # Then git asked the helper, and no git configuration naming it stays in the image
    assert run.ok, run.output
    assert sandbox.head() == commit
    assert ["codecommit", "credential-helper", "get"] in sandbox.aws_calls()
    assert "credential" not in (sandbox.source_dir / ".git" / "config").read_text()
    assert not list(sandbox.root.rglob("gitconfig"))
    assert not (sandbox.home / ".gitconfig").exists()
    assert sandbox.files_containing(CODECOMMIT_PASSWORD) == []


# -- app-test in the sandbox ---------------------------------------------------------------------


def _installed(sandbox: Sandbox, upstream: Upstream, label: str = "v1") -> str:
    commit = upstream.commits.get(label) or upstream.commit(label)
    repository = upstream.publish()
    run = sandbox.run("app-install", ("build", "validate"), install_parameters(commit, str(repository)))
    assert run.ok, run.output
    return commit


@needs_git
def test_app_test_passes_on_the_image_app_install_built(sandbox: Sandbox, upstream: Upstream) -> None:
    commit = _installed(sandbox, upstream)

    run = sandbox.run("app-test", ("test",), {"Commit": commit})

    assert run.ok, run.output
    assert [step.step for step in run.steps] == ["BakedCommitIsTheRequestedOne", "IntegrationChecks"]


@needs_git
def test_app_test_fails_when_the_image_carries_another_commit(sandbox: Sandbox, upstream: Upstream) -> None:
    # Given an image baked from v1
    baked = _installed(sandbox, upstream, "v1")
    other = upstream.commit("v2")

    # When the test stage is told this bake is of v2
    run = sandbox.run("app-test", ("test",), {"Commit": other})

    # Then it fails before the integration checks, naming both commits
    assert run.failed is not None
    assert run.failed.step == "BakedCommitIsTheRequestedOne"
    assert f"The image carries commit {baked} ({sandbox.release_file}), but this bake is of {other}." in (
        run.failed.stderr
    )
    assert not run.ran("IntegrationChecks")


@needs_git
def test_app_test_fails_when_the_repository_has_no_test_script(sandbox: Sandbox, upstream: Upstream) -> None:
    upstream.commit("v1")
    commit = upstream.without_test_script("v2")
    _installed(sandbox, upstream, "v2")

    run = sandbox.run("app-test", ("test",), {"Commit": commit})

    assert run.failed is not None
    assert run.failed.step == "IntegrationChecks"
    assert "The repository has no executable deploy/test.sh: every image must be tested." in run.failed.stderr


@needs_git
@pytest.mark.parametrize("name", ["Commit", "TestScript"])
@pytest.mark.parametrize("suffix", ["\n", " "], ids=["trailing newline", "trailing space"])
def test_app_test_refuses_a_value_with_trailing_whitespace(
    sandbox: Sandbox, upstream: Upstream, name: str, suffix: str
) -> None:
    commit = _installed(sandbox, upstream)
    parameters = {"Commit": commit, "TestScript": "deploy/test.sh"}
    parameters[name] += suffix

    run = sandbox.run("app-test", ("test",), parameters)

    assert run.failed is not None
    assert f"{name} must not contain whitespace (spaces, tabs or newlines), got " in run.failed.stderr


# -- ansible-playbook in the sandbox -------------------------------------------------------------

# Stand-ins for the AWS CLI's `s3 cp` and for python3's venv (with the pip and ansible-playbook it would hold):
# each records its arguments, one per line, in logs/<its name>; `aws s3 cp` writes a playbook where it is asked.
_RECORDER = """#!/bin/bash
printf '%s\\n' "$@" > LOGS/"$(basename "$0")"
"""
_AWS = """
if [ "$1 $2" != "s3 cp" ]; then echo "aws stand-in: unexpected call: $*" >&2; exit 2; fi
printf '%s\\n' '- hosts: localhost' '  tasks: []' > "$4"
"""
_PYTHON3 = """
if [ "$1 $2" != "-m venv" ]; then echo "python3 stand-in: unexpected call: $*" >&2; exit 2; fi
mkdir -p "$3/bin"
for tool in pip ansible-playbook; do head -n 2 "$0" > "$3/bin/$tool" && chmod +x "$3/bin/$tool"; done
"""


def _ansible_sandbox(sandbox: Sandbox) -> Sandbox:
    recorder = _RECORDER.replace("LOGS", shlex.quote(str(sandbox.logs)))
    for name, text in {"aws": recorder + _AWS, "python3": recorder + _PYTHON3}.items():
        stub = sandbox.stubs / name
        stub.write_text(text)
        stub.chmod(0o755)
    return sandbox


def _recorded(sandbox: Sandbox, name: str) -> list[str]:
    log = sandbox.logs / name
    return log.read_text().splitlines() if log.exists() else []


@needs_git
@pytest.mark.parametrize("uri", ["s3://acme-playbooks/site.yml", "s3://acme.playbooks-1/roles/base_image/site-v2.yaml"])
def test_ansible_playbook_fetches_exactly_the_configured_playbook_and_applies_it(sandbox: Sandbox, uri: str) -> None:
    # Given the component's parameter as the recipe sets it from baseImage.ansiblePlaybook
    _ansible_sandbox(sandbox)
    # When the build phase runs
    run = sandbox.run("ansible-playbook", ("build",), {"PlaybookS3Uri": uri})
    # Then the value is checked, fetched as one argument and applied to localhost, and nothing is left behind
    assert run.ok, run.output
    assert f"Applying the playbook {uri}." in run.steps[0].stdout
    aws = _recorded(sandbox, "aws")
    assert aws[:3] == ["s3", "cp", uri]
    assert len(aws) == 4
    assert _recorded(sandbox, "ansible-playbook") == ["-i", "localhost,", "-c", "local", aws[3]]
    assert not Path(aws[3]).exists()
    assert not (sandbox.root / "opt" / "ansible").exists()


@needs_git
@pytest.mark.parametrize(
    ("uri", "message"),
    [
        (
            "s3://acme-playbooks/x';touch${IFS}injected;'.yml",
            "PlaybookS3Uri must be s3://<bucket>/<key>.yml (or .yaml)",
        ),
        ("s3://acme-playbooks/$(touch${IFS}injected).yml", "PlaybookS3Uri must be s3://<bucket>/<key>.yml (or .yaml)"),
        ("s3://acme-playbooks/`touch${IFS}injected`.yml", "PlaybookS3Uri must be s3://<bucket>/<key>.yml (or .yaml)"),
        ("s3://acme-playbooks/site.yml;touch${IFS}injected", "PlaybookS3Uri must be s3://<bucket>/<key>.yml"),
        ("s3://acme-playbooks/site.yml|sh", "PlaybookS3Uri must be s3://<bucket>/<key>.yml (or .yaml)"),
        ("https://acme-playbooks.s3.amazonaws.com/site.yml", "PlaybookS3Uri must be s3://<bucket>/<key>.yml"),
        ("s3://acme-playbooks/site.sh", "PlaybookS3Uri must be s3://<bucket>/<key>.yml (or .yaml)"),
        ("s3://Acme_Playbooks/site.yml", "PlaybookS3Uri must be s3://<bucket>/<key>.yml (or .yaml)"),
        ("", "PlaybookS3Uri must be s3://<bucket>/<key>.yml (or .yaml)"),
        ("s3://acme-playbooks/site.yml\n", "PlaybookS3Uri must not contain whitespace"),
        ("s3://acme-playbooks/my site.yml", "PlaybookS3Uri must not contain whitespace"),
    ],
    ids=[
        "quote",
        "command substitution",
        "backticks",
        "semicolon",
        "pipe",
        "https",
        "not yaml",
        "bucket name",
        "empty",
        "trailing newline",
        "space",
    ],
)
def test_ansible_playbook_refuses_anything_but_a_plain_s3_yaml_uri_before_anything_runs(
    sandbox: Sandbox, uri: str, message: str
) -> None:
    # Given a parameter value that is not a plain s3://bucket/key.yml (the config refuses these too)
    _ansible_sandbox(sandbox)
    # When the build phase runs
    run = sandbox.run("ansible-playbook", ("build",), {"PlaybookS3Uri": uri})
    # Then CheckParameters refuses it naming the parameter, nothing is installed or fetched, and nothing ran
    assert run.failed is not None
    assert run.failed.step == "CheckParameters"
    assert message in run.failed.stderr
    assert not run.ran("RunPlaybook")
    assert sandbox.dnf_calls() == []
    assert _recorded(sandbox, "aws") == []
    assert not list(sandbox.base.rglob("injected"))


def test_the_component_accepts_exactly_the_playbook_uris_the_configuration_accepts() -> None:
    # The same pattern guards baseImage.ansiblePlaybook (stacks/config_sections.py) and CheckParameters (bash ERE)
    document = toe.load(toe.COMPONENTS_DIR / "ansible-playbook.yml")
    _, check = next(toe.steps(document))
    match = re.search(r'\[\[ ! "\$PlaybookS3Uri" =~ (\S+) \]\]', check["inputs"]["commands"][0])
    assert match
    assert match.group(1) == PLAYBOOK_URI.pattern
