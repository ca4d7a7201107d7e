"""Tag keys this project writes on AMIs, snapshots, launch template versions and (blue-green) Auto Scaling groups.

`stacks/image_builder.py` writes the same keys at image distribution time; tests/infra pins that
both stay equal.
"""

APPLICATION = "immutable-ami:application"
PIPELINE = "immutable-ami:pipeline"  # "base" or "app"
COMMIT = "immutable-ami:commit"
BRANCH = "immutable-ami:branch"
TRIGGER = "immutable-ami:trigger"
EXECUTION = "immutable-ami:execution"
BASE_IMAGE = "immutable-ami:base-image"
IMAGE_BUILD = "immutable-ami:image-build"  # the Image Builder build version ARN the AMI came from
REPOSITORY = "immutable-ami:repository"  # the source repository the app image was baked from
BUILD_TIME = "immutable-ami:build-time"  # when Image Builder created the image (its dateCreated)

# Blue-green: on the Auto Scaling groups of a target (with APPLICATION and EXECUTION).
TARGET = "immutable-ami:target"  # the configured group name: the target this group serves
# "green" (being brought up), "live" (in the target groups) or "retained" (kept for rollback)
ROLE = "immutable-ami:role"
ROLE_SINCE = "immutable-ami:role-since"  # ISO 8601 UTC time the role was set: retention keeps the newest retained
IMAGE = "immutable-ami:image"  # the AMI the group's launch template version uses
CAPACITY = "immutable-ami:capacity"  # "min/max/desired" before it was scaled to zero, to scale a rollback back
RETAINED_SINCE = "immutable-ami:retained-since"  # ROLE_SINCE of a retained group brought back: its place in retention
