"""Cold import time of every handler module, and of boto3 alone (which the Lambda runtime also has to import).

Each figure is the median, in milliseconds, of `runs` fresh interpreters that each time one `import` statement
(interpreter start-up is not counted). First (`warmup`) one discarded interpreter imports every module once and
so writes the bytecode caches: the figures are those of a deployment package with compiled bytecode; without it
the first run of each module also compiles.

`measure_imports` returns {"<step>.handler": ms, ..., "boto3": ms}; `beyond_boto3` turns that into what each
handler costs on top of boto3 ({"<step>.handler": ms}), the part this project's code and its layers decide.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = PROJECT_ROOT / "lambdas"
BOTO3 = "boto3"
REGION = "eu-west-1"
ACCOUNT = "123456789012"
_DEPLOY_CONFIG = {
    "application": "web-app",
    "source": {"type": "github", "repository": "example/web-app", "branch": "main"},
    "stages": [
        {
            "name": "test",
            "targets": [{"autoScalingGroupName": "web-app-test", "launchTemplateId": "lt-0aaaaaaaaaaaaaaa1"}],
        },
        {
            "name": "prod",
            "approval": True,
            "targets": [{"autoScalingGroupName": "web-app-prod", "launchTemplateId": "lt-0bbbbbbbbbbbbbbb2"}],
        },
    ],
}
# What the stack sets on the functions, as the handlers' environment models (lambdas/<step>/models.py,
# `*Environment`) name it; values that pass their validation. Fake credentials: nothing is called at import.
HANDLER_ENVIRONMENT = {
    "DEPLOY_CONFIG": json.dumps(_DEPLOY_CONFIG),
    "LOCK_TABLE_NAME": "web-app-locks",
    "LOCK_TTL_SECONDS": "10800",
    "WAIT_TTL_SECONDS": "86400",
    "BUILD_SOURCE_PARAMETER": "/immutable-ami/web-app/build-source",
    "BASE_PIPELINE_ARN": f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app-base",
    "APP_PIPELINE_ARN": f"arn:aws:imagebuilder:{REGION}:{ACCOUNT}:image-pipeline/web-app-app",
    "WEBHOOK_SECRET_ARN": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:web-app/github-webhook-AbCdEf",
    "STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:web-app-deploy",
    "GITHUB_REPOSITORY": "example/web-app",
    "DEPLOY_BRANCH": "main",
    "POWERTOOLS_SERVICE_NAME": "web-app",
    "POWERTOOLS_METRICS_NAMESPACE": "ImmutableAmiPipeline",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PROGRAM = (
    "import sys, time; sys.path.insert(0, {lambdas!r}); "
    "start = time.perf_counter(); import {module}; print(time.perf_counter() - start)"
)


def handler_modules() -> list[str]:
    """`<step>.handler` for every directory under lambdas/ that has a handler.py, sorted."""
    return sorted(f"{d.name}.handler" for d in LAMBDAS.iterdir() if (d / "handler.py").is_file())


def measure_imports(modules: list[str] | None = None, runs: int = 5, warmup: bool = True) -> dict[str, float]:
    """Median cold import time in ms of each module (default: every handler module), and of boto3 alone."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1 (got {runs})")
    names = [*(handler_modules() if modules is None else modules), BOTO3]
    malformed = [name for name in names if not _MODULE_NAME.match(name)]
    if malformed:
        raise ValueError(f"not module names: {malformed}")
    if warmup:
        _import_seconds(",".join(names))  # one process imports everything once: the bytecode caches are written
    return {name: _median_import_ms(name, runs) for name in dict.fromkeys(names)}


def beyond_boto3(import_ms: dict[str, float]) -> dict[str, float]:
    """Each module's import time minus boto3's: {"<module>": ms} (negative would mean noise larger than the gap)."""
    if BOTO3 not in import_ms:
        raise ValueError("the boto3 figure is missing: measure it with the modules")
    base = import_ms[BOTO3]
    return {name: round(ms - base, 1) for name, ms in import_ms.items() if name != BOTO3}


def _median_import_ms(module: str, runs: int) -> float:
    return round(statistics.median(_import_seconds(module) for _ in range(runs)) * 1000, 1)


def _import_seconds(module: str) -> float:
    env = {"PATH": os.environ.get("PATH", ""), **HANDLER_ENVIRONMENT}
    done = subprocess.run(  # noqa: S603 (our own interpreter, our own program)
        [sys.executable, "-c", _PROGRAM.format(lambdas=str(LAMBDAS), module=module)],
        env=env,
        cwd=LAMBDAS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"importing {module} failed (exit {done.returncode}): {last}")
    return float(done.stdout.strip().splitlines()[-1])
