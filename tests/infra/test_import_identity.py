"""One import identity: the CDK app, the tooling and the handlers import the Lambda code as the runtime does.

In AWS the code root (LAMBDA_TASK_ROOT) is `lambdas/`, so a handler imports `shared.config`; the project's editable
install (pyproject.toml) puts that root on the venv's path, so the CDK app imports the very same module. A model or
an exception is then one class everywhere: a `Stage` the handlers build is a `Stage` the app's `DeployConfig`
accepts, and `except InvalidInput` catches it on both sides.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import shared.config
import stacks.config
import stacks.pipeline_stack
from tests.conftest import SAMPLE_DEPLOY_CONFIG

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ["app.py", "stacks", "lambdas", "rehearsal", "benchmarks", "scripts"]
_PATH_HACK = re.compile(r"\bsys\.path\.(insert|append|extend)\b|\bsys\.path\s*[+]?=")
_SECOND_NAME = re.compile(r"^\s*(from\s+lambdas[.\s]|import\s+lambdas\b)|import_module\(\s*[\"']lambdas\.", re.M)


def _python_files() -> list[Path]:
    files: list[Path] = []
    for source in SOURCES:
        path = ROOT / source
        files.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return files


def test_the_lambda_code_root_is_not_a_package_as_in_the_runtime() -> None:
    assert not (ROOT / "lambdas" / "__init__.py").exists()


def test_the_app_and_the_handlers_share_one_config_model() -> None:
    assert stacks.config.DeployConfig is shared.config.DeployConfig
    stages: Any = SAMPLE_DEPLOY_CONFIG["stages"]
    stage = shared.config.Stage.model_validate(stages[0])  # as a handler builds it
    config = stacks.config.DeployConfig.model_validate({**SAMPLE_DEPLOY_CONFIG, "stages": [stage]})
    assert config.stages[0] == stage


def test_the_stack_builds_from_the_same_target_and_tag_modules_the_handlers_read() -> None:
    import stacks.bake_grants
    import stacks.fleet_arns
    from shared import tags

    assert stacks.fleet_arns.Target is shared.config.Target
    assert stacks.bake_grants.tag_keys is tags


def test_nothing_imports_the_lambda_code_under_a_second_name() -> None:
    offenders = [str(f.relative_to(ROOT)) for f in _python_files() if _SECOND_NAME.search(f.read_text())]
    assert offenders == []
    assert not [name for name in sys.modules if name == "lambdas" or name.startswith("lambdas.")]


def test_no_module_outside_the_test_configuration_edits_sys_path() -> None:
    offenders = [str(f.relative_to(ROOT)) for f in _python_files() if _PATH_HACK.search(f.read_text())]
    assert offenders == []
