"""Tag keys this project writes on AMIs, snapshots and launch template versions.

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
