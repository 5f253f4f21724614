"""What the gate does with a scored clip: keep it, reject it, and which boxes it drops or marks.

Levels (``--gate-level``):

- ``clip``: a clip whose recall is below ``min_recall`` is rejected; boxes are left as they are;
- ``box``: no clip is rejected; each scored box whose matched IoU is below ``min_box_iou`` is
  dropped from the written annotations (``drop``) or kept as an ignore region (``ignore``:
  ``iscrowd=1`` in COCO-VID, conf 0 in MOT), so a tracker never learns a box with nothing in it;
- ``both``: clips are rejected as with ``clip``, and the kept ones have their boxes treated as
  with ``box``.

For regeneration (``synth --gate --retries K``), :func:`best_attempt` picks the attempt to keep
and :func:`attempt_seed` gives each attempt its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import UsageError
from ..seeds import keyed_digest
from .score import ClipScore

__all__ = ["BOX_ACTIONS", "GATE_LEVELS", "GateDecision", "GatePolicy", "attempt_seed", "best_attempt", "decide"]

GATE_LEVELS = ("clip", "box", "both")
BOX_ACTIONS = ("drop", "ignore")
KEPT, REJECTED = "kept", "rejected"
_MASK63 = (1 << 63) - 1


def _fraction(value: Any, flag: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(float(value)) or not 0 <= float(value) <= 1:
        raise UsageError(f"{flag} {value}: must be a number in [0, 1]")
    return float(value)


@dataclass(frozen=True)
class GatePolicy:
    """The gate's settings; invalid values raise a one-line :class:`UsageError` naming the flag."""

    level: str = "clip"
    min_recall: float = 0.5
    min_box_iou: float = 0.3
    box_action: str = "drop"

    def __post_init__(self) -> None:
        if self.level not in GATE_LEVELS:
            raise UsageError(f"--gate-level {self.level}: must be one of {', '.join(GATE_LEVELS)}")
        if self.box_action not in BOX_ACTIONS:
            raise UsageError(f"--box-action {self.box_action}: must be one of {', '.join(BOX_ACTIONS)}")
        object.__setattr__(self, "min_recall", _fraction(self.min_recall, "--min-recall"))
        object.__setattr__(self, "min_box_iou", _fraction(self.min_box_iou, "--min-box-iou"))

    @property
    def gates_clips(self) -> bool:
        return self.level in ("clip", "both")

    @property
    def gates_boxes(self) -> bool:
        return self.level in ("box", "both")

    def as_dict(self) -> dict[str, Any]:
        return {"gate_level": self.level, "min_recall": self.min_recall, "min_box_iou": self.min_box_iou,
                "box_action": self.box_action}


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one clip.

    ``decision`` is ``"kept"`` or ``"rejected"``; ``dropped`` / ``ignored`` are rows of the
    clip's boxes (the order the score was computed in) to remove or to turn into ignore regions
    (always empty for a rejected clip).
    """

    clip_id: str
    decision: str
    reason: str | None = None
    dropped: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)
    ignored: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64), repr=False)

    @property
    def kept(self) -> bool:
        return self.decision == KEPT

    def as_dict(self, score: ClipScore | None = None) -> dict[str, Any]:
        """JSON-ready; with the clip's ``score``, each dropped / ignored box is listed as its frame
        (1-based), track and IoU instead of its row."""
        def boxes(rows: np.ndarray) -> list:
            if score is None:
                return [int(r) for r in rows.tolist()]
            return [{"frame": int(score.box_frame[r]) + 1, "track": int(score.box_track[r]),
                     "iou": round(float(score.box_iou[r]), 6)} for r in rows.tolist()]

        return {"decision": self.decision, "reason": self.reason, "dropped": boxes(self.dropped),
                "ignored": boxes(self.ignored)}


def decide(score: ClipScore, policy: GatePolicy) -> GateDecision:
    """The decision ``policy`` takes on ``score`` (see the module docstring)."""
    if policy.gates_clips and score.recall < policy.min_recall:
        return GateDecision(score.clip_id, REJECTED,
                            f"recall {score.recall:.3f} < min recall {policy.min_recall:g}")
    empty = np.zeros(0, np.int64)
    if not policy.gates_boxes:
        return GateDecision(score.clip_id, KEPT, None, empty, empty)
    weak = np.flatnonzero(score.scored & (np.nan_to_num(score.box_iou, nan=1.0) < policy.min_box_iou))
    weak = weak.astype(np.int64)
    if policy.box_action == "drop":
        return GateDecision(score.clip_id, KEPT, None, weak, empty)
    return GateDecision(score.clip_id, KEPT, None, empty, weak)


def best_attempt(scores: Sequence[ClipScore]) -> int:
    """Index of the attempt to keep among several of one clip: the highest recall, the first of
    equals (so an extra attempt never replaces an equally good earlier one)."""
    if not scores:
        raise ValueError("best_attempt: no attempts")
    best = 0
    for i, s in enumerate(scores):
        if s.recall > scores[best].recall:
            best = i
    return best


def attempt_seed(clip_seed: int, attempt: int) -> int:
    """The seed of attempt ``attempt`` (0, 1, ...) of a clip whose seed is ``clip_seed``.

    Attempt 0 is the clip's own seed, so a gated run generates the same first attempt as an
    ungated one; later attempts take a 63-bit keyed hash of (seed, attempt), different for every
    attempt and the same in every process.
    """
    if isinstance(attempt, bool) or not isinstance(attempt, (int, np.integer)) or attempt < 0:
        raise ValueError(f"attempt_seed: attempt must be an integer >= 0, got {attempt!r}")
    if attempt == 0:
        return int(clip_seed)
    digest = keyed_digest(f"{int(clip_seed)}:{int(attempt)}", b"tdgen-retry")
    return int.from_bytes(digest, "little") & _MASK63
