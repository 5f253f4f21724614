"""Evaluate a directory of shapes-domain clips against its annotations.

Works for the real rendered set (``tdgen shapes``: ``images/`` + ``annotations.json`` +
``backgrounds/``) and for a ``tdgen synth`` output (``images/<clip>/NNNNNN.jpg`` +
``annotations.json``): in both, image ``file_name``s are relative to the directory holding
``annotations.json`` unless another ``frames_root`` is given.

Per video: run the shapes detector on every frame (with the clean background when one is
given, else one estimated from the clip), match detections to the GT boxes at IoU >= 0.5, link
the detections with a simple IoU tracker, and score

* detection: recall, precision, mean IoU of matched pairs;
* identity: how stable the colour of each GT track's matched detections is (1.0 = the same
  object all along; a generator that changes an instance's colour mid-clip scores lower);
* tracking: HOTA (DetA, AssA), MOTA, IDF1 of the IoU tracker's output.

GT boxes marked crowd, or with visibility below ``min_visibility`` (mostly hidden behind other
shapes), are ignored: detecting them is neither required nor counted as a false positive.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import AnnotationError, UsageError
from .detect import detect_shapes, estimate_background
from .metrics import (
    HotaCounts,
    hota_counts,
    hota_summary,
    identity_consistency,
    ignored_detections,
    iou_tracker,
    match_boxes,
    mot_metrics,
)

__all__ = ["evaluate_dir", "resolve_target", "DEFAULT_MIN_VISIBILITY"]

DEFAULT_MIN_VISIBILITY = 0.4


def resolve_target(path: str | Path) -> tuple[Path, Path, Path | None]:
    """``(frames_root, annotations_json, backgrounds_dir or None)`` for a directory or a JSON file."""
    path = Path(path)
    if path.is_dir():
        ann = path / "annotations.json"
        if not ann.is_file():
            raise AnnotationError(path, None, "no annotations.json in this directory",
                                  hint="pass a tdgen shapes or tdgen synth output, or the annotation file itself")
    elif path.exists():
        ann = path
    else:
        raise AnnotationError(path, None, "no such file or directory")
    bg = ann.parent / "backgrounds"
    return ann.parent, ann, (bg if bg.is_dir() else None)


def _read_rgb(path: Path, width: int, height: int, where: str) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        reason = "missing" if not path.exists() else "not a readable image"
        raise AnnotationError(path, None, f"frame image is {reason} (needed by {where})",
                              hint="pass the directory that image file names are relative to")
    if width > 0 and height > 0 and (img.shape[1] != width or img.shape[0] != height):
        raise AnnotationError(path, None, f"image is {img.shape[1]}x{img.shape[0]}, the annotations say "
                              f"{width}x{height}")
    return np.ascontiguousarray(img[..., ::-1])


def _background_for(backgrounds: Any, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    if backgrounds is None:
        return None
    if isinstance(backgrounds, Mapping):
        bg = backgrounds.get(name)
        if bg is None:
            return None
        bg = np.asarray(bg, np.uint8)
    else:
        path = Path(backgrounds) / f"{name}.png"
        if not path.is_file():
            return None
        bg = _read_rgb(path, 0, 0, f"video {name}")
    if bg.shape != shape:
        raise AnnotationError(Path(backgrounds) / f"{name}.png" if not isinstance(backgrounds, Mapping) else name,
                              None, f"background is {bg.shape[1]}x{bg.shape[0]}, frames are {shape[1]}x{shape[0]}")
    return bg


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def _round(x: Any, nd: int = 4) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) else round(x, nd)
    return x


def check_thresholds(iou_threshold: float, min_visibility: float) -> None:
    """Refuse an IoU threshold outside (0, 1] or a visibility outside [0, 1] (one line)."""
    if not 0 < iou_threshold <= 1:
        raise UsageError(f"--iou must be in (0, 1], got {iou_threshold}")
    if not 0 <= min_visibility <= 1:
        raise UsageError(f"--min-visibility must be in [0, 1], got {min_visibility}")


def evaluate_dir(frames_root: str | Path | None, annotations_json: str | Path,
                 backgrounds: str | Path | Mapping[str, np.ndarray] | None = None, *,
                 iou_threshold: float = 0.5, track_iou: float = 0.3,
                 min_visibility: float = DEFAULT_MIN_VISIBILITY, color_tol: float = 30.0,
                 detector: Mapping[str, Any] | None = None, mot_backend: str = "auto",
                 progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Detect, match and track every video of ``annotations_json``; return overall and per-video numbers.

    ``frames_root`` is the directory image file names are relative to (default: the one holding
    the annotations). ``backgrounds`` is a directory of ``<video name>.png`` clean backgrounds or
    a mapping name -> RGB array; videos without one use a background estimated from the clip.
    ``detector`` passes keyword arguments to :func:`~tdgen.evaluate.detect.detect_shapes`.
    ``progress(done, total)`` is called after each video.
    """
    from ..tracks.io import read_tracks

    check_thresholds(iou_threshold, min_visibility)
    t0 = time.perf_counter()
    annotations_json = Path(annotations_json)
    root = Path(frames_root) if frames_root is not None else annotations_json.parent
    ts = read_tracks(annotations_json, "cocovid")
    det_kwargs = dict(detector or {})
    voff = ts.video_offsets()
    foff = ts.frame_offsets()
    b = ts.boxes
    vis = b.visibility if b.visibility is not None else np.ones(len(b))
    ignore_box = (b.iscrowd != 0) | (np.nan_to_num(vis, nan=1.0) < min_visibility)

    rows: list[dict[str, Any]] = []
    hota_all = HotaCounts()
    seqs = []
    totals = {"gt": 0, "ignored": 0, "det": 0, "tp": 0, "fp": 0, "fn": 0}
    iou_sum = 0.0
    ident_all: dict[tuple[int, int], float] = {}
    n_videos = ts.num_videos
    for v in range(n_videos):
        name = str(ts.videos.name[v])
        f_rows = np.arange(voff[v], voff[v + 1])
        if f_rows.size == 0:
            if progress:
                progress(v + 1, n_videos)
            continue
        frames = np.stack([
            _read_rgb(root / str(ts.frames.file_name[f]), int(ts.frames.width[f]), int(ts.frames.height[f]),
                      f"{annotations_json.name}: video {name}")
            for f in f_rows])
        bg = _background_for(backgrounds, name, frames.shape[1:])
        bg_kind = "given" if bg is not None else "estimated"
        if bg is None:
            bg = estimate_background(frames)
        dets = [detect_shapes(fr, bg, **det_kwargs) for fr in frames]
        tr_ids = iou_tracker([d.boxes for d in dets], iou_threshold=track_iou)
        c = {"gt": 0, "ignored": 0, "det": 0, "tp": 0, "fp": 0, "fn": 0}
        v_iou = 0.0
        pair_track: list[np.ndarray] = []
        pair_color: list[np.ndarray] = []
        gt_seq, tr_seq = [], []
        for i, f in enumerate(f_rows):
            sl = slice(foff[f], foff[f + 1])
            g_box, g_track, g_ign = b.bbox[sl], b.track[sl], ignore_box[sl]
            d = dets[i]
            valid = ~g_ign
            rows_, cols_, ious = match_boxes(g_box[valid], d.boxes, iou_threshold)
            unmatched = np.ones(len(d), bool)
            unmatched[cols_] = False
            drop = np.zeros(len(d), bool)
            if g_ign.any() and unmatched.any():
                um = np.flatnonzero(unmatched)
                drop[um] = ignored_detections(g_box[g_ign], d.boxes[um], iou_threshold)
            keep = ~drop
            n_valid = int(valid.sum())
            c["gt"] += n_valid
            c["ignored"] += int(g_ign.sum())
            c["det"] += int(keep.sum())
            c["tp"] += rows_.size
            c["fn"] += n_valid - rows_.size
            c["fp"] += int(keep.sum()) - rows_.size
            v_iou += float(ious.sum())
            pair_track.append(g_track[valid][rows_])
            pair_color.append(d.colors[cols_])
            gt_seq.append((g_track[valid], g_box[valid]))
            tr_seq.append((tr_ids[i][keep], d.boxes[keep]))
        ident, per_track = identity_consistency(np.concatenate(pair_track), np.concatenate(pair_color), color_tol)
        for t, val in per_track.items():
            ident_all[(v, t)] = val
        hc = hota_counts(gt_seq, tr_seq)
        hota_all = hota_all + hc
        seqs.append((gt_seq, tr_seq))
        hs = hota_summary(hc) if (c["gt"] or c["det"]) else None
        for k in totals:
            totals[k] += c[k]
        iou_sum += v_iou
        rows.append({
            "video": name, "frames": int(f_rows.size), "background": bg_kind, **c,
            "recall": _ratio(c["tp"], c["gt"]), "precision": _ratio(c["tp"], c["tp"] + c["fp"]),
            "mean_iou": _ratio(v_iou, c["tp"]), "identity_consistency": ident,
            "hota": hs["hota"] if hs else None, "deta": hs["deta"] if hs else None,
            "assa": hs["assa"] if hs else None,
        })
        if progress:
            progress(v + 1, n_videos)

    mm = mot_metrics(seqs, iou_threshold, backend=mot_backend) if seqs else {"backend": None, "overall": {},
                                                                            "per_sequence": []}
    for row, m in zip(rows, mm["per_sequence"]):
        row.update({"mota": m["mota"], "idf1": m["idf1"], "id_switches": m["id_switches"]})
    hs = hota_summary(hota_all) if (totals["gt"] or totals["det"]) else None
    overall = {
        "videos": len(rows), "frames": int(sum(r["frames"] for r in rows)), **totals,
        "recall": _ratio(totals["tp"], totals["gt"]),
        "precision": _ratio(totals["tp"], totals["tp"] + totals["fp"]),
        "mean_iou": _ratio(iou_sum, totals["tp"]),
        "identity_consistency": float(np.mean(list(ident_all.values()))) if ident_all else None,
        "hota": hs["hota"] if hs else None, "deta": hs["deta"] if hs else None, "assa": hs["assa"] if hs else None,
        "loca": hs["loca"] if hs else None,
        "mota": mm["overall"].get("mota"), "idf1": mm["overall"].get("idf1"),
        "id_switches": mm["overall"].get("id_switches"),
    }
    backgrounds_used = sorted({r["background"] for r in rows})
    result = {
        "annotations": str(annotations_json),
        "frames_root": str(root),
        "background": backgrounds_used[0] if len(backgrounds_used) == 1 else "mixed",
        "settings": {"iou_threshold": iou_threshold, "track_iou": track_iou, "min_visibility": min_visibility,
                     "color_tol": color_tol, "mot_backend": mm["backend"], "detector": det_kwargs},
        **{k: _round(v) if isinstance(v, float) else v for k, v in overall.items()},
        "seconds": round(time.perf_counter() - t0, 3),
        "per_video": [{k: _round(v) for k, v in r.items()} for r in rows],
    }
    return result
