"""SNS: publish one notification to the workflow's topic."""

from __future__ import annotations

import json
from typing import Any

from shared.aws.clients import adapter_client

MAX_SUBJECT_LENGTH = 100  # SNS Publish: Subject is at most 100 characters


class Notifications:
    def __init__(self, topic_arn: str, sns: Any = None) -> None:
        self._topic = topic_arn
        self._sns = adapter_client(sns, "sns")

    def publish(self, subject: str, message: dict[str, Any]) -> str:
        response = self._sns.publish(
            TopicArn=self._topic, Subject=subject[:MAX_SUBJECT_LENGTH], Message=json.dumps(message, default=str)
        )
        return str(response["MessageId"])
