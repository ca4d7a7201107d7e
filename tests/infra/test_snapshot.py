"""A snapshot of the synthesized template: any change to what `cdk deploy` would create shows up in review.

Update after an intended change with: make snapshot-update (pytest --snapshot-update tests/infra/test_snapshot.py).
"""

from __future__ import annotations

import json
import re
from typing import Any

from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension

from tests.infra.conftest import Synthesized

ASSET_HASH = re.compile(r"[0-9a-f]{64}")


def normalized(template: dict[str, Any]) -> Any:
    """Asset hashes change with every edit of lambdas/ or the ASL file: replace them, keep everything else."""
    return json.loads(ASSET_HASH.sub("<asset-hash>", json.dumps(template, sort_keys=True)))


def test_synthesized_template_matches_the_reviewed_snapshot(
    synthesized: Synthesized, snapshot: SnapshotAssertion
) -> None:
    assert normalized(synthesized.json) == snapshot(extension_class=JSONSnapshotExtension)
