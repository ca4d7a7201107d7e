"""Logger, Tracer and Metrics, created once per process and shared by every handler.

Every handler uses the same decorator order::

    @logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH)
    @metrics.log_metrics
    @tracer.capture_lambda_handler
    def lambda_handler(event, context): ...

Service name, metrics namespace and log level come from the standard Powertools
environment variables (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE,
POWERTOOLS_LOG_LEVEL), which the stack sets on every function.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

# Every task payload carries the Step Functions execution id; it is the correlation id of every log line.
CORRELATION_ID_PATH = "executionId"

logger = Logger()
tracer = Tracer()
metrics = Metrics()
