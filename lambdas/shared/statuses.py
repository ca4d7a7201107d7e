"""Statuses of an image build or an instance refresh: the final ones, after which nothing changes any more, and
the active ones of an instance refresh.

From botocore's models (imagebuilder ImageStatus, autoscaling InstanceRefreshStatus). A wait ends on the final
ones; anything else is still under way. The stack's EventBridge rule for image builds filters on the same list
(stacks/deploy_workflow.py imports it), so the relay and the rule cannot disagree.
"""

FINAL_REFRESH_STATUSES = frozenset({"Successful", "Failed", "Cancelled", "RollbackSuccessful", "RollbackFailed"})
# The statuses of a refresh that is not over: AWS refuses StartInstanceRefresh meanwhile (InstanceRefreshInProgress),
# and the refresh may still launch instances from its desired configuration (what prune must not delete). Every
# InstanceRefreshStatus is either final or active.
ACTIVE_REFRESH_STATUSES = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
FINAL_IMAGE_STATUSES = frozenset({"AVAILABLE", "FAILED", "CANCELLED", "DEPRECATED", "DELETED", "DISABLED"})
