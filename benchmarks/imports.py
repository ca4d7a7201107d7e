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
from functools import cache
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDAS = PROJECT_ROOT / "lambdas"
BOTO3 = "boto3"
# The example configuration with a GitHub source: its template has every function, the webhook's too.
GITHUB_SOURCE = {"type": "github", "repository": "example/web-app", "branch": "main"}
# Fake credentials (nothing is called at import) and no X-Ray segments, as in the rehearsal.
_RUNTIME = {"AWS_ACCESS_KEY_ID": "benchmark", "AWS_SECRET_ACCESS_KEY": "benchmark", "POWERTOOLS_TRACE_DISABLED": "true"}


@cache
def handler_environments() -> dict[str, dict[str, str]]:
    """`<step>.handler` → the environment its function has in the synthesized template (as the rehearsal runs it),
    plus the variables Lambda's runtime defines: the handlers validate it at import, as at a cold start."""
    from rehearsal import artifact as artifacts
    from rehearsal.intrinsics import Account, Resolver
    from stacks.config import strip_json_comments

    config = json.loads(strip_json_comments(artifacts.configured_file().read_text()))
    synthesized = artifacts.synthesize({**config, "source": GITHUB_SOURCE})
    resolver = Resolver(synthesized, Account())
    region = resolver.account.region
    return {
        function.module: {
            **_RUNTIME,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            **resolver.resolve(function.environment, function.logical_id),
        }
        for function in synthesized.functions.values()
    }


_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_PROGRAM = (
    # `python -c` puts its working directory first on the path: the code root, as LAMBDA_TASK_ROOT in the runtime
    "import time; start = time.perf_counter(); import {module}; print(time.perf_counter() - start)"
)


def handler_modules() -> list[str]:
    """`<step>.handler` of every function the template deploys, sorted."""
    return sorted(handler_environments())


def measure_imports(modules: list[str] | None = None, runs: int = 5, warmup: bool = True) -> dict[str, float]:
    """Median cold import time in ms of each module (default: every handler module), and of boto3 alone."""
    if runs < 1:
        raise ValueError(f"runs must be at least 1 (got {runs})")
    names = [*(handler_modules() if modules is None else modules), BOTO3]
    malformed = [name for name in names if not _MODULE_NAME.match(name)]
    if malformed:
        raise ValueError(f"not module names: {malformed}")
    if warmup:
        _import_seconds(",".join(names), _union())  # one process imports everything: the bytecode caches are written
    return {name: _median_import_ms(name, runs) for name in dict.fromkeys(names)}


def beyond_boto3(import_ms: dict[str, float]) -> dict[str, float]:
    """Each module's import time minus boto3's: {"<module>": ms} (negative would mean noise larger than the gap)."""
    if BOTO3 not in import_ms:
        raise ValueError("the boto3 figure is missing: measure it with the modules")
    base = import_ms[BOTO3]
    return {name: round(ms - base, 1) for name, ms in import_ms.items() if name != BOTO3}


def _median_import_ms(module: str, runs: int) -> float:
    env = handler_environments().get(module, _union())
    return round(statistics.median(_import_seconds(module, env) for _ in range(runs)) * 1000, 1)


def _union() -> dict[str, str]:
    """Every function's variables at once: for boto3 alone and for the warm-up that imports every module."""
    merged: dict[str, str] = {}
    for env in handler_environments().values():
        merged.update(env)
    return merged


def _import_seconds(module: str, environment: dict[str, str]) -> float:
    env = {"PATH": os.environ.get("PATH", ""), **environment}
    done = subprocess.run(  # noqa: S603 (our own interpreter, our own program)
        [sys.executable, "-c", _PROGRAM.format(module=module)],
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
