"""Using trained models on new micrographs.

Whole-frame prediction with blended tiles and pixel-scale matching (`pipeline`, `tiling`,
`scale`), dataset-shift warnings (`shift`, `stats`), particle statistics (`particles`); downloads from the
published raw-data repository are `temshift.catalog.fetch`. Importing this package does not
import torch; the heavy modules import it on use.
"""

from temshift.predict.tiling import blend_window, predict_tiled

__all__ = ["blend_window", "predict_tiled"]
