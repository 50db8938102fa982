"""The public name `../shared/reference/official_parity/parity.py` imports the COCO layout by; the layouts
live in `sgpose.core.keypoints` (the package imports them from there, never from here)."""

from sgpose.core.keypoints import COCO, CROWDPOSE, LAYOUTS, KeypointLayout, get_layout  # noqa: F401
