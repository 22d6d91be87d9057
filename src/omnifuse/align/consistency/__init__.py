"""Cross-modal consistency: a calibrated probability that a text, an image and a recording
describe the same thing, from an aligned model's cosine similarities.

- :mod:`~omnifuse.align.consistency.pairs`: matching and mismatching pairs from a world build —
  a scene's own caption, captions with one colour, shape, count or relation changed (hard
  negatives), another scene's caption — written and spoken;
- :mod:`~omnifuse.align.consistency.calibration`: Platt scaling, the threshold, AUROC and ECE;
- :mod:`~omnifuse.align.consistency.calibrate`: fit on the validation split — every modality
  pair, and ``premise``: short statements a question presupposes ("a red circle"), for the
  assistant — write ``consistency.json`` beside the model, score another split;
- :mod:`~omnifuse.align.consistency.checker`: :class:`ConsistencyChecker` for raw inputs;
- :mod:`~omnifuse.align.consistency.negatives` and :mod:`~omnifuse.align.consistency.train`:
  training with each scene's edits (captions, and the edited scenes drawn) in its batch, so one
  changed word moves the similarity.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from omnifuse.lazy import lazy_exports

if TYPE_CHECKING:
    from omnifuse.align.consistency.calibrate import calibrate, score_split
    from omnifuse.align.consistency.calibration import PairCalibration, Platt, fit_platt
    from omnifuse.align.consistency.checker import (
        CALIBRATION_FILE,
        Calibration,
        ConsistencyChecker,
        ConsistencyResult,
        NotCalibratedError,
        PairVerdict,
        read_calibration,
    )

_HOMES = {
    "calibrate": "calibrate",
    "score_split": "calibrate",
    "PairCalibration": "calibration",
    "Platt": "calibration",
    "fit_platt": "calibration",
    "CALIBRATION_FILE": "checker",
    "Calibration": "checker",
    "ConsistencyChecker": "checker",
    "ConsistencyResult": "checker",
    "NotCalibratedError": "checker",
    "PairVerdict": "checker",
    "read_calibration": "checker",
}

__all__ = [
    "CALIBRATION_FILE",
    "Calibration",
    "ConsistencyChecker",
    "ConsistencyResult",
    "NotCalibratedError",
    "PairCalibration",
    "PairVerdict",
    "Platt",
    "calibrate",
    "fit_platt",
    "read_calibration",
    "score_split",
]

__getattr__ = lazy_exports(__name__, _HOMES, globals())
