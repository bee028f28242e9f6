"""Reading and writing raw frames, label masks and files atomically."""

from temshift.io.atomic import atomic_path, atomic_write_text
from temshift.io.frames import (
    FRAME_READERS,
    Frame,
    FrameFormat,
    FrameReadWarning,
    PixelScaleMismatchWarning,
    RawFrame,
    frame_suffixes,
    read_frame,
    register_frame_reader,
    write_tiff_frame,
)
from temshift.io.labels import LabelReadWarning, label_png_bytes, read_label, write_label_png

__all__ = [
    "FRAME_READERS",
    "Frame",
    "FrameFormat",
    "FrameReadWarning",
    "LabelReadWarning",
    "PixelScaleMismatchWarning",
    "RawFrame",
    "atomic_path",
    "atomic_write_text",
    "frame_suffixes",
    "label_png_bytes",
    "read_frame",
    "read_label",
    "register_frame_reader",
    "write_label_png",
    "write_tiff_frame",
]
