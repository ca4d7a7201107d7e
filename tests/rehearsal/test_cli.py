"""`python -m rehearsal`: a clear message and exit code 2 for what cannot be rehearsed, before anything runs; exit
code 1 when the outcome is not the scenario's `expect` or an invariant broke; a closing line saying what to do next;
a --json line that only ever gains keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import rehearsal.__main__ as cli
from rehearsal.__main__ import main
from rehearsal.result import Result


def test_an_unknown_scenario_is_named_with_the_known_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--scenario", "no-such-scenario"]) == 2
    err = capsys.readouterr().err
    assert "no scenario 'no-such-scenario'" in err
    assert "push-deploys-every-stage" in err


def test_a_missing_template_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--template", str(tmp_path / "nothing.template.json")]) == 2
    assert "no template" in capsys.readouterr().err


def test_an_invalid_configuration_fails_with_the_key_and_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a configuration that keeps one launch template version / When rehearsed / Then synth says why
    config = tmp_path / "bad.jsonc"
    target = '{"autoScalingGroupName": "g", "launchTemplateId": "lt-0123456789abcdef0"}'
    config.write_text(
        '{"application": "web-app", "retention": {"keepLaunchTemplateVersions": 1},'
        f' "stages": [{{"name": "s", "targets": [{target}]}}]}}'
    )
    assert main(["--config", str(config)]) == 2
    assert "retention.keepLaunchTemplateVersions must be >= 2" in capsys.readouterr().err


def result_of(scenario: str, status: str, error: str | None = None, expect: dict[str, Any] | None = None) -> Result:
    """A finished rehearsal of `scenario` that ended `status`, its invariants all held."""
    return Result(
        scenario=scenario,
        status=status,
        error=error,
        cause="why" if error else None,
        transitions=3,
        history_events=9,
        lambda_invocations=2,
        api_calls={},
        launch_templates={},
        images_kept=[],
        images_pruned=[],
        snapshots_deleted=[],
        lock="released",
        notifications=[],
        invariant_violations=[],
        simulated_seconds=3.0,
        wall_seconds=0.1,
        expect=expect if expect is not None else {"status": "SUCCEEDED"},
        invariants={"lock released": 0},
    )


@pytest.mark.parametrize(
    ("status", "error", "code"), [("SUCCEEDED", None, 0), ("FAILED", "RefreshFailed", 1), ("SUCCEEDED", "X", 1)]
)
def test_the_exit_status_is_non_zero_exactly_when_the_outcome_differs_from_the_scenarios_expect(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], status: str, error: str | None, code: int
) -> None:
    # Given a scenario that expects SUCCEEDED, and a run that ends `status` (`error`)
    monkeypatch.setattr(cli, "run", lambda scenario, target: result_of(scenario["name"], status, error))

    # When the CLI reports it / Then it exits 1 when the outcome is not the expected one, 0 when it is
    assert main(["--scenario", "deploy-one-stage"]) == code
    out = capsys.readouterr().out
    assert ("NOT AS EXPECTED" in out) is bool(code)


def test_the_closing_line_says_what_to_do_next(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "run", lambda scenario, target: result_of(scenario["name"], "SUCCEEDED"))
    main(["--scenario", "deploy-one-stage"])
    as_expected = capsys.readouterr().out.splitlines()[-1]

    monkeypatch.setattr(cli, "run", lambda scenario, target: result_of(scenario["name"], "FAILED", "RefreshFailed"))
    main(["--scenario", "deploy-one-stage"])
    unexpected = capsys.readouterr().out.splitlines()[-1]

    assert as_expected.startswith("Next: ")
    assert "make deploy" in as_expected
    assert "statemachine/scenarios/deploy-one-stage.json" in unexpected


def test_an_invariant_violation_fails_the_cli_even_when_the_status_is_the_expected_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broken = result_of("deploy-one-stage", "SUCCEEDED")
    broken.check("no task token", ["a notification carries a task token"])
    monkeypatch.setattr(cli, "run", lambda scenario, target: broken)

    assert main(["--scenario", "deploy-one-stage"]) == 1


def test_the_json_line_keeps_every_key_it_had_and_adds_the_invariants_checked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "run", lambda scenario, target: result_of(scenario["name"], "SUCCEEDED"))
    main(["--scenario", "deploy-one-stage", "--json"])
    document = json.loads(capsys.readouterr().out.splitlines()[-1])

    keys = {"scenario", "status", "error", "cause", "transitions", "historyEvents", "lambdaInvocations"}
    keys |= {"invocationsByStep", "apiCalls", "launchTemplates", "imagesKept", "imagesPruned", "snapshotsDeleted"}
    keys |= {"lock", "notifications", "invariantViolations", "simulatedSeconds", "wallSeconds", "builds", "bakes"}
    keys |= {"targets", "accessDenied", "bounds", "lockMargins", "limits"}
    assert keys <= set(document)
    assert document["invariantsChecked"] == {"lock released": 0}
