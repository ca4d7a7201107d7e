"""`python -m rehearsal`: a clear message and exit code 2 for what cannot be rehearsed, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from rehearsal.__main__ import main


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
