"""The rehearsal's one seam into moto's interpreter must fail loudly when moto changes under it."""

from __future__ import annotations

import importlib

import moto
import pytest

from rehearsal import moto_seam


def test_seam_matches_the_pinned_moto() -> None:
    assert moto.__version__ == moto_seam.PINNED_MOTO_VERSION
    moto_seam.check()  # raises SeamBrokenError if any patched name moved


@pytest.mark.parametrize(("module", "attribute"), moto_seam.PATCHED)
def test_seam_refuses_to_run_when_a_patched_name_is_gone(
    module: str, attribute: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(importlib.import_module(module), attribute)

    with pytest.raises(moto_seam.SeamBrokenError, match=attribute):
        moto_seam.check()


def test_seam_refuses_another_moto_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto, "__version__", "6.0.0")

    with pytest.raises(moto_seam.SeamBrokenError, match=r"6\.0\.0"):
        moto_seam.check()


def test_seam_restores_moto_after_the_rehearsal() -> None:
    lambda_utils = importlib.import_module(moto_seam._LAMBDA_UTILS)
    original = lambda_utils._invoke_lambda_function

    with moto_seam.install(lambda name, payload: {"StatusCode": 200, "Payload": {}}, lambda seconds: None):
        assert lambda_utils._invoke_lambda_function is not original

    assert lambda_utils._invoke_lambda_function is original
