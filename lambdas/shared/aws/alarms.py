"""CloudWatch alarms: the state of named alarms (metric and composite), for watching a green group.

DescribeAlarms takes at most 100 names per call and, unless told otherwise, lists metric alarms only:
names are sent in batches of 100 with both alarm types, every page read.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.aws.clients import adapter_client

_NAMES_PER_CALL = 100


class Alarms:
    def __init__(self, cloudwatch: Any = None) -> None:
        self._cloudwatch = adapter_client(cloudwatch, "cloudwatch")

    def states(self, names: Sequence[str]) -> dict[str, str]:
        """StateValue (OK | ALARM | INSUFFICIENT_DATA) of each named alarm that exists; missing ones are absent."""
        found: dict[str, str] = {}
        unique = list(dict.fromkeys(names))
        paginator = self._cloudwatch.get_paginator("describe_alarms")
        for start in range(0, len(unique), _NAMES_PER_CALL):
            pages = paginator.paginate(
                AlarmNames=unique[start : start + _NAMES_PER_CALL], AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
            for page in pages:
                for alarm in [*page.get("MetricAlarms", []), *page.get("CompositeAlarms", [])]:
                    found[alarm["AlarmName"]] = alarm.get("StateValue", "")
        return found

    def in_alarm(self, names: Sequence[str]) -> list[str]:
        """The named alarms in state ALARM, in the given order."""
        states = self.states(names)
        return [name for name in dict.fromkeys(names) if states.get(name) == "ALARM"]
