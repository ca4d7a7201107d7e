"""SNS: publish one notification to the workflow's topic, a message per protocol (shared.notifications renders it)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shared.aws.clients import adapter_client

MAX_SUBJECT_LENGTH = 100  # SNS Publish: Subject is at most 100 characters


class Notifications:
    def __init__(self, topic_arn: str, sns: Any = None) -> None:
        self._topic = topic_arn
        self._sns = adapter_client(sns, "sns")

    def publish(self, subject: str, messages: Mapping[str, str], attributes: Mapping[str, str]) -> str:
        """MessageStructure=json: `messages` holds "default" and any per-protocol message ("email"); each attribute
        is a String message attribute, which subscription filter policies match
        (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html)."""
        if "default" not in messages:
            raise ValueError('MessageStructure=json needs a "default" message')
        response = self._sns.publish(
            TopicArn=self._topic,
            Subject=subject[:MAX_SUBJECT_LENGTH],
            Message=json.dumps(dict(messages)),
            MessageStructure="json",
            MessageAttributes={k: {"DataType": "String", "StringValue": v} for k, v in attributes.items()},
        )
        return str(response["MessageId"])
