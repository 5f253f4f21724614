"""The gate as synth's judge: the :class:`~tdgen.synth.runner.Retry` of ``tdgen synth --gate --retries K``."""

from __future__ import annotations

from ..synth.runner import Retry
from .detector import Detector
from .policy import GatePolicy, attempt_seed, best_attempt, decide
from .score import score_trackset

__all__ = ["gate_retry"]


def gate_retry(detector: Detector, policy: GatePolicy, *, iou: float, retries: int) -> Retry:
    """Judge each attempt by ``policy`` on ``detector``'s view of the frames as written; keep the
    attempt with the best recall; seeds from :func:`~tdgen.gate.policy.attempt_seed`."""

    def score(fragment, frames):
        return score_trackset(fragment.trackset, detector.detect_clip(frames, fragment.manifest["clip_id"]), iou=iou)

    return Retry(retries=retries, score=score, accept=lambda s: decide(s, policy).kept, best=best_attempt,
                 seed=attempt_seed)
