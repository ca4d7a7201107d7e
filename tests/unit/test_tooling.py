"""The pre-commit hooks are `make lint`'s own ruff and mypy commands, so the two cannot drift apart.

.pre-commit-config.yaml runs local hooks on the project's venv; these tests read it and the Makefile's `lint`
recipe (with the Makefile's variables expanded) and compare the commands word for word, in order.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
PRE_COMMIT = ROOT / ".pre-commit-config.yaml"
LINTERS = ("ruff", "mypy")
_VARIABLE = re.compile(r"^([A-Z_]+)\s*[:?]?=\s*(.*?)\s*$")
_REFERENCE = re.compile(r"\$\(([A-Z_]+)\)")


def makefile_variables(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in text.splitlines() if (m := _VARIABLE.match(line))}


def expand(line: str, variables: dict[str, str]) -> str:
    """`$(NAME)` replaced by its value, until none is left (values may name other variables)."""
    while _REFERENCE.search(line):
        line = _REFERENCE.sub(lambda m: variables[m.group(1)], line)
    return line


def recipe(target: str) -> list[list[str]]:
    """The commands of a Makefile target's recipe, variables expanded, each split into its words."""
    text = MAKEFILE.read_text(encoding="utf-8")
    variables = makefile_variables(text)
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{re.escape(target)}:", line))
    commands = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        commands.append(shlex.split(expand(line.strip().lstrip("@-+"), variables)))
    return commands


def lint_commands() -> list[list[str]]:
    """`make lint`'s ruff and mypy commands (its `pip check`s verify the installed environments, not the code)."""
    return [words for words in recipe("lint") if Path(words[0]).name in LINTERS]


def pre_commit_config() -> dict[str, Any]:
    config = yaml.safe_load(PRE_COMMIT.read_text(encoding="utf-8"))
    assert isinstance(config, dict)
    return config


def hooks() -> list[dict[str, Any]]:
    return [hook for repo in pre_commit_config()["repos"] for hook in repo["hooks"]]


def hook_command(hook: dict[str, Any]) -> list[str]:
    """What pre-commit runs: the entry, then the hook's args (no file names: `pass_filenames: false`)."""
    return [*shlex.split(hook["entry"]), *hook.get("args", [])]


def test_the_hooks_run_make_lints_ruff_and_mypy_commands_in_order() -> None:
    # Given the Makefile's lint recipe
    expected = lint_commands()
    assert [Path(words[0]).name for words in expected].count("ruff") == 2, "ruff check and ruff format --check"
    assert "mypy" in {Path(words[0]).name for words in expected}, "the parser found no mypy command"

    # When the hooks are read / Then they are the same commands, word for word
    assert [hook_command(hook) for hook in hooks()] == expected


def test_the_hooks_check_the_whole_tree_as_make_lint_does() -> None:
    for hook in hooks():
        # mypy on the staged files alone would check them without their package context
        assert hook.get("pass_filenames") is False, hook["id"]


def test_the_hooks_need_no_network() -> None:
    # local hooks on the project's venv: pre-commit clones and installs nothing
    assert {repo["repo"] for repo in pre_commit_config()["repos"]} == {"local"}
    assert {hook["language"] for hook in hooks()} == {"system"}


def test_pre_commit_is_pinned_with_the_dev_requirements() -> None:
    requirements = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8")

    assert len(re.findall(r"^pre-commit==\d+\.\d+\.\d+$", requirements, flags=re.MULTILINE)) == 1
