"""Score a tracker's MOT result files against the annotations of a set of clips.

``RESULTS_DIR`` holds one text file per video, ``<video name>.txt``, as ByteTrack, OC-SORT and
mmdet write them: ``frame,id,x,y,w,h,score,-1,-1,-1`` with frame ``N`` the video's N-th frame
in annotation order (1-based). The lines are read with the rules of MOT ``gt.txt`` files
(:mod:`tdgen.tracks.mot_gt`: 6 to 10 columns, one box per id and frame, positive sizes); a bad
line is an :class:`~tdgen.errors.AnnotationError` naming it.

Scores, per video and over all of them, every one a fraction in 0..1 except counts:

* HOTA (DetA, AssA, LocA), CLEAR MOT (MOTA, MOTP, recall, precision, ID switches) and IDF1,
  computed by TrackEval's own metric classes (the ``trackeval`` package) on data prepared here
  the way its MOT Challenge loader prepares it: per frame, tracker boxes matched (Hungarian,
  IoU >= 0.5) to an *ignore* GT box are removed, then the ignore GT boxes are removed; ids are
  renumbered densely. Ignore GT boxes are crowd boxes (``iscrowd``), boxes with MOT conf 0 and,
  when asked, boxes less visible than ``min_visibility``.
* TrackAP and AP50 (:mod:`tdgen.evaluate.trackap`), class-agnostic since MOT result files carry
  no class; a track's score is the mean of its box scores; ignore boxes are handled there.

Matching is class-agnostic throughout: every non-ignored GT box is a target. A video without a
result file is scored as an empty result (everything missed) and named in ``warnings``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import AnnotationError, UsageError
from .evaluate import _round, check_thresholds
from .metrics import box_iou
from .trackap import VideoTracks, track_ap

__all__ = ["evaluate_tracks", "find_result_files", "read_result_file", "sequence_data"]

_EPS = np.finfo(np.float64).eps


def find_result_files(results_dir: str | Path) -> dict[str, Path]:
    """``video name -> file`` of every ``*.txt`` under ``results_dir`` (a sub-folder is part of the name)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        what = "not a directory" if results_dir.exists() else "no such directory"
        raise AnnotationError(results_dir, None, what, hint="pass the folder holding one <video name>.txt per video")
    found = {p.relative_to(results_dir).with_suffix("").as_posix(): p
             for p in sorted(results_dir.rglob("*.txt")) if p.is_file()}
    if not found:
        raise AnnotationError(results_dir, None, "no result files (*.txt) in this directory",
                              hint="pass the folder holding one <video name>.txt per video")
    return found


def read_result_file(path: str | Path, num_frames: int) -> VideoTracks:
    """The boxes of one MOT result file; ``frame`` becomes the 0-based frame index, ``score`` the conf column."""
    from ..tracks.mot_gt import read_gt_text

    gt = read_gt_text(Path(path), num_frames)
    return VideoTracks(frame=gt.frame - 1, track=gt.ids.astype(np.int64), bbox=gt.bbox, score=gt.conf)


def _dense(ids: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """The ids of every frame renumbered 0..n-1 over the sequence."""
    uniq = np.unique(np.concatenate(ids)) if ids else np.zeros(0, np.int64)
    return [np.searchsorted(uniq, i).astype(np.int64) for i in ids], int(uniq.size)


def sequence_data(num_frames: int, gt: VideoTracks, pred: VideoTracks) -> tuple[dict[str, Any], dict[str, int]]:
    """TrackEval's per-sequence input (``gt_ids``, ``tracker_ids``, ``similarity_scores`` per
    frame and the counts) from one video's GT (``ignore`` flags ignore regions) and predictions.

    Also returns counts: ``gt`` (kept GT boxes), ``ignored`` (ignore GT boxes), ``det`` (kept
    tracker boxes), ``det_on_ignored`` (tracker boxes removed on ignore regions).
    """
    from scipy.optimize import linear_sum_assignment

    g_ign = gt.ignore if gt.ignore is not None else np.zeros(len(gt), bool)
    g_ord, p_ord = np.argsort(gt.frame, kind="stable"), np.argsort(pred.frame, kind="stable")
    g_off = np.searchsorted(gt.frame[g_ord], np.arange(num_frames + 1))
    p_off = np.searchsorted(pred.frame[p_ord], np.arange(num_frames + 1))
    gt_ids, tr_ids, sims = [], [], []
    counts = {"gt": 0, "ignored": 0, "det": 0, "det_on_ignored": 0}
    for t in range(num_frames):
        gi = g_ord[g_off[t]:g_off[t + 1]]
        pj = p_ord[p_off[t]:p_off[t + 1]]
        sim = box_iou(gt.bbox[gi], pred.bbox[pj])
        ign = g_ign[gi]
        keep_p = np.ones(len(pj), bool)
        if ign.any() and len(pj):
            score = np.where(sim < 0.5 - _EPS, 0.0, sim)
            rows, cols = linear_sum_assignment(-score)
            hit = score[rows, cols] > _EPS
            keep_p[cols[hit][ign[rows[hit]]]] = False
        gt_ids.append(gt.track[gi][~ign])
        tr_ids.append(pred.track[pj][keep_p])
        sims.append(sim[~ign][:, keep_p])
        counts["gt"] += int((~ign).sum())
        counts["ignored"] += int(ign.sum())
        counts["det"] += int(keep_p.sum())
        counts["det_on_ignored"] += int((~keep_p).sum())
    gt_ids, n_gt = _dense(gt_ids)
    tr_ids, n_tr = _dense(tr_ids)
    data = {"num_timesteps": num_frames, "num_gt_ids": n_gt, "num_tracker_ids": n_tr,
            "num_gt_dets": counts["gt"], "num_tracker_dets": counts["det"],
            "gt_ids": gt_ids, "tracker_ids": tr_ids, "similarity_scores": sims}
    return data, counts


def _f(x: Any) -> float | None:
    v = float(np.mean(x))
    return None if math.isnan(v) else round(v, 4)


def _summary(hota: dict, clear: dict, ident: dict) -> dict[str, Any]:
    return {
        "hota": _f(hota["HOTA"]), "deta": _f(hota["DetA"]), "assa": _f(hota["AssA"]), "loca": _f(hota["LocA"]),
        "mota": _f(clear["MOTA"]), "motp": _f(clear["MOTP"]), "recall": _f(clear["CLR_Re"]),
        "precision": _f(clear["CLR_Pr"]), "id_switches": int(clear["IDSW"]), "idf1": _f(ident["IDF1"]),
    }


def evaluate_tracks(annotations_json: str | Path, results_dir: str | Path, *, iou_threshold: float = 0.5,
                    min_visibility: float = 0.0,
                    progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Score the MOT result files in ``results_dir`` against ``annotations_json``; overall and per-video numbers.

    ``iou_threshold`` is the match threshold of CLEAR MOT and IDF1 (HOTA averages over its own
    thresholds, TrackAP over 0.50..0.95). ``progress(done, total)`` is called after each video.
    """
    try:
        from trackeval.metrics import CLEAR, HOTA, Identity
    except ImportError:
        raise UsageError("scoring tracker results needs TrackEval: pip install trackeval (or tdgen[eval])") from None

    from ..tracks.io import read_tracks

    check_thresholds(iou_threshold, min_visibility)
    t0 = time.perf_counter()
    annotations_json = Path(annotations_json)
    files = find_result_files(results_dir)
    ts = read_tracks(annotations_json)
    names = [str(n) for n in ts.videos.name]
    known = set(names)
    for name, path in files.items():
        if name not in known:
            raise AnnotationError(path, None, f"no video {name!r} in {annotations_json}",
                                  hint="result files are named <video name>.txt after the videos of the annotations")

    b = ts.boxes
    ignore = b.iscrowd != 0
    if b.conf is not None:
        ignore |= b.conf == 0  # MOT's "do not evaluate" flag
    if b.visibility is not None and min_visibility > 0:
        ignore |= np.nan_to_num(b.visibility, nan=1.0) < min_visibility
    box_index = ts.box_frame_index()
    # boxes are grouped by frame and frames by video: each video's boxes are one slice
    box_off = ts.frame_offsets()[ts.video_offsets()]
    n_frames = ts.frames_per_video()

    quiet = {"PRINT_CONFIG": False}
    hota_m, clear_m, ident_m = HOTA(), CLEAR({**quiet, "THRESHOLD": iou_threshold}), Identity(
        {**quiet, "THRESHOLD": iou_threshold})
    res_h, res_c, res_i = {}, {}, {}
    pairs: list[tuple[VideoTracks, VideoTracks]] = []
    rows: list[dict[str, Any]] = []
    warnings: list[str] = []
    totals = {"gt": 0, "ignored": 0, "det": 0, "det_on_ignored": 0}
    for v, name in enumerate(names):
        sel = slice(box_off[v], box_off[v + 1])
        gt = VideoTracks(frame=box_index[sel], track=b.track[sel], bbox=b.bbox[sel], ignore=ignore[sel])
        path = files.get(name)
        if path is None:
            warnings.append(f"no result file for video {name} ({name}.txt): scored as an empty result")
            pred = VideoTracks.empty()
        else:
            pred = read_result_file(path, int(n_frames[v]))
        data, counts = sequence_data(int(n_frames[v]), gt, pred)
        res_h[name] = hota_m.eval_sequence(data)
        res_c[name] = clear_m.eval_sequence(data)
        res_i[name] = ident_m.eval_sequence(data)
        ap = track_ap([(gt, pred)], class_agnostic=True)
        pairs.append((gt, pred))
        for k in totals:
            totals[k] += counts[k]
        scores = _summary(res_h[name], res_c[name], res_i[name])
        if not (counts["gt"] or counts["det"]):
            scores = dict.fromkeys(scores)  # nothing to find and nothing found: no score
        rows.append({"video": name, "result": "missing" if path is None else str(path), "frames": int(n_frames[v]),
                     **counts, "gt_tracks": data["num_gt_ids"], "tracks": data["num_tracker_ids"], **scores,
                     "track_ap": _round(ap.ap), "track_ap50": _round(ap.ap50)})
        if progress:
            progress(v + 1, len(names))

    overall: dict[str, Any] = {"videos": len(rows), "frames": int(n_frames.sum()), **totals,
                               "gt_tracks": sum(r["gt_tracks"] for r in rows), "tracks": sum(r["tracks"] for r in rows)}
    if totals["gt"] or totals["det"]:
        overall.update(_summary(hota_m.combine_sequences(res_h), clear_m.combine_sequences(res_c),
                                ident_m.combine_sequences(res_i)))
    else:
        overall.update(dict.fromkeys(("hota", "deta", "assa", "loca", "mota", "motp", "recall", "precision",
                                      "id_switches", "idf1")))
    ap = track_ap(pairs, class_agnostic=True)
    overall.update({"track_ap": _round(ap.ap), "track_ap50": _round(ap.ap50)})
    return {
        "annotations": str(annotations_json),
        "results": str(results_dir),
        "settings": {"iou_threshold": iou_threshold, "min_visibility": min_visibility, "scale": "fraction",
                     "backend": "trackeval"},
        **overall,
        "missing_results": sum(r["result"] == "missing" for r in rows),
        "warnings": warnings,
        "seconds": round(time.perf_counter() - t0, 3),
        "per_video": rows,
    }
