"""shared.statuses: the refresh statuses the functions, the rehearsal and the definition agree on."""

from __future__ import annotations

import boto3

from shared.statuses import ACTIVE_REFRESH_STATUSES, FINAL_REFRESH_STATUSES


def test_every_instance_refresh_status_of_the_model_is_either_active_or_final() -> None:
    # Given the InstanceRefreshStatus enum of botocore's Auto Scaling model
    model = boto3.session.Session(region_name="eu-west-1").client("autoscaling").meta.service_model
    enum = set(model.shape_for("InstanceRefreshStatus").enum)
    # Then the active and the final statuses split it: none is both, none is missing, none is made up
    assert not ACTIVE_REFRESH_STATUSES & FINAL_REFRESH_STATUSES
    assert enum == ACTIVE_REFRESH_STATUSES | FINAL_REFRESH_STATUSES
