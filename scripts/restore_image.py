#!/usr/bin/env python3
"""Undo a prune: restore an AMI, and its EBS snapshots, from the Recycle Bin.

    python -m scripts.restore_image ami-0abc1234def567890 [--snapshot snap-...] [--region eu-west-1] [--dry-run]

The prune deregisters an AMI with its snapshots; the Recycle Bin rules of the stack (stacks/recycle_bin.py) keep
both for `retention.recycleBinDays` days. Restoring goes through EC2, not the `rbin` API:
ListSnapshotsInRecycleBin / RestoreSnapshotFromRecycleBin and ListImagesInRecycleBin / RestoreImageFromRecycleBin
(Amazon EBS User Guide, "Recover deleted AMIs from the Recycle Bin",
https://docs.aws.amazon.com/ebs/latest/userguide/recycle-bin-working-with-amis.html, and "Recover deleted
snapshots", https://docs.aws.amazon.com/ebs/latest/userguide/recycle-bin-working-with-snaps.html). The caller
needs ec2:ListImagesInRecycleBin, ec2:RestoreImageFromRecycleBin, ec2:ListSnapshotsInRecycleBin,
ec2:RestoreSnapshotFromRecycleBin and ec2:DescribeImages.

An AMI whose snapshots are still in the bin cannot launch anything, so the snapshots go first: those named with
--snapshot, and those in the bin whose description names the AMI (EC2 describes the snapshots CreateImage and
CopyImage make with the AMI id; not a documented contract, hence --snapshot). Then the AMI; then any snapshot its
block device mappings name that is still in the bin (the docs found do not say whether the order matters).

The region is --region, else the one of the stack's StateMachineArn output (in the AWS CLI's default region),
else the default region of the AWS configuration; the stack defaults to `<application>-ami-pipeline`.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any

from scripts.start_deployment import deploy_config, region_of, stack_outputs  # the configuration `cdk deploy` used

_AMI_ID = re.compile(r"^ami-[0-9a-f]{8,17}$")
_SNAPSHOT_ID = re.compile(r"^snap-[0-9a-f]{8,17}$")


class RestoreError(Exception):
    """A restore that cannot go on, with what to do about it."""


def _page(call: Any, key: str, **request: Any) -> list[dict[str, Any]]:
    """Every item of a List*InRecycleBin call (NextToken by hand: botocore may have no paginator for them)."""
    items: list[dict[str, Any]] = []
    while True:
        response = call(**request)
        items.extend(response.get(key, []))
        token = response.get("NextToken")
        if not token:
            return items
        request["NextToken"] = token


def _error(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    error = response.get("Error", {})
    return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', str(exc))}"


def restore(ec2: Any, image_id: str, snapshot_ids: list[str], dry_run: bool = False) -> list[str]:
    """Restore the AMI and its snapshots from the Recycle Bin; returns what was done, one line each."""
    from botocore.exceptions import ClientError

    done: list[str] = []
    if not any(
        i.get("ImageId") == image_id for i in _page(ec2.list_images_in_recycle_bin, "Images", ImageIds=[image_id])
    ):
        raise RestoreError(
            f"{image_id} is not in the Recycle Bin of this region: it was never pruned here, was restored already, "
            "its retention (retention.recycleBinDays) has passed, or no Recycle Bin rule kept it"
        )
    binned = {s["SnapshotId"]: s for s in _page(ec2.list_snapshots_in_recycle_bin, "Snapshots")}
    wanted = list(
        dict.fromkeys([*snapshot_ids, *(i for i, s in binned.items() if image_id in s.get("Description", ""))])
    )

    def restore_snapshot(snapshot_id: str, why: str) -> None:
        if snapshot_id not in binned:
            done.append(f"snapshot {snapshot_id}: not in the Recycle Bin ({why}); left as it is")
            return
        if dry_run:
            done.append(f"would restore snapshot {snapshot_id} ({why})")
            return
        try:
            ec2.restore_snapshot_from_recycle_bin(SnapshotId=snapshot_id)
        except ClientError as exc:
            raise RestoreError(f"could not restore snapshot {snapshot_id}: {_error(exc)}") from exc
        binned.pop(snapshot_id)
        done.append(f"restored snapshot {snapshot_id} ({why})")

    for snapshot_id in wanted:
        restore_snapshot(snapshot_id, "named" if snapshot_id in snapshot_ids else f"its description names {image_id}")
    if dry_run:
        done.append(f"would restore image {image_id}")
        return done
    try:
        ec2.restore_image_from_recycle_bin(ImageId=image_id)
    except ClientError as exc:
        raise RestoreError(f"could not restore {image_id}: {_error(exc)}") from exc
    done.append(f"restored image {image_id}")
    images = ec2.describe_images(ImageIds=[image_id], IncludeDisabled=True).get("Images", [])
    mapped = [
        m["Ebs"]["SnapshotId"]
        for image in images
        for m in image.get("BlockDeviceMappings", [])
        if m.get("Ebs", {}).get("SnapshotId")
    ]
    for snapshot_id in mapped:
        if snapshot_id in binned:
            restore_snapshot(snapshot_id, f"a block device of {image_id}")
    return done


def stack_region(stack: str) -> str | None:
    """The region of the stack's StateMachineArn output, looked up in the default region (None if not found)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        arn = stack_outputs(boto3.client("cloudformation"), stack).get("StateMachineArn")
    except (BotoCoreError, ClientError):
        return None
    return region_of(arn) if arn else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ami", help="the pruned AMI, ami-...")
    parser.add_argument("--snapshot", action="append", default=[], help="a snapshot of the AMI (repeatable)")
    parser.add_argument("--region", help="the region the AMI was pruned in (default: the stack's)")
    parser.add_argument("--stack", help="the pipeline stack (default: <application>-ami-pipeline from cdk.json)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be restored; restore nothing")
    args = parser.parse_args(argv)
    if not _AMI_ID.fullmatch(args.ami):
        print(f"AMI: must be an AMI id like ami-0123456789abcdef0, got {args.ami!r}", file=sys.stderr)
        return 2
    if bad := [s for s in args.snapshot if not _SNAPSHOT_ID.fullmatch(s)]:
        print(f"--snapshot: must be snapshot ids like snap-0123456789abcdef0, got {bad}", file=sys.stderr)
        return 2

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    region = args.region
    try:
        if not region:
            stack = args.stack or f"{deploy_config().application}-ami-pipeline"
            region = stack_region(stack) or boto3.session.Session().region_name
        if not region:
            print("no region: pass --region, or set AWS_REGION / a default region for the AWS CLI", file=sys.stderr)
            return 2
        ec2 = boto3.client("ec2", region_name=region)
        for line in restore(ec2, args.ami, args.snapshot, dry_run=args.dry_run):
            print(line)
    except NoCredentialsError:
        print("no AWS credentials: configure a profile or AWS_ACCESS_KEY_ID (see `aws configure`)", file=sys.stderr)
        return 2
    except NoRegionError:
        print("no region: pass --region, or set AWS_REGION / a default region for the AWS CLI", file=sys.stderr)
        return 2
    except RestoreError as exc:
        print(f"{args.ami} in {region}: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"{args.ami} in {region}: {_error(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
