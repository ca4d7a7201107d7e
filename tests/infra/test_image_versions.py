"""The version ledger (stacks/image_versions.py): its rules, its file, and what it does to a synthesized template.

The last test is issue #13's end to end check: synthesize, edit component files, synthesize again, and every
Image Builder resource CloudFormation would replace has a new name+version, higher than before.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from stacks.image_versions import (
    FILE_VARIABLE,
    MAX_NODE,
    PROJECT_ROOT,
    READONLY_VARIABLE,
    Version,
    VersionError,
    VersionLedger,
    ledger_file,
)

NAME = "web-app-app-install"


@pytest.fixture(autouse=True)
def _writable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The session's ledger is read-only (tests/conftest.py); these tests write their own files."""
    monkeypatch.delenv(READONLY_VARIABLE, raising=False)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "versions.json"


def recorded(path: Path, name: str, version: str, content: str) -> None:
    """A ledger file holding `name` at `version` for `content`, as an earlier synth would leave it."""
    ledger = VersionLedger.load(path)
    ledger.version(name, version, content)
    ledger.save()


def entries(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


# -- the rules ----------------------------------------------------------------------------------


def test_same_content_keeps_the_recorded_version(path: Path) -> None:
    # Given a ledger that recorded 1.0.3 for this content
    recorded(path, NAME, "1.0.3", "document v1")

    # When a later synth asks again for the same content
    version = VersionLedger.load(path).version(NAME, "1.0.0", "document v1")

    # Then it is the recorded version
    assert version == "1.0.3"


def test_changed_content_gets_the_next_patch(path: Path) -> None:
    # Given a ledger that recorded 1.0.3
    recorded(path, NAME, "1.0.3", "document v1")

    # When the content changes
    version = VersionLedger.load(path).version(NAME, "1.0.0", "document v2")

    # Then the version is the recorded patch + 1
    assert version == "1.0.4"


def test_a_new_resource_starts_at_the_configured_version(path: Path) -> None:
    # Given no ledger file at all (an empty ledger)
    assert not path.exists()

    # When a resource is versioned
    version = VersionLedger.load(path).version("web-app-base", "2.3.0", "recipe")

    # Then it starts at the configured version
    assert version == "2.3.0"


@pytest.mark.parametrize("content", ["recipe v1", "recipe v2"], ids=["same-content", "changed-content"])
def test_a_configured_major_or_minor_bump_starts_there(path: Path, content: str) -> None:
    # Given a recipe recorded at 1.0.7
    recorded(path, "web-app-base", "1.0.7", "recipe v1")

    # When the user raises the configured version to 1.1.0
    version = VersionLedger.load(path).version("web-app-base", "1.1.0", content)

    # Then the version is the configured one, whether or not the content changed
    assert version == "1.1.0"


def test_a_configured_version_below_the_recorded_one_never_lowers_it(path: Path) -> None:
    # Given a recipe recorded at 2.0.5
    recorded(path, "web-app-base", "2.0.5", "recipe v1")
    ledger = VersionLedger.load(path)

    # When the configuration says 1.0.0, once with the same content and once changed
    same = ledger.version("web-app-base", "1.0.0", "recipe v1")
    changed = VersionLedger.load(path).version("web-app-base", "1.0.0", "recipe v2")

    # Then the version stays 2.0.5, or goes above it
    assert same == "2.0.5"
    assert changed == "2.0.6"


def test_versions_only_go_up_over_a_series_of_changes(path: Path) -> None:
    # Given a series of synths, each changing the content (some back to an earlier content)
    seen: list[Version] = []
    for content in ["a", "b", "a", "c", "c", "b"]:
        ledger = VersionLedger.load(path)
        seen.append(Version.parse(ledger.version(NAME, "1.0.0", content)))
        ledger.save()

    # Then every change got a higher version, and an unchanged content kept its own
    assert [str(v) for v in seen] == ["1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.3", "1.0.4"]


def test_a_patch_at_the_limit_carries_into_the_minor(path: Path) -> None:
    # Given a version at Image Builder's largest patch
    recorded(path, NAME, f"1.0.{MAX_NODE}", "v1")

    # When the content changes
    version = VersionLedger.load(path).version(NAME, "1.0.0", "v2")

    # Then the minor goes up: still a higher version, still an assignable one
    assert version == "1.1.0"


@pytest.mark.parametrize(
    "bad",
    ["1.0", "1.0.0.0", "v1.0.0", "1.0.x", "1.01.0", "-1.0.0", "", f"1.0.{MAX_NODE + 1}", "1.0.0/1"],
)
def test_versions_image_builder_would_refuse_are_refused(path: Path, bad: str) -> None:
    # When a configured version is not major.minor.patch with each node in 0..2^30-1 (no leading zeros)
    # Then it is refused, naming the value
    with pytest.raises(VersionError, match="version"):
        VersionLedger.load(path).version(NAME, bad, "content")


def test_a_ledger_file_with_an_invalid_version_is_refused(path: Path) -> None:
    # Given a hand-edited entry with a version Image Builder would refuse
    path.write_text(json.dumps({NAME: {"version": "1.0.1073741824", "sha256": "0" * 64}}))

    # When it is loaded, Then the error names the file and the entry
    with pytest.raises(VersionError, match=f"{NAME}: .*at most {MAX_NODE}"):
        VersionLedger.load(path)


def test_a_ledger_file_left_with_merge_conflict_markers_is_refused_with_advice(path: Path) -> None:
    # Given a ledger left as a failed merge left it
    path.write_text('{\n<<<<<<< HEAD\n  "a": {}\n=======\n  "a": {}\n>>>>>>> other\n}\n')

    # When it is loaded, Then it says how to resolve the conflict
    with pytest.raises(VersionError, match="keep the higher version"):
        VersionLedger.load(path)


def test_one_name_with_two_contents_in_one_synth_is_refused(path: Path) -> None:
    # Given one synth that already versioned a resource of this name
    ledger = VersionLedger.load(path)
    ledger.version(NAME, "1.0.0", "from imagebuilder/components/app-install.yml")

    # When another resource of the same name but different content asks, Then it is refused
    with pytest.raises(VersionError, match="two resources of this name"):
        ledger.version(NAME, "1.0.0", "from elsewhere/app-install.yml")


# -- the file -----------------------------------------------------------------------------------


def test_save_writes_sorted_json_and_names_what_changed(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a ledger with one recorded entry
    recorded(path, "web-app-base", "1.0.0", "recipe")
    capsys.readouterr()

    # When one synth changes it and adds another
    ledger = VersionLedger.load(path)
    ledger.version("web-app-base", "1.0.0", "recipe v2")
    ledger.version(NAME, "1.0.0", "document")
    ledger.save()

    # Then the file is sorted JSON, one entry per name, and one stderr line says what changed
    text = path.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    assert {name: entry["version"] for name, entry in entries(path).items()} == {
        "web-app-base": "1.0.1",
        NAME: "1.0.0",
    }
    assert all(len(entry["sha256"]) == 64 for entry in entries(path).values())
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"{path}: {NAME} 1.0.0 (new), web-app-base 1.0.0 -> 1.0.1 (content changed); commit this file",
    ]


def test_save_writes_nothing_when_nothing_changed(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a recorded ledger
    recorded(path, NAME, "1.0.0", "document")
    before = path.stat()
    capsys.readouterr()

    # When a synth asks for the same content and saves
    ledger = VersionLedger.load(path)
    ledger.version(NAME, "1.0.0", "document")
    ledger.save()

    # Then the file is not rewritten and nothing is said
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert capsys.readouterr().err == ""


def test_read_only_computes_versions_but_never_writes(
    path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the read-only switch the test session uses
    recorded(path, NAME, "1.0.0", "document")
    text = path.read_text()
    monkeypatch.setenv(READONLY_VARIABLE, "1")

    # When a synth changes the content and saves
    ledger = VersionLedger.load(path)
    version = ledger.version(NAME, "1.0.0", "document v2")
    ledger.save()

    # Then the version is the next one, but the file is as it was
    assert version == "1.0.1"
    assert path.read_text() == text
    assert "not written" in capsys.readouterr().err


def test_the_default_file_is_the_variable_else_the_repository_ledger(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FILE_VARIABLE, str(path))
    assert ledger_file() == path
    assert VersionLedger.load().path == path

    monkeypatch.delenv(FILE_VARIABLE)
    assert ledger_file() == PROJECT_ROOT / "imagebuilder" / "versions.json"


def test_the_session_never_writes_the_repository_ledger() -> None:
    # tests/conftest.py points every synth of the session at a read-only copy
    assert ledger_file() != PROJECT_ROOT / "imagebuilder" / "versions.json"
    assert ledger_file().parent != PROJECT_ROOT / "imagebuilder"


def test_the_committed_ledger_is_valid() -> None:
    committed = PROJECT_ROOT / "imagebuilder" / "versions.json"
    VersionLedger.load(committed)  # raises on anything Image Builder or the ledger would refuse
    text = committed.read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_concurrent_saves_from_two_processes_keep_every_entry(path: Path) -> None:
    # Given two processes that each record 40 resources, one synth (load, version, save) per resource
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from stacks.image_versions import VersionLedger
        path, worker = Path(sys.argv[1]), sys.argv[2]
        for i in range(40):
            ledger = VersionLedger.load(path)
            ledger.version(f"{worker}-{i}", "1.0.0", f"content {i}")
            ledger.save()
        """
    )
    env = {k: v for k, v in os.environ.items() if k != READONLY_VARIABLE}
    env["PYTHONPATH"] = str(PROJECT_ROOT)

    # When they run at the same time
    workers = [
        subprocess.Popen(  # this interpreter, our own module
            [sys.executable, "-c", script, str(path), worker], env=env, stderr=subprocess.DEVNULL
        )
        for worker in ("a", "b")
    ]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]

    # Then the file is whole and holds every entry of both (no lost update, no torn write, no stray file)
    assert set(entries(path)) == {f"{worker}-{i}" for worker in ("a", "b") for i in range(40)}
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_concurrent_synth_that_recorded_other_content_for_a_name_makes_save_fail(path: Path) -> None:
    # Given two synths that loaded the same ledger and versioned one resource on different contents
    recorded(path, NAME, "1.0.0", "document")
    first, second = VersionLedger.load(path), VersionLedger.load(path)
    assert first.version(NAME, "1.0.0", "edit one") == second.version(NAME, "1.0.0", "edit two") == "1.0.1"

    # When both save
    first.save()

    # Then the second is refused (its template would reuse 1.0.1 for other content), and the file keeps the first
    with pytest.raises(VersionError, match="changed by another synth meanwhile"):
        second.save()
    assert entries(path)[NAME]["version"] == "1.0.1"
    assert VersionLedger.load(path).version(NAME, "1.0.0", "edit one") == "1.0.1"


# -- end to end: the synthesized template -------------------------------------------------------

# What app.py reads to synthesize (stacks/, the Lambda asset, the ASL, the components, the configuration).
PROJECT_FILES = ("app.py", "cdk.json", "requirements.txt", "requirements-dev.txt")
PROJECT_DIRS = ("stacks", "lambdas", "statemachine", "imagebuilder", "config")
VERSIONED = ("AWS::ImageBuilder::Component", "AWS::ImageBuilder::ImageRecipe")


def synth(project: Path, ledger: Path, outdir: Path) -> dict[str, Any]:
    """Run the copied app as `cdk synth` does (CDK_CONTEXT_JSON, CDK_OUTDIR), on the given ledger."""
    context = json.loads((project / "cdk.json").read_text())["context"]
    env = {k: v for k, v in os.environ.items() if k not in (READONLY_VARIABLE, "PYTHONPATH")}
    env |= {
        "CDK_OUTDIR": str(outdir),
        "CDK_CONTEXT_JSON": json.dumps(context),
        FILE_VARIABLE: str(ledger),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    done = subprocess.run(  # the repository's interpreter on the copied app
        [sys.executable, "app.py"], cwd=project, env=env, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr
    (template,) = outdir.glob("*.template.json")
    return dict(json.loads(template.read_text()))


def replaced_by(template: dict[str, Any]) -> dict[str, Any]:
    """Each versioned resource's properties as CloudFormation compares them: a GetAtt of a component's ARN
    stands for that component's name and version (its ARN changes with them), and Version is left out."""
    resources = template["Resources"]

    def value(node: Any) -> Any:
        if isinstance(node, dict):
            target = node.get("Fn::GetAtt")
            if (
                isinstance(target, list)
                and target[1] == "Arn"
                and resources.get(target[0], {}).get("Type") in VERSIONED
            ):
                properties = resources[target[0]]["Properties"]
                return f"{properties['Name']}/{properties['Version']}"
            return {k: value(v) for k, v in node.items()}
        if isinstance(node, list):
            return [value(v) for v in node]
        return node

    return {
        logical_id: value({k: v for k, v in resource["Properties"].items() if k != "Version"})
        for logical_id, resource in resources.items()
        if resource["Type"] in VERSIONED
    }


def name_version(template: dict[str, Any], logical_id: str) -> tuple[str, Version]:
    properties = template["Resources"][logical_id]["Properties"]
    return properties["Name"], Version.parse(properties["Version"])


def test_editing_component_files_gives_every_replaced_resource_a_new_higher_version(tmp_path: Path) -> None:
    # Given a copy of the project, synthesized once on a copy of the repository's ledger
    project = tmp_path / "project"
    for name in PROJECT_FILES:
        project.mkdir(exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, project / name)
    for name in PROJECT_DIRS:
        shutil.copytree(PROJECT_ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    ledger = tmp_path / "versions.json"
    shutil.copyfile(ledger_file(), ledger)
    before = synth(project, ledger, tmp_path / "before")

    # When two component documents change (a comment appended: new content, same path) and it is synthesized again
    for component in ("app-install.yml", "base-hardening.yml"):
        with (project / "imagebuilder" / "components" / component).open("a") as document:
            document.write("# edited: a new version of this component\n")
    after = synth(project, ledger, tmp_path / "after")

    # Then every resource CloudFormation replaces has a new name+version, higher than before; the others keep theirs
    old, new = replaced_by(before), replaced_by(after)
    assert old.keys() == new.keys()
    changed = {logical_id for logical_id in old if old[logical_id] != new[logical_id]}
    for logical_id in old:
        (old_name, old_version), (new_name, new_version) = (
            name_version(before, logical_id),
            name_version(after, logical_id),
        )
        if logical_id in changed:
            assert (new_name, new_version) != (old_name, old_version), logical_id
            assert new_version > old_version, logical_id
        else:
            assert (new_name, new_version) == (old_name, old_version), logical_id
    # the two edited components, and the base recipe, whose component changed version (issue #13)
    names = {before["Resources"][logical_id]["Properties"]["Name"] for logical_id in changed}
    assert {"web-app-app-install", "web-app-base-hardening", "web-app-base"} <= names
    assert "web-app-app-test" not in names
    # and the ledger now records what the second synth produced
    recorded_versions = {name: entry["version"] for name, entry in entries(ledger).items()}
    for logical_id in old:
        name, version = name_version(after, logical_id)
        assert recorded_versions[name] == str(version)


def test_the_committed_ledger_is_current_for_the_configured_application(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a writable copy of the committed ledger (the session's copy is read-only)
    from tests.infra.conftest import example_config, synthesize

    copy = tmp_path / "versions.json"
    committed = (PROJECT_ROOT / "imagebuilder" / "versions.json").read_text()
    copy.write_text(committed)
    monkeypatch.setenv(FILE_VARIABLE, str(copy))
    monkeypatch.delenv(READONLY_VARIABLE, raising=False)
    # When the configured application is synthesized from this commit
    synthesize(example_config(), tmp_path / "out")
    # Then nothing moved: a component or recipe change was committed with its new versions
    # (if this fails: run `make synth` and commit imagebuilder/versions.json with the change)
    assert copy.read_text() == committed
