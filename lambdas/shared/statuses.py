"""Statuses after which an image build or an instance refresh changes no more.

From botocore's models (imagebuilder ImageStatus, autoscaling InstanceRefreshStatus). A wait ends on
these; anything else is still under way. The stack's EventBridge rule for image builds filters on
the same list (stacks/deploy_workflow.py imports it), so the relay and the rule cannot disagree.
"""

FINAL_REFRESH_STATUSES = frozenset({"Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"})
FINAL_IMAGE_STATUSES = frozenset({"AVAILABLE", "FAILED", "CANCELLED", "DEPRECATED", "DELETED", "DISABLED"})
