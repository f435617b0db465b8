"""Compatibility names: the image-file API as it was imported before it was split by job.

`memnet.imaging.files` was one module; its names now live in picture.py (the `Picture` type and
arrays), reading.py (files and Pillow images in) and writing.py (files and Pillow images out),
and formats.py (the suffixes). Code that still imports them from here keeps working; new code,
and any test that monkeypatches a module constant, uses those modules themselves.
"""

from memnet.imaging.formats import FORMAT_BY_SUFFIX
from memnet.imaging.picture import (
    MAX_PIXELS,
    PIXEL_DTYPE,
    Picture,
    picture_from_array,
    picture_to_array,
)
from memnet.imaging.reading import picture_from_pil, read_image, read_luminance
from memnet.imaging.writing import picture_to_pil, write_image

__all__ = [
    "FORMAT_BY_SUFFIX",
    "MAX_PIXELS",
    "PIXEL_DTYPE",
    "Picture",
    "picture_from_array",
    "picture_from_pil",
    "picture_to_array",
    "picture_to_pil",
    "read_image",
    "read_luminance",
    "write_image",
]
