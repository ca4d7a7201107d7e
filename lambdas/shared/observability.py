"""Logger and Metrics, created once per process and shared by every handler.

Every handler gets the same decorator order, the logger's context (correlation id at CORRELATION_ID_PATH) around
metrics, from shared.handler (`step_handler`, or `observed` for a handler that parses its own event).

Service name, metrics namespace and log level come from the standard Powertools environment
variables (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL), which the
stack sets on every function.

No Powertools Tracer: importing the X-Ray SDK costs about 230 ms of every cold start (measured with
`python -m benchmarks`), more than all the rest of a handler. The functions still run with Lambda's
active tracing (each invocation is a segment in X-Ray, linked to the state machine's trace); what is
lost is a subsegment per boto3 call, which the JSON logs (one line per AWS change) cover.
"""

from aws_lambda_powertools import Logger, Metrics

# Every task payload carries the Step Functions execution id; it is the correlation id of every log line.
CORRELATION_ID_PATH = "executionId"

logger = Logger()
metrics = Metrics()
