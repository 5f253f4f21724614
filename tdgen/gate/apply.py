"""Gate a finished ``tdgen synth`` directory after the fact (``tdgen gate SYNTH_DIR``).

Every finished clip is read (its fragment and frames), run through a detector, scored
(:mod:`tdgen.gate.score`) and decided on (:mod:`tdgen.gate.policy`); only then is anything
written, so a bad detector or a damaged clip leaves the directory as it was. Then:

```
OUT/rejected/<clip>.json       a rejected clip's fragment, moved out of clips/
OUT/rejected/<clip>/           its frames, moved out of images/
OUT/annotations.json           only the kept clips, with their boxes dropped or marked
OUT/manifest.parquet           every clip (kept and rejected), plus gate_recall, gate_mean_iou,
                               gate_decision
OUT/mot/                       brought up to date when the run kept a MOT copy
OUT/gate_report.json           per clip score and decision, totals (written last)
```

The fragments are never changed: they hold the boxes the clip was asked to follow, so a second
run scores the same boxes on the same frames and writes the same files, and a run with other
settings re-decides every clip (a clip rejected before and kept now is moved back). Moves keep
synth's rule that a fragment in ``clips/`` implies its frames in ``images/`` (fragment out
first, frames back first), so a kill at any moment leaves a directory that the same command
finishes, and that ``tdgen synth`` resumes. See docs/architecture.md for the directory layout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import orjson

from ..atomic import atomic_write_bytes, remove_temp_files
from ..errors import AnnotationError, OutputError, TdgenError
from ..synth.fragments import MANIFEST_TYPES, REDO_HINT, ClipFragment, concat_fragments, read_fragment
from ..synth.outputs import LOCK_NAME, REJECTED_DIR, REJECTED_SETTINGS, SynthDir, settings_match
from .detector import Detector
from .policy import GateDecision, GatePolicy, decide
from .report import REPORT_NAME, build_report
from .score import DEFAULT_IOU, ClipScore, check_iou, score_trackset

__all__ = ["GATE_MANIFEST_TYPES", "REJECTED_DIR", "GatedClip", "apply_decision", "gate_synth_dir", "read_frames",
           "write_gated_manifest"]

SETTINGS_COPY = REJECTED_SETTINGS  # in rejected/: the settings of the run its clips come from
# gate_attempts / gate_attempt / gate_seed: what `synth --gate --retries` tried (null after a plain synth)
GATE_MANIFEST_TYPES: tuple[tuple[str, str], ...] = (
    ("gate_recall", "float64"), ("gate_mean_iou", "float64"), ("gate_decision", "string"),
    ("gate_attempts", "int64"), ("gate_attempt", "int64"), ("gate_seed", "int64"))


@dataclasses.dataclass(frozen=True)
class GatedClip:
    """One clip as the gate saw it: where its fragment and frames are now, its score and decision."""

    clip_id: str
    fragment: ClipFragment
    fragment_path: Path
    frames_dir: Path
    score: ClipScore
    decision: GateDecision


def read_frames(ts: Any, frames_dir: Path) -> np.ndarray:
    """The frames of a one-clip TrackSet as (T, H, W, 3) RGB uint8, read from ``frames_dir`` by
    their file names; a missing or unreadable frame, or one of another size, is an
    :class:`AnnotationError` naming it."""
    from ..imageops import opencv

    cv2 = opencv("reading the clips' frames")
    w, h = int(ts.videos.width[0]), int(ts.videos.height[0])
    out = np.empty((ts.num_frames, h, w, 3), np.uint8)
    for i, name in enumerate(ts.frames.file_name.tolist()):
        path = frames_dir / Path(str(name)).name
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            reason = "missing" if not path.exists() else "not a readable image"
            raise AnnotationError(path, None, f"frame is {reason}", hint=REDO_HINT)
        if img.shape[:2] != (h, w):
            raise AnnotationError(path, None, f"frame is {img.shape[1]}x{img.shape[0]}, its clip says {w}x{h}",
                                  hint=REDO_HINT)
        out[i] = img[..., ::-1]
    return out


def apply_decision(fragment: ClipFragment, decision: GateDecision) -> ClipFragment:
    """``fragment`` with ``decision``'s boxes dropped or turned into ignore regions (iscrowd 1,
    conf 0, so the MOT copy marks them too)."""
    ts = fragment.trackset
    b = ts.boxes
    if decision.ignored.size:
        crowd = b.iscrowd.copy()
        crowd[decision.ignored] = 1
        conf = np.full(len(b), np.nan) if b.conf is None else b.conf.copy()  # NaN reads as 1 when written
        conf[decision.ignored] = 0.0
        b = dataclasses.replace(b, iscrowd=crowd, conf=conf)
    if decision.dropped.size:
        keep = np.ones(len(b), bool)
        keep[decision.dropped] = False
        b = b.take(keep)
    if b is ts.boxes:
        return fragment
    return dataclasses.replace(fragment, trackset=dataclasses.replace(ts, boxes=b))


def write_gated_manifest(path: Path, rows: list[dict[str, Any]]) -> None:
    """``manifest.parquet`` with synth's columns (as finalize writes them) followed by the gate's
    (:data:`GATE_MANIFEST_TYPES`; null where a row has no value), rows in plan order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(),
             "list<int64>": pa.list_(pa.int64())}
    columns = (*MANIFEST_TYPES, *GATE_MANIFEST_TYPES)
    rows = sorted(rows, key=lambda r: r["order"])
    table = pa.table({c: [r.get(c) for r in rows] for c, _ in columns},
                     schema=pa.schema([(c, types[kind]) for c, kind in columns]))
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------ reading
def _has_frames(ts: Any, d: Path) -> bool:
    return d.is_dir() and all((d / Path(str(n)).name).is_file() for n in ts.frames.file_name.tolist())


def _locate(sd: SynthDir, rej: Path, cid: str, current: set[str]) -> tuple[ClipFragment, Path, Path]:
    """A clip's fragment (read), its path and its frames folder, wherever a previous gate left them."""
    if cid in current:
        frag_path = sd.fragment_path(cid)
        frag = read_fragment(frag_path)
        frames = sd.frames_dir(cid)  # synth's rule: a fragment in clips/ has its frames in images/
        if not frames.is_dir():
            raise AnnotationError(frag_path, None, f"its frames folder {frames} is missing", hint=REDO_HINT)
        return frag, frag_path, frames
    frag_path = rej / f"{cid}.json"
    frag = read_fragment(frag_path)
    # a gate killed between the two moves left the frames in images/
    for frames in (rej / cid, sd.frames_dir(cid)):
        if _has_frames(frag.trackset, frames):
            return frag, frag_path, frames
    raise AnnotationError(frag_path, None, f"the frames of this rejected clip are in neither {rej / cid} nor "
                          f"{sd.frames_dir(cid)}", hint="delete the fragment to forget the clip")


def _detect(detector: Detector, frames: np.ndarray, cid: str) -> list:
    dets = list(detector.detect_clip(frames, cid))
    if len(dets) != len(frames):
        raise TdgenError(f"detector {getattr(detector, 'name', '?')}: returned {len(dets)} frames of detections "
                         f"for the {len(frames)} frames of clip {cid}")
    return dets


def _flavor(sd: SynthDir, report_path: Path) -> str:
    """The flavour annotations.json is in (as synth --flavor wrote it), else the one a previous
    gate recorded, else mmdet. The file is scanned in pieces up to its first annotation's track
    key (``instance_id`` in mmdet, ``track_id`` in bytetrack), never loaded whole."""
    keys = {b'"instance_id"': "mmdet", b'"track_id"': "bytetrack"}
    with contextlib.suppress(OSError), open(sd.annotations, "rb") as f:
        tail = b""
        while chunk := f.read(1 << 20):
            text = tail + chunk
            hits = {text.find(k): v for k, v in keys.items() if k in text}
            if hits:
                return hits[min(hits)]
            tail = text[-16:]
    with contextlib.suppress(OSError, orjson.JSONDecodeError, AttributeError):
        flavor = orjson.loads(report_path.read_bytes()).get("flavor")
        if flavor in ("mmdet", "bytetrack"):
            return flavor
    return "mmdet"


# ------------------------------------------------------------------------------------ moves
def _remove_tree(path: Path) -> None:
    """Remove a folder in two steps (rename aside, then delete), so a kill never leaves half of it
    under its own name."""
    if not path.exists():
        return
    aside = path.with_name(f".{path.name}.old-{os.getpid()}")
    shutil.rmtree(aside, ignore_errors=True)
    os.replace(path, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _forget_stale(rej: Path, cid: str) -> None:
    """An earlier rejected copy of a clip that has been generated again: fragment first, then frames."""
    with contextlib.suppress(FileNotFoundError):
        (rej / f"{cid}.json").unlink()
    _remove_tree(rej / cid)


def _move_aside(sd: SynthDir, rej: Path, c: GatedClip) -> bool:
    """Put a rejected clip under ``rejected/`` (fragment first). Returns whether anything moved."""
    moved = False
    if c.fragment_path != rej / f"{c.clip_id}.json":
        _forget_stale(rej, c.clip_id)
        os.replace(c.fragment_path, rej / f"{c.clip_id}.json")
        moved = True
    if c.frames_dir != rej / c.clip_id:
        _remove_tree(rej / c.clip_id)
        os.replace(c.frames_dir, rej / c.clip_id)
        moved = True
    return moved


def _move_back(sd: SynthDir, rej: Path, c: GatedClip) -> bool:
    """Put a kept clip back in ``images/`` and ``clips/`` (frames first). Returns whether anything moved."""
    moved = False
    if c.frames_dir != sd.frames_dir(c.clip_id):
        _remove_tree(sd.frames_dir(c.clip_id))
        os.replace(c.frames_dir, sd.frames_dir(c.clip_id))
        moved = True
    if c.fragment_path != sd.fragment_path(c.clip_id):
        os.replace(c.fragment_path, sd.fragment_path(c.clip_id))
        moved = True
    else:
        _forget_stale(rej, c.clip_id)
    _remove_tree(rej / c.clip_id)
    return moved


def _clean_rejected(rej: Path) -> None:
    """Hidden left-overs of a killed gate, and frame folders whose fragment is gone (stale)."""
    if not rej.is_dir():
        return
    for entry in list(rej.iterdir()):
        if entry.name == SETTINGS_COPY:
            continue
        if entry.name.startswith("."):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
        elif entry.is_dir() and not (rej / f"{entry.name}.json").exists():
            shutil.rmtree(entry, ignore_errors=True)


def _rejected_belongs(rej: Path, settings: dict[str, Any]) -> bool:
    """Whether ``rejected/`` was filled from clips of this run: a ``tdgen synth --overwrite`` with
    other settings clears images/ and clips/ but knows nothing of rejected/."""
    try:
        old = orjson.loads((rej / SETTINGS_COPY).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return settings_match(old, settings)


def _ensure_rejected_dir(rej: Path, settings: dict[str, Any]) -> None:
    """``rejected/`` with the settings record of the run its clips come from (before any move)."""
    rej.mkdir(exist_ok=True)
    if not (rej / SETTINGS_COPY).is_file():
        atomic_write_bytes(rej / SETTINGS_COPY, orjson.dumps(settings, option=orjson.OPT_SORT_KEYS))


# ------------------------------------------------------------------------------------ the gate
def gate_synth_dir(out: str | os.PathLike, detector: Detector, policy: GatePolicy, *, iou: float = DEFAULT_IOU,
                   progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
    """Gate every finished clip of the synth directory ``out`` (see the module docstring).

    Returns ``{"report": <gate_report.json contents>, "moved_aside": n, "moved_back": n,
    "paths": {...}}``, where the counts are what this run moved. Refused with an
    :class:`OutputError`, nothing written, when ``out`` is not a synth directory, holds no
    finished clip, or a ``tdgen synth`` is running on it.
    """
    iou = check_iou(iou)
    sd = SynthDir(out)
    if not sd.root.is_dir():
        raise OutputError(f"{sd.root}: no such directory (nothing to gate)")
    if not sd.is_synth_dir():
        raise OutputError(f"{sd.root}: not a tdgen synth output directory (no {LOCK_NAME}); nothing to gate")
    sd.preflight((0, 1))  # a live synth would finalize over what the gate writes
    settings = sd.read_settings()
    if not isinstance(settings, dict):
        raise AnnotationError(sd.lock_file, None, "damaged settings record: expected a JSON object")
    rej = sd.root / REJECTED_DIR
    report_path = sd.root / REPORT_NAME
    with sd.finalize_lock():
        sd.remove_finalize_leftovers()
        remove_temp_files(sd.root, [REPORT_NAME])
        for p in sd.root.glob(f".{REJECTED_DIR}.old-*"):  # a stale rejected/ being removed when killed
            shutil.rmtree(p, ignore_errors=True)
        current = sd.finished_ids()
        stale = rej.is_dir() and not _rejected_belongs(rej, settings)
        rejected = {p.stem for p in rej.glob("*.json") if not p.name.startswith(".")} \
            if rej.is_dir() and not stale else set()
        ids = sorted(current | rejected)
        if not ids:
            raise OutputError(f"{sd.root}: holds no finished clip; nothing to gate")
        check = getattr(detector, "check_clips", None)
        if callable(check):  # e.g. precomputed detections refuse files for clips the output lacks
            check(ids)
        clips: list[GatedClip] = []
        for done, cid in enumerate(ids):
            frag, frag_path, frames_dir = _locate(sd, rej, cid, current)
            frames = read_frames(frag.trackset, frames_dir)
            score = score_trackset(frag.trackset, _detect(detector, frames, cid), iou=iou)
            clips.append(GatedClip(cid, frag, frag_path, frames_dir, score, decide(score, policy)))
            if progress is not None:
                progress(done + 1, len(ids))
        flavor = _flavor(sd, report_path)

        # everything is decided: now write, moves first (each one atomic and in a safe order)
        if stale:
            _remove_tree(rej)
        _clean_rejected(rej)
        if any(not c.decision.kept for c in clips):
            _ensure_rejected_dir(rej, settings)
        moved_aside = sum(_move_aside(sd, rej, c) for c in clips if not c.decision.kept)
        moved_back = sum(_move_back(sd, rej, c) for c in clips if c.decision.kept)
        if rej.is_dir() and all(e.name == SETTINGS_COPY for e in rej.iterdir()):
            _remove_tree(rej)
        kept = [apply_decision(c.fragment, c.decision) for c in clips if c.decision.kept]
        categories = settings.get("categories") or clips[0].fragment.trackset.categories
        ts = concat_fragments(kept, categories, mot_fields=bool(settings.get("mot_fields", False)))
        from ..tracks.cocovid import write_cocovid

        write_cocovid(ts, sd.annotations, flavor)
        write_gated_manifest(sd.manifest, [
            {**c.fragment.manifest, "gate_recall": c.score.recall, "gate_mean_iou": c.score.mean_iou,
             "gate_decision": c.decision.decision} for c in clips])
        paths = {"annotations": str(sd.annotations), "manifest": str(sd.manifest), "report": str(report_path)}
        if (sd.root / "mot").is_dir():
            from ..synth.finalize import write_mot_copy

            write_mot_copy(sd, _mot_view(ts))
            paths["mot"] = str(sd.root / "mot")
        report = build_report(
            [(c.fragment.order, c.score, c.decision,
              f"{REJECTED_DIR}/{c.clip_id}" if not c.decision.kept else f"images/{c.clip_id}") for c in clips],
            detector=str(getattr(detector, "name", type(detector).__name__)),
            settings={"iou": float(iou), **policy.as_dict()}, flavor=flavor, rejected_dir=REJECTED_DIR)
        atomic_write_bytes(report_path, orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return {"report": report, "moved_aside": moved_aside, "moved_back": moved_back, "paths": paths}


def _mot_view(ts: Any) -> Any:
    """The set as the MOT copy should see it: ignore regions with conf 0 even where the source
    had no conf column."""
    if ts.boxes.conf is not None or not ts.boxes.iscrowd.any():
        return ts
    conf = np.where(ts.boxes.iscrowd.astype(bool), 0.0, 1.0)
    return dataclasses.replace(ts, boxes=dataclasses.replace(ts.boxes, conf=conf))
