"""scripts/restore_image.py: undo a prune from the Recycle Bin, against the botocore Stubber (moto has no Recycle
Bin APIs; the Stubber checks each request against EC2's service model)."""

from __future__ import annotations

import importlib
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

AMI = "ami-0123456789abcdef0"
SNAPSHOT = "snap-0aaaaaaaaaaaaaaa1"
OTHER_SNAPSHOT = "snap-0bbbbbbbbbbbbbbb2"
REGION = "eu-west-1"


restore_image = importlib.import_module("scripts.restore_image")  # as tests/unit/test_approval_cli.py does


@pytest.fixture
def ec2() -> Any:
    return boto3.client("ec2", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def in_bin(stub: Stubber, snapshots: list[dict[str, str]]) -> None:
    stub.add_response(
        "list_images_in_recycle_bin", {"Images": [{"ImageId": AMI, "Name": "web-app-app"}]}, {"ImageIds": [AMI]}
    )
    stub.add_response("list_snapshots_in_recycle_bin", {"Snapshots": snapshots}, {})


def test_restores_the_amis_snapshots_first_then_the_ami_then_any_snapshot_it_maps_still_in_the_bin(ec2: Any) -> None:
    stub = Stubber(ec2)
    # Given the AMI and two of its snapshots in the bin, one found by its description, one only by the AMI's mapping
    in_bin(
        stub,
        [
            {"SnapshotId": SNAPSHOT, "Description": f"Created by CreateImage(i-0123) for {AMI}"},
            {"SnapshotId": OTHER_SNAPSHOT, "Description": "data volume"},
        ],
    )
    stub.add_response("restore_snapshot_from_recycle_bin", {"SnapshotId": SNAPSHOT}, {"SnapshotId": SNAPSHOT})
    stub.add_response("restore_image_from_recycle_bin", {"Return": True}, {"ImageId": AMI})
    mappings = [
        {"DeviceName": d, "Ebs": {"SnapshotId": s}} for d, s in (("/dev/xvda", SNAPSHOT), ("/dev/xvdb", OTHER_SNAPSHOT))
    ]
    stub.add_response(
        "describe_images",
        {"Images": [{"ImageId": AMI, "BlockDeviceMappings": mappings}]},
        {"ImageIds": [AMI], "IncludeDisabled": True},
    )
    stub.add_response(
        "restore_snapshot_from_recycle_bin", {"SnapshotId": OTHER_SNAPSHOT}, {"SnapshotId": OTHER_SNAPSHOT}
    )
    # When restoring
    with stub:
        done = restore_image.restore(ec2, AMI, [])
        stub.assert_no_pending_responses()
    # Then it says what it did, in the order it did it
    assert done == [
        f"restored snapshot {SNAPSHOT} (its description names {AMI})",
        f"restored image {AMI}",
        f"restored snapshot {OTHER_SNAPSHOT} (a block device of {AMI})",
    ]


def test_a_named_snapshot_is_restored_before_the_ami(ec2: Any) -> None:
    stub = Stubber(ec2)
    in_bin(stub, [{"SnapshotId": OTHER_SNAPSHOT, "Description": ""}])
    stub.add_response(
        "restore_snapshot_from_recycle_bin", {"SnapshotId": OTHER_SNAPSHOT}, {"SnapshotId": OTHER_SNAPSHOT}
    )
    stub.add_response("restore_image_from_recycle_bin", {"Return": True}, {"ImageId": AMI})
    stub.add_response("describe_images", {"Images": []}, {"ImageIds": [AMI], "IncludeDisabled": True})
    with stub:
        done = restore_image.restore(ec2, AMI, [OTHER_SNAPSHOT])
        stub.assert_no_pending_responses()
    assert done == [f"restored snapshot {OTHER_SNAPSHOT} (named)", f"restored image {AMI}"]


def test_dry_run_says_what_it_would_restore_and_restores_nothing(ec2: Any) -> None:
    stub = Stubber(ec2)
    in_bin(stub, [{"SnapshotId": SNAPSHOT, "Description": f"Copied for DestinationAmi {AMI} from SourceAmi ami-1"}])
    with stub:
        done = restore_image.restore(ec2, AMI, [], dry_run=True)
        stub.assert_no_pending_responses()
    assert done == [f"would restore snapshot {SNAPSHOT} (its description names {AMI})", f"would restore image {AMI}"]


def test_an_ami_not_in_the_bin_is_refused_with_why_it_may_not_be_there(ec2: Any) -> None:
    stub = Stubber(ec2)
    stub.add_response("list_images_in_recycle_bin", {"Images": []}, {"ImageIds": [AMI]})
    with stub, pytest.raises(restore_image.RestoreError, match="not in the Recycle Bin of this region"):
        restore_image.restore(ec2, AMI, [])


def test_a_refused_restore_names_the_aws_error(ec2: Any) -> None:
    stub = Stubber(ec2)
    in_bin(stub, [])
    stub.add_client_error("restore_image_from_recycle_bin", "UnauthorizedOperation", "not authorized")
    with stub, pytest.raises(restore_image.RestoreError, match=f"could not restore {AMI}: UnauthorizedOperation"):
        restore_image.restore(ec2, AMI, [])


def test_a_malformed_ami_id_is_refused_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert restore_image.main(["ami-nope"]) == 2
    assert "AMI: must be an AMI id" in capsys.readouterr().err


def test_without_credentials_it_says_so(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # boto3's default session caches the credentials an earlier test in this worker resolved: start afresh
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    assert restore_image.main([AMI, "--region", REGION]) == 2
    assert "no AWS credentials" in capsys.readouterr().err


def test_without_a_region_it_says_how_to_give_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/config")
    monkeypatch.setattr(restore_image, "stack_region", lambda stack: None)  # the stack is not found
    assert restore_image.main([AMI]) == 2
    assert "no region: pass --region" in capsys.readouterr().err
