"""The version ledger: the one place Image Builder component and recipe versions come from.

An Image Builder component or recipe version is immutable: a name and version is created once, and a
CloudFormation property change of one of these resources replaces it, which creates a new resource
with the template's name and version (AWS::ImageBuilder::Component and ::ImageRecipe: Name, Version,
Data, Components, ParentImage, Description, BlockDeviceMappings all say "Update requires: Replacement",
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-imagebuilder-component.html,
https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-imagebuilder-imagerecipe.html).
So every change to what defines such a resource must come with a version it never had. And a recipe
or image chosen by `x.x.x` is the highest version
(https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html): a version
that went down would lose to an older one.

Why a committed lock file (imagebuilder/versions.json) rather than a version derived from a hash:

- deterministic: the version follows from the committed file and the content, so every machine and CI
  synthesizes the same template from the same commit;
- versions only go up: a changed content gets the recorded version's successor, never a number a hash
  happened to produce (which may be lower, and then `x.x.x` would pick the old image);
- CloudFormation always gets a new name+version for a resource it replaces, because the digest covers
  every property whose change replaces it.

Each entry is one Image Builder resource name, `{"version": "1.0.3", "sha256": "<digest of its content>"}`,
keys sorted. A synth that changes an entry rewrites the file and says so on stderr: commit it with the
change that caused it, or the next change would be given the same version again.

A merge conflict in the file: for each conflicting entry keep the higher version (either digest), then
synthesize again: wherever the merged content differs from the kept digest the ledger moves the version
above the higher one, so the merged branch never reuses a version either side created.

`IMMUTABLE_AMI_VERSIONS_FILE` names another ledger file (the tests use a copy); with
`IMMUTABLE_AMI_VERSIONS_READONLY=1` versions are computed but never written (every synth of the test
suite then sees the committed ledger, whatever it synthesized before).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = PROJECT_ROOT / "imagebuilder" / "versions.json"
FILE_VARIABLE = "IMMUTABLE_AMI_VERSIONS_FILE"
READONLY_VARIABLE = "IMMUTABLE_AMI_VERSIONS_READONLY"

# "For the first three nodes you can assign any positive integer value, or zero, with an upper limit of
# 2^30-1, or 1073741823 for each node. Image Builder automatically assigns the build number to the fourth
# node." (https://docs.aws.amazon.com/imagebuilder/latest/userguide/ibhow-semantic-versioning.html)
# Leading zeros are refused: the docs show 2021.01.01 as a pattern but do not say whether Image Builder
# keeps or drops the zero, and the ledger compares and prints versions as numbers.
MAX_NODE = 2**30 - 1
_VERSION = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class VersionError(ValueError):
    """A version Image Builder would refuse, or a ledger file that cannot be read or kept consistent."""


@dataclass(frozen=True, order=True)
class Version:
    """An assignable Image Builder version, major.minor.patch (the build node is Image Builder's)."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.fullmatch(text) if isinstance(text, str) else None
        if not match:
            raise VersionError(f"{text!r} is not an Image Builder version major.minor.patch (like 1.0.0)")
        version = cls(*(int(node) for node in match.groups()))
        if max(version.major, version.minor, version.patch) > MAX_NODE:
            raise VersionError(f"{text!r}: each node of an Image Builder version is at most {MAX_NODE}")
        return version

    def successor(self) -> Version:
        """The next patch; a patch at the limit carries into the minor, a minor at the limit into the major."""
        if self.patch < MAX_NODE:
            return Version(self.major, self.minor, self.patch + 1)
        if self.minor < MAX_NODE:
            return Version(self.major, self.minor + 1, 0)
        if self.major < MAX_NODE:
            return Version(self.major + 1, 0, 0)
        raise VersionError(f"{self} is the highest Image Builder version: there is no next one")

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


@dataclass(frozen=True)
class _Entry:
    version: Version
    sha256: str

    def to_json(self) -> dict[str, str]:
        return {"sha256": self.sha256, "version": str(self.version)}


def ledger_file() -> Path:
    """The ledger this process reads and writes: $IMMUTABLE_AMI_VERSIONS_FILE, else imagebuilder/versions.json."""
    configured = os.environ.get(FILE_VARIABLE)
    return Path(configured) if configured else DEFAULT_FILE


class VersionLedger:
    """Versions of Image Builder resources by name: `load()`, `version()` for each resource, `save()` once."""

    def __init__(self, path: Path, entries: dict[str, _Entry]) -> None:
        self.path = path
        self._recorded = dict(entries)
        self._entries = dict(entries)
        self._reasons: dict[str, str] = {}
        self._asked: dict[str, str] = {}  # name -> digest asked for in this synth

    @classmethod
    def load(cls, path: Path | None = None) -> VersionLedger:
        """The ledger at `path` (default: `ledger_file()`); a missing file is an empty ledger."""
        path = Path(path) if path is not None else ledger_file()
        return cls(path, _read(path))

    def version(self, name: str, configured: str, content: str) -> str:
        """The version of the resource `name` whose full canonical definition is `content`.

        The recorded version while the content keeps its digest (and is not below `configured`); otherwise a
        version above the recorded one and at least `configured`: `configured` if the user raised it past the
        recorded one, else the recorded patch + 1. Never lower than what the ledger recorded.
        """
        floor = Version.parse(configured)
        digest = hashlib.sha256(content.encode()).hexdigest()
        if self._asked.setdefault(name, digest) != digest:
            raise VersionError(f"{name}: two resources of this name with different content in one synth")
        entry = self._entries.get(name)
        if entry is not None and entry.sha256 == digest and entry.version >= floor:
            return str(entry.version)
        if entry is None:
            new, reason = floor, "new"
        elif entry.sha256 == digest:
            new, reason = floor, "configured version raised"
        else:
            new, reason = max(entry.version.successor(), floor), "content changed"
        self._entries[name] = _Entry(new, digest)
        self._reasons[name] = reason
        return str(new)

    def save(self) -> None:
        """Write the file if a version changed: atomically, under an exclusive lock, and say what changed."""
        changed = sorted(name for name, entry in self._entries.items() if self._recorded.get(name) != entry)
        if not changed:
            return
        summary = ", ".join(self._describe(name) for name in changed)
        if os.environ.get(READONLY_VARIABLE) == "1":
            print(f"{self._display()}: {summary} (not written: {READONLY_VARIABLE}=1)", file=sys.stderr)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path.parent):
            on_disk = _read(self.path)
            for name in changed:  # another synth wrote meanwhile: keep its entries, refuse a clash with ours
                theirs = on_disk.get(name)
                if theirs not in (self._recorded.get(name), self._entries[name]):
                    raise VersionError(
                        f"{self._display()}: {name} was changed by another synth meanwhile (now {theirs.version})"
                        if theirs
                        else f"{self._display()}: {name} was removed by another synth meanwhile"
                    )
                on_disk[name] = self._entries[name]
            _write(self.path, on_disk)
        self._recorded = dict(self._entries)
        print(f"{self._display()}: {summary}; commit this file", file=sys.stderr)

    def _describe(self, name: str) -> str:
        before, after = self._recorded.get(name), self._entries[name]
        if before is None:
            return f"{name} {after.version} ({self._reasons.get(name, 'new')})"
        return f"{name} {before.version} -> {after.version} ({self._reasons.get(name, 'changed')})"

    def _display(self) -> str:
        with contextlib.suppress(ValueError):
            return str(self.path.resolve().relative_to(PROJECT_ROOT))
        return str(self.path)


def _read(path: Path) -> dict[str, _Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise VersionError(
            f"{path} is not JSON ({exc}); after a merge conflict keep the higher version of each entry"
        ) from exc
    if not isinstance(raw, dict):
        raise VersionError(f"{path}: expected an object of entries by resource name")
    entries = {}
    for name, value in raw.items():
        if not (isinstance(value, dict) and set(value) == {"sha256", "version"}):
            raise VersionError(f"{path}: {name}: expected {{'version': ..., 'sha256': ...}}, got {value!r}")
        if not (isinstance(value["sha256"], str) and _DIGEST.fullmatch(value["sha256"])):
            raise VersionError(f"{path}: {name}: sha256 must be 64 lower-case hex digits")
        try:
            entries[name] = _Entry(Version.parse(value["version"]), value["sha256"])
        except VersionError as exc:
            raise VersionError(f"{path}: {name}: {exc}") from None
    return entries


def _write(path: Path, entries: dict[str, _Entry]) -> None:
    text = json.dumps({name: entry.to_json() for name, entry in entries.items()}, indent=2, sort_keys=True) + "\n"
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(staging, 0o644)
        os.replace(staging, path)  # readers see the old file or the new one, never a part
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)
        raise


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive flock on the ledger's folder: the file itself is replaced, so it cannot carry the lock,
    and a lock file beside it would be one more file in the repository."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
