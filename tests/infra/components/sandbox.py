"""A build instance in a temporary directory, for running the app components' steps locally.

- `dnf` and `aws` are stand-ins on PATH that record their arguments; `aws` answers the two calls the
  components make (secretsmanager get-secret-value, the CodeCommit credential helper).
- `git` is the real git behind a wrapper that records every command line the steps run, so a test can
  show a credential never reached one; a test can also make it check out another commit than asked.
- IMMUTABLE_AMI_ROOT points /opt/app and /etc/immutable-ami at `root`; HOME is a fresh directory and the
  machine's /etc/gitconfig is not read.
- `Upstream` is a throwaway repository made with `git init`, published as a bare repository that git can
  clone by path or, through git_http_server.py, over HTTP on loopback.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.infra.components import toe

REAL_GIT = shutil.which("git")
SERVER_SCRIPT = Path(__file__).with_name("git_http_server.py")
TIMEOUT = 30

INSTALL_SCRIPT = """#!/bin/bash
# The application's install script: copies the commit's VERSION file where the image keeps it.
set -euo pipefail
cp VERSION "${IMMUTABLE_AMI_ROOT:-}/opt/app/installed-version"
"""
TEST_SCRIPT = """#!/bin/bash
# The application's integration check: the installed version is the checked-out one.
set -euo pipefail
cmp VERSION "${IMMUTABLE_AMI_ROOT:-}/opt/app/installed-version"
"""

_AWS_STUB = """#!/bin/bash
# Stand-in for the AWS CLI: records its arguments, answers the calls the components make.
{{ printf '%s\\0' "$@"; printf '\\n'; }} >> {log}
case "$1 $2" in
  "secretsmanager get-secret-value")
    if [ ! -f {token} ]; then echo "An error occurred (AccessDeniedException)" >&2; exit 254; fi
    cat {token} ;;
  "codecommit credential-helper")
    cat > /dev/null
    printf 'username=%s\\npassword=%s\\n' "$(cat {user})" "$(cat {password})" ;;
  *) echo "aws stand-in: unexpected call: $*" >&2; exit 2 ;;
esac
"""
_DNF_STUB = """#!/bin/bash
# Stand-in for dnf: records its arguments; the tools it installs are on this machine already.
{{ printf '%s\\0' "$@"; printf '\\n'; }} >> {log}
"""
_GIT_WRAPPER = """#!/bin/bash
# The real git, every command line recorded. SANDBOX_CHECKOUT_INSTEAD makes `checkout` land elsewhere.
{{ printf '%s\\0' "$@"; printf '\\n'; }} >> {log}
args=("$@")
if [ -n "${{SANDBOX_CHECKOUT_INSTEAD:-}}" ]; then
  for arg in "${{args[@]}}"; do
    if [ "$arg" = checkout ]; then args[-1]="$SANDBOX_CHECKOUT_INSTEAD"; fi
  done
fi
exec {git} "${{args[@]}}"
"""


def git_identity_env(home: Path) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "Component Tests",
        "GIT_AUTHOR_EMAIL": "tests@example.com",
        "GIT_COMMITTER_NAME": "Component Tests",
        "GIT_COMMITTER_EMAIL": "tests@example.com",
        "LANG": "C.UTF-8",
    }


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "'\\''") + "'"


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [line.split("\0")[:-1] for line in log.read_text().splitlines()]


@dataclass
class Sandbox:
    base: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for directory in (self.root, self.home, self.stubs, self.logs, self.secrets, self.toe_dir):
            directory.mkdir(parents=True, exist_ok=True)
        assert REAL_GIT, "git is not installed"
        stubs = {
            "aws": _AWS_STUB.format(
                log=_quote(self.logs / "aws"),
                token=_quote(self.secrets / "token"),
                user=_quote(self.secrets / "codecommit-user"),
                password=_quote(self.secrets / "codecommit-password"),
            ),
            "dnf": _DNF_STUB.format(log=_quote(self.logs / "dnf")),
            "git": _GIT_WRAPPER.format(log=_quote(self.logs / "git"), git=_quote(Path(REAL_GIT))),
        }
        for name, text in stubs.items():
            path = self.stubs / name
            path.write_text(text)
            path.chmod(0o755)

    # -- the layout ---------------------------------------------------------------------------------

    @property
    def root(self) -> Path:
        """What the components see as / (IMMUTABLE_AMI_ROOT)."""
        return self.base / "root"

    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def stubs(self) -> Path:
        return self.base / "stubs"

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def secrets(self) -> Path:
        """What the stand-in AWS holds: the secret's SecretString, the CodeCommit credentials."""
        return self.base / "secrets"

    @property
    def toe_dir(self) -> Path:
        """AWSTOE's working directory: the step scripts are written here."""
        return self.base / "toe"

    @property
    def source_dir(self) -> Path:
        return self.root / "opt" / "app" / "source"

    @property
    def release_file(self) -> Path:
        return self.root / "etc" / "immutable-ami" / "release.json"

    def release(self) -> Any:
        return json.loads(self.release_file.read_text())

    def installed_version(self) -> str:
        return (self.root / "opt" / "app" / "installed-version").read_text().strip()

    def head(self) -> str:
        return self.git_out("-C", str(self.source_dir), "rev-parse", "HEAD")

    # -- what happened ------------------------------------------------------------------------------

    def aws_calls(self) -> list[list[str]]:
        return _calls(self.logs / "aws")

    def dnf_calls(self) -> list[list[str]]:
        return _calls(self.logs / "dnf")

    def git_calls(self) -> list[list[str]]:
        return _calls(self.logs / "git")

    def files_containing(self, needle: str) -> list[Path]:
        """Every file of the sandbox, the image and the recorded command lines included, holding `needle`."""
        return [
            path
            for path in self.base.rglob("*")
            if path.is_file()
            and not path.is_symlink()
            and self.secrets not in path.parents
            and needle.encode() in path.read_bytes()
        ]

    # -- running ------------------------------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.stubs}:{os.environ['PATH']}",
            "HOME": str(self.home),
            "IMMUTABLE_AMI_ROOT": str(self.root),
            "GIT_CONFIG_NOSYSTEM": "1",
            "LANG": "C.UTF-8",
            **self.extra_env,
        }

    def run(self, component: str, phases: tuple[str, ...], parameters: Mapping[str, str]) -> toe.Run:
        document = toe.load(toe.COMPONENTS_DIR / f"{component}.yml")
        return toe.run(document, phases, parameters, workdir=self.toe_dir, env=self.env)

    def git_out(self, *args: str) -> str:
        result = subprocess.run(
            [REAL_GIT or "git", *args],
            env=git_identity_env(self.home),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        return result.stdout.strip()


class Upstream:
    """A repository made with `git init`, and the bare copy of it that the components clone."""

    def __init__(self, base: Path, home: Path) -> None:
        self.work = base / "work"
        self.bare = base / "served" / "web-app.git"
        self.home = home
        self.commits: dict[str, str] = {}
        base.mkdir(parents=True, exist_ok=True)
        self._git("init", "--quiet", "--initial-branch=main", str(self.work), cwd=base)

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        result = subprocess.run(
            [REAL_GIT or "git", *args],
            cwd=cwd or self.work,
            env=git_identity_env(self.home),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=True,
        )
        return result.stdout.strip()

    def commit(self, label: str, *, install: str | None = INSTALL_SCRIPT, executable: bool = True) -> str:
        """A commit whose VERSION is `label`, with the install and test scripts (unless told otherwise)."""
        (self.work / "VERSION").write_text(f"{label}\n")
        deploy = self.work / "deploy"
        deploy.mkdir(exist_ok=True)
        (deploy / "test.sh").write_text(TEST_SCRIPT)
        (deploy / "test.sh").chmod(0o755)
        install_path = deploy / "install.sh"
        if install is None:
            install_path.unlink(missing_ok=True)
        else:
            install_path.write_text(install)
            install_path.chmod(0o755 if executable else 0o644)
        self._git("add", "--all")
        self._git("commit", "--quiet", "--message", label)
        self.commits[label] = self._git("rev-parse", "HEAD")
        return self.commits[label]

    def without_test_script(self, label: str) -> str:
        self._git("rm", "--quiet", "deploy/test.sh")
        (self.work / "VERSION").write_text(f"{label}\n")
        self._git("commit", "--quiet", "--all", "--message", label)
        self.commits[label] = self._git("rev-parse", "HEAD")
        return self.commits[label]

    def publish(self, *, refs: Mapping[str, str] | None = None, head: str = "main") -> Path:
        """The bare repository: every branch of `work`, plus `refs` (full ref name → commit), HEAD at `head`."""
        if self.bare.exists():
            shutil.rmtree(self.bare)
        self.bare.parent.mkdir(parents=True, exist_ok=True)
        self._git("clone", "--quiet", "--bare", str(self.work), str(self.bare), cwd=self.bare.parent)
        for ref, sha in (refs or {}).items():
            self._git("update-ref", ref, sha, cwd=self.bare)
        self._git("symbolic-ref", "HEAD", f"refs/heads/{head}", cwd=self.bare)
        self._git("update-server-info", cwd=self.bare)  # what git's dumb HTTP protocol reads
        return self.bare


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextmanager
def http_server(root: Path, authorization: str) -> Iterator[str]:
    """Serve `root` over HTTP on 127.0.0.1 (a port the system picks); yields the base URL."""
    process = subprocess.Popen(
        [sys.executable, str(SERVER_SCRIPT), str(root), authorization],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=TIMEOUT)
