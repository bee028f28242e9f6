"""Reading and writing raw frames, label masks and files atomically."""

from temshift.io.atomic import atomic_path, atomic_write_text
from temshift.io.frames import (
    FRAME_SUFFIXES,
    Frame,
    FrameReadWarning,
    PixelScaleMismatchWarning,
    read_frame,
    write_tiff_frame,
)
from temshift.io.labels import LabelReadWarning, read_label, write_label_png

__all__ = [
    "FRAME_SUFFIXES",
    "LabelReadWarning",
    "Frame",
    "FrameReadWarning",
    "PixelScaleMismatchWarning",
    "atomic_path",
    "atomic_write_text",
    "read_frame",
    "read_label",
    "write_label_png",
    "write_tiff_frame",
]
