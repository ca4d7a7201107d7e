"""Errors raised by the handlers: each class here is raised by some code path (tests/infra/test_error_names.py).

Each class name is the Step Functions error name the state machine catches or retries on
(Lambda reports the exception class name as `errorType`), so renaming one is a breaking
change to `statemachine/deploy.asl.json`. The names the state machine itself fails with (its Fail states:
DeploymentInProgress, ImageBuildFailed, RefreshFailed, ...) are not exceptions: they live in the ASL only.
"""


class DeployError(Exception):
    """Base class: every error a step raises on purpose."""


class InvalidInput(DeployError):
    """The execution input (or a step's payload) is malformed; nothing in AWS was touched."""


class RefreshInProgress(DeployError):
    """An instance refresh that is not ours is running on the group."""


class ImageNotReady(DeployError):
    """The image build has not finished yet (the state machine retries on this)."""


class LaunchTemplateNotFound(DeployError):
    """A configured launch template (or its default version) does not exist."""


class RollbackFailed(DeployError):
    """Restoring the previous launch template version or fleet did not succeed."""


class ImageDeregistrationFailed(DeployError):
    """DeregisterImage failed for one AMI with an unexpected AWS error (prune reports it and goes on)."""

    def __init__(self, image_id: str, code: str, message: str) -> None:
        super().__init__(f"{image_id}: {code}: {message}")
        self.image_id = image_id
        self.code = code
        self.message = message


class AutoScalingGroupNotFound(DeployError):
    """A configured Auto Scaling group does not exist."""


class InstanceRefreshNotFound(DeployError):
    """The instance refresh named in the payload is not (yet) visible on the group; retry briefly, then fail."""


class TargetGroupNotFound(DeployError):
    """A target group attached to the Auto Scaling group does not exist."""


class ImagePipelineNotFound(DeployError):
    """The configured Image Builder pipeline does not exist."""


class BaseImageMissing(DeployError):
    """No base image of this application exists yet (a fresh account): the state machine bakes the base first."""


class ImageBuildNotFound(DeployError):
    """The image build named in the payload does not exist in Image Builder."""


class SecretNotFound(DeployError):
    """A configured Secrets Manager secret does not exist, is scheduled for deletion or holds no string value."""


class StateMachineNotFound(DeployError):
    """The configured state machine does not exist (or is being deleted): nothing can be started."""


class BlueGreenConflict(DeployError):
    """The groups of a blue-green target are not in a state this deployment can act on safely: more than one
    live group, a green group name taken by another execution, or a green that is not attached where blue is.
    Nothing is guessed; a person decides."""


class GroupBusy(DeployError):
    """An Auto Scaling group cannot be changed right now (ScalingActivityInProgress, ResourceInUse,
    ResourceContention): the state machine retries the step with backoff."""


class Throttled(DeployError):
    """AWS throttled a call and botocore's retries were spent: the state machine retries the step with backoff.

    Raised for every client the adapters use (shared.aws.throttling), in place of the ClientError botocore would
    raise, so no per-call error handling can mistake a throttle for an outcome; the ClientError is its __cause__."""
