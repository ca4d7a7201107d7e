"""The one reading of a launch template version spec that publish, prune and the blue-green steps share."""

from __future__ import annotations

import pytest

from shared.versions import version_number


@pytest.mark.parametrize(
    ("spec", "expected"),
    [(None, 3), ("", 3), ("$Default", 3), ("$Latest", 5), ("4", 4), ("$Oldest", None)],
)
def test_a_version_spec_names_the_number_auto_scaling_launches(spec: str | None, expected: int | None) -> None:
    # Given versions 1..5 with 3 the default / When a spec is read / Then it is the number Auto Scaling uses
    assert version_number(spec, range(1, 6), default=3) == expected


def test_latest_of_a_template_without_versions_is_none() -> None:
    assert version_number("$Latest", [], default=None) is None
