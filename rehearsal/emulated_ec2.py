"""EC2 calls moto lacks or simplifies: DeleteLaunchTemplateVersions (hidden from later describes),
DescribeImageReferences (computed from moto's instances and launch template versions), DeregisterImage with
DeleteAssociatedSnapshots (moto ignores the flag: the snapshots are deleted here, shared ones kept, those the
caller may not delete left with "missing-permissions"), and the
target health of green groups as the scenario says."""

from __future__ import annotations

from typing import Any

from rehearsal.emulation import ACCOUNT, REGION, EmulationState, _backends, _error, _ok, _role


class Ec2Emulation(EmulationState):
    def _delete_versions(self, params: dict[str, Any]) -> Any:
        """Amazon EC2 API Reference, "DeleteLaunchTemplateVersions": the default version cannot be deleted; each
        failure is a DeleteLaunchTemplateVersionsResponseErrorItem (the error codes themselves are not listed
        there: the ones below are what EC2 answers, checked in moto and public reports)."""
        ec2, _ = _backends()
        template_id = params["LaunchTemplateId"]
        template = ec2.launch_templates[template_id]
        gone = self.deleted_versions.setdefault(template_id, set())
        ok, failed = [], []
        for raw in params["Versions"]:
            number = int(raw)
            if number == template.default_version_number:
                failed.append(
                    {
                        "LaunchTemplateId": template_id,
                        "VersionNumber": number,
                        "ResponseError": {"Code": "launchTemplateVersionIsDefaultVersion", "Message": "default"},
                    }
                )
            elif number in gone or number > len(template.versions):
                failed.append(
                    {
                        "LaunchTemplateId": template_id,
                        "VersionNumber": number,
                        "ResponseError": {"Code": "launchTemplateVersionDoesNotExist", "Message": "gone"},
                    }
                )
            else:
                gone.add(number)
                ok.append({"LaunchTemplateId": template_id, "VersionNumber": number})
        if ok:
            self.log(f"{template_id}: deleted launch template versions {[v['VersionNumber'] for v in ok]}")
        return _ok(
            {"SuccessfullyDeletedLaunchTemplateVersions": ok, "UnsuccessfullyDeletedLaunchTemplateVersions": failed}
        )

    def _green_health(self, parsed: dict[str, Any], **_: Any) -> None:
        """`greenHealth: "unhealthy"`: a green group's instances fail the target group's health checks."""
        state = self.scenario.get("greenHealth")
        if not state:
            return
        _, asg = _backends()
        green = {
            i.instance.id
            for name, group in asg.autoscaling_groups.items()
            if _role(name) == "green"
            for i in group.instance_states
        }
        for item in parsed.get("TargetHealthDescriptions", []):
            if item["Target"]["Id"] in green:
                item["TargetHealth"] = {
                    "State": state,
                    "Reason": "Target.FailedHealthChecks",
                    "Description": "Health checks failed with these codes: [500]",
                }

    def _hide_deleted_versions(self, parsed: dict[str, Any], **_: Any) -> None:
        versions = parsed.get("LaunchTemplateVersions")
        if versions:
            parsed["LaunchTemplateVersions"] = [
                v for v in versions if v["VersionNumber"] not in self.deleted_versions.get(v["LaunchTemplateId"], set())
            ]

    def kept_versions(self) -> dict[str, list[tuple[int, str]]]:
        ec2, _ = _backends()
        return {
            tid: [(v.number, v.image_id) for v in t.versions if v.number not in self.deleted_versions.get(tid, set())]
            for tid, t in ec2.launch_templates.items()
        }

    def _image_references(self, params: dict[str, Any]) -> Any:
        ec2, _ = _backends()
        wanted = set(params["ImageIds"])
        refs = []
        for instance in ec2.all_instances():
            if instance.image_id in wanted and instance.state != "terminated":
                refs.append(
                    {
                        "ImageId": instance.image_id,
                        "ResourceType": "ec2:Instance",
                        "Arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{instance.id}",
                    }
                )
        for template_id, versions in self.kept_versions().items():
            for number, image_id in versions:
                if image_id in wanted:
                    refs.append(
                        {
                            "ImageId": image_id,
                            "ResourceType": "ec2:LaunchTemplate",
                            "Arn": f"arn:aws:ec2:{REGION}:{ACCOUNT}:launch-template/{template_id}:{number}",
                        }
                    )
        return _ok({"ImageReferences": refs})

    def _ebs_snapshot_users(self, ec2: Any) -> dict[str, int]:
        """How many registered AMIs have each snapshot as their EBS snapshot; kept up to date by each
        deregistration here, rebuilt whenever the set of AMIs changed otherwise (a bake, a scenario's world):
        a 5,000-AMI backlog would otherwise cost a scan of every AMI per deregistration."""
        key = frozenset(ec2.amis)
        cached = getattr(self, "_users_cache", None)
        if cached is None or cached[0] != key:
            users: dict[str, int] = {}
            for other in ec2.amis.values():
                snapshot = getattr(other, "ebs_snapshot", None)
                if snapshot is not None:
                    users[snapshot.id] = users.get(snapshot.id, 0) + 1
            cached = (key, users)
            self._users_cache = cached
        return cached[1]

    def _partial_denials(self) -> list[str]:
        """What the IAM contract denied of the current call's partial checks (none without a contract)."""
        denials = getattr(getattr(getattr(self, "authorize", None), "__self__", None), "partial_denials", None)
        return list(denials()) if callable(denials) else []

    def _deregister_image(self, params: dict[str, Any]) -> Any:
        ec2, _ = _backends()
        image_id = params["ImageId"]
        ami = ec2.amis.get(image_id)
        if ami is None:
            return _error("InvalidAMIID.NotFound", f"The image id '[{image_id}]' does not exist")
        snapshot_ids = [
            m["Ebs"]["SnapshotId"]
            for m in getattr(ami, "block_device_mappings", [])
            if m.get("Ebs", {}).get("SnapshotId")
        ]
        if not snapshot_ids and getattr(ami, "ebs_snapshot", None):
            snapshot_ids = [ami.ebs_snapshot.id]
        users = self._ebs_snapshot_users(ec2)  # counted with this AMI still registered
        ec2.deregister_image(image_id)
        own = getattr(ami, "ebs_snapshot", None)
        if own is not None:
            users[own.id] -= 1
        self._users_cache = (frozenset(ec2.amis), users)
        results = []
        # The caller's role may not delete these (the IAM contract's partial DeleteSnapshot checks of this call).
        denied = {arn.rsplit("/", 1)[-1] for arn in self._partial_denials()}
        if params.get("DeleteAssociatedSnapshots"):
            for snapshot_id in snapshot_ids:
                if users.get(snapshot_id):
                    # Amazon EC2 API Reference, "DeleteSnapshotReturnCode": skipped = associated with other AMIs
                    results.append({"SnapshotId": snapshot_id, "ReturnCode": "skipped"})
                    continue
                if snapshot_id in denied:
                    # Same page: missing-permissions = "the role lacks DeleteSnapshot permissions"; it stays.
                    results.append({"SnapshotId": snapshot_id, "ReturnCode": "missing-permissions"})
                    continue
                ec2.delete_snapshot(snapshot_id)
                self.snapshots_deleted.append(snapshot_id)
                results.append({"SnapshotId": snapshot_id, "ReturnCode": "success"})
        self.log(
            f"deregistered {image_id}"
            + (
                f", deleted snapshot(s) {[r['SnapshotId'] for r in results if r['ReturnCode'] == 'success']}"
                if results
                else ""
            )
        )
        return _ok({"Return": True, "DeleteSnapshotResults": results})
