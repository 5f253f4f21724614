"""``tdgen synth``: plan clips from an annotation file, generate them in batches, write outputs.

The runner is independent of the model: it calls a *generator* (``clips, prompts, seeds ->
frames``), which is the TrackDiffusion pipeline in real runs and a cheap stand-in in tests of
resuming and sharding.
"""

from __future__ import annotations

import hashlib
import json
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np

from ..imageops import resize_frames
from ..prompts import make_prompt
from ..tracks.clips import Clip, stable_shard
from .finalize import finalize
from .fragments import ClipFragment, clip_trackset
from .options import (MAX_STEPS, SynthOptions, SynthWarning, options_with_model, parse_shard, run_shard,
                      shard_from_env, validate_options)
from .outputs import SynthDir, encode_image
from .plan import SynthPlan, clip_size, plan_line, plan_lines, plan_only, plan_synth, summarize_plan, target_filter

__all__ = ["SynthOptions", "SynthWarning", "Generator", "run_synth", "plan_synth", "summarize_plan", "plan_only",
           "plan_line", "plan_lines", "shard_from_env", "parse_shard", "make_prompt", "validate_options", "Retry",
           "options_with_model", "target_filter", "MAX_STEPS"]


class Generator(Protocol):
    """What the runner needs from a model."""

    model_id: str
    model_hash: str
    resolution: tuple[int, int]  # (W, H) the model generates at
    dtype: str

    def __call__(self, clips: Sequence[Clip], prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """(B, F, H, W, 3) uint8 RGB frames."""


def _file_digest(path: Path) -> str:
    """A digest of the content: a file's bytes (not its name, so a renamed copy matches), or a
    directory's annotation files with their paths inside it."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".ini", ".json")) \
        if path.is_dir() else [path]
    for p in files:
        if path.is_dir():
            h.update(str(p.relative_to(path)).encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _settings(opts: SynthOptions, plan: SynthPlan, gen: Generator, size: tuple[int, int]) -> dict[str, Any]:
    """What makes two runs' clips the same: a directory only resumes with equal settings.

    ``source`` and ``captions`` (paths) are recorded for information only; the digests of their
    content are what is compared (see ``INFO_KEYS`` in :mod:`tdgen.synth.outputs`).
    """
    return {
        "source": str(Path(opts.ann).resolve()),
        "source_digest": _file_digest(Path(opts.ann)),
        "clip_spec": {"frames": opts.frames, "stride": opts.stride, "step": opts.step, "slots": opts.slots,
                      "overflow": opts.overflow, "min_tracks": opts.min_tracks},
        "videos": list(opts.videos),
        "max_clips": opts.max_clips,
        "seed": opts.seed,
        "model_id": gen.model_id,
        "model_hash": gen.model_hash,
        "dtype": gen.dtype,
        "steps": opts.steps,
        "guidance": opts.guidance,
        "guidance_kind": opts.guidance_kind,
        "prompt_template": opts.prompt_template,
        "captions": str(Path(opts.captions).resolve()) if opts.captions else None,
        "captions_digest": _file_digest(opts.captions) if opts.captions else None,
        "size": size if size == "source" else list(size),
        "image_format": opts.image_format,
        "quality": opts.quality if opts.image_format != "png" else None,
        "classes": list(opts.classes) if opts.classes else None,
        "min_conf": opts.min_conf,
        "planned_clips": len(plan.clips),
        "categories": plan.ts.categories,
        "mot_fields": plan.ts.has_mot_fields(),
        **({"drop_boxes": True} if opts.drop_boxes else {}),
        **({"ignore_as": "crowd"} if opts.ignore_as == "crowd" else {}),
        **({"gate": opts.gate} if opts.gate else {}),
    }


def _fragment(clip: Clip, plan: SynthPlan, opts: SynthOptions, gen: Generator, size: tuple[int, int],
              names: list[str], seconds: float) -> ClipFragment:
    """The clip's one-video TrackSet (its boxes in pixels of ``size``) and its manifest row."""
    w, h = size
    ts = plan.ts
    f_idx, s_idx = np.nonzero(clip.mask > 0)
    xyxy = clip.boxes[f_idx, s_idx].astype(np.float64) * np.array([w, h, w, h], np.float64)
    bbox = np.stack([xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], 1)
    bbox = np.round(bbox, 2)
    rows = clip.box_rows[f_idx, s_idx]
    vis = ts.boxes.visibility[rows] if ts.boxes.visibility is not None else None
    conf = ts.boxes.conf[rows] if ts.boxes.conf is not None else None
    fps_col = ts.videos.fps
    fps = None if fps_col is None or np.isnan(fps_col[clip.video]) else float(fps_col[clip.video]) / clip.step
    ext = opts.image_format if opts.image_format != "jpeg" else "jpg"
    order = plan.order[clip.clip_id]
    manifest = {
        "clip_id": clip.clip_id, "order": order, "source": str(opts.ann),
        "source_video": clip.video_name, "first_frame": int(clip.frame_numbers[0]),
        "last_frame": int(clip.frame_numbers[-1]), "frame_step": int(clip.step),
        "frames": int(clip.num_frames), "tracks": int(clip.num_tracks),
        "source_track_ids": [int(t) for t in clip.track_ids],
        "dropped_tracks": int(clip.dropped_track_ids.size),
        "dropped_track_ids": [int(t) for t in clip.dropped_track_ids], "prompt": plan.prompts[clip.clip_id],
        "seed": int(plan.seeds[clip.clip_id]), "model_id": gen.model_id, "model_hash": gen.model_hash,
        "steps": opts.steps, "guidance": float(opts.guidance), "guidance_kind": opts.guidance_kind,
        "width": w, "height": h, "seconds": round(float(seconds), 4), "ext": ext,
    }
    category = clip.categories[s_idx]
    crowd = None
    if plan.regions is not None:
        r_frame, r_bbox, r_slot, r_cat, r_vis, r_conf = _clip_regions(clip, plan, size)
        if r_frame.size:
            f_idx, bbox, s_idx = np.concatenate([f_idx, r_frame]), np.concatenate([bbox, r_bbox]), \
                np.concatenate([s_idx, r_slot])
            category = np.concatenate([category, r_cat])
            vis = None if vis is None else np.concatenate([vis, r_vis])
            conf = None if conf is None else np.concatenate([conf, r_conf])
            crowd = np.concatenate([np.zeros(len(bbox) - r_frame.size, np.int8), np.ones(r_frame.size, np.int8)])
    clip_ts = clip_trackset(clip.clip_id, size, fps, [f"images/{clip.clip_id}/{n}" for n in names], f_idx, bbox,
                            s_idx, category, ts.categories, visibility=vis, conf=conf, iscrowd=crowd)
    return ClipFragment(clip_ts, manifest, order)


def _clip_regions(clip: Clip, plan: SynthPlan, size: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The ignore regions on the clip's frames, in pixels of ``size``: (frame position, x y w h,
    track slot (after the clip's N slots, one per region track), category, visibility, conf).
    Regions are scaled like the clip's boxes (source frame -> output frame) and clipped to it."""
    r = plan.regions
    # boxes are sorted by frame: the clip's frame range is one slice, found by binary search
    lo, hi = np.searchsorted(r.frame, [clip.frame_rows.min(), clip.frame_rows.max() + 1])
    at = np.searchsorted(clip.frame_rows, r.frame[lo:hi]).clip(0, clip.num_frames - 1)
    on_clip = clip.frame_rows[at] == r.frame[lo:hi]  # with --step, frames between the clip's are not
    rows, frame_pos = lo + np.flatnonzero(on_clip), at[on_clip]
    src_w = plan.ts.frames.width[r.frame[rows]].astype(np.float64)
    src_h = plan.ts.frames.height[r.frame[rows]].astype(np.float64)
    x, y, bw, bh = (r.bbox[rows, k].astype(np.float64) for k in range(4))
    w, h = size
    x0, x1 = np.clip(x / src_w, 0, 1) * w, np.clip((x + bw) / src_w, 0, 1) * w
    y0, y1 = np.clip(y / src_h, 0, 1) * h, np.clip((y + bh) / src_h, 0, 1) * h
    bbox = np.round(np.stack([x0, y0, x1 - x0, y1 - y0], 1), 2)
    ok = (bbox[:, 2] > 0) & (bbox[:, 3] > 0)  # a region outside the frame is no region
    rows, bbox, frame_pos = rows[ok], bbox[ok], frame_pos[ok]
    _, track_rank = np.unique(r.track[rows], return_inverse=True)
    nan = np.full(rows.size, np.nan)
    return (frame_pos, bbox, clip.num_slots + track_rank.astype(np.int64), r.category[rows],
            r.visibility[rows] if r.visibility is not None else nan, r.conf[rows] if r.conf is not None else nan)


class _Interrupts:
    """Ctrl-C during generation stops at once; during a clip's write, after the write."""

    def __init__(self) -> None:
        self.writing = False
        self.pending = False
        self._old = None

    def __enter__(self) -> "_Interrupts":
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread
            self._old = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.writing:
            self.pending = True
        else:
            raise KeyboardInterrupt

    def after_write(self) -> None:
        if self.pending:
            raise KeyboardInterrupt


def _batches(clips: list[Clip], size: int) -> Iterator[list[Clip]]:
    by_len: dict[int, list[Clip]] = {}
    for c in clips:
        by_len.setdefault(c.num_frames, []).append(c)
    for group in by_len.values():
        for i in range(0, len(group), size):
            yield group[i:i + size]


@dataclass
class SynthResult:
    planned: int
    assigned: int
    done: int
    skipped: int
    failed: list[str]
    seconds: float
    interrupted: bool
    finalized: dict | None
    out: str
    plan: dict | None = None  # summarize_plan() of this run (clips, tracks, dropped tracks per clip)
    frames: int = 0  # frames generated and written by this run
    generate_seconds: float = 0.0  # time spent generating and writing them (model loading and planning excluded)

    @property
    def frames_per_s(self) -> float | None:
        """Frames generated per second of generation (None when nothing was generated)."""
        return self.frames / self.generate_seconds if self.frames and self.generate_seconds > 0 else None

    @property
    def clips_per_min(self) -> float | None:
        return 60.0 * self.done / self.generate_seconds if self.done and self.generate_seconds > 0 else None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frames_per_s"] = None if self.frames_per_s is None else round(self.frames_per_s, 3)
        d["clips_per_min"] = None if self.clips_per_min is None else round(self.clips_per_min, 3)
        return d


def run_synth(
    opts: SynthOptions,
    make_generator: Callable[[], Generator],
    *,
    progress: Callable[[int, int, int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_plan: Callable[[dict], None] | None = None,
    retry: Retry | None = None,
) -> SynthResult:
    """Generate every planned clip of this shard that is not finished yet, then finalize.

    Flags are checked first, then the plan is made and ``make_generator`` is called, all before
    anything is written (the generator must expose the model id and hash for the settings
    record). The output directory is then held for this shard for the whole run (see
    :mod:`tdgen.synth.outputs`): another run on it is refused with the holder's PID.
    ``progress(done, total, frames)`` is called after each clip is written (``frames``: frames
    written by this run so far); ``on_start(total,
    already_done)`` once planning is done; ``on_plan(summary)`` just before, with
    :func:`summarize_plan`'s dict (dropped tracks included), once the directory is claimed: a
    refused run reports nothing but its error. The run finalizes (``finalized`` in the result)
    only when it is the last of its launch to end: no other shard still running and every other
    shard's clips finished, rejected or failed (an unsharded run always is); the other ranks leave
    ``finalized`` None. With ``retry``, clips are judged and regenerated
    as :class:`Retry` says (the gate's decisions themselves are applied after finalize, by
    :func:`tdgen.gate.apply.gate_synth_dir`).
    """
    t0 = time.perf_counter()
    validate_options(opts)
    shard = run_shard(opts)
    held = shard or (0, 1)
    sd = SynthDir(opts.out)
    sd.preflight(held, overwrite=opts.overwrite)  # fail before the model loads, creating nothing
    plan = plan_synth(opts)
    gen = make_generator()
    size = opts.out_size or gen.resolution
    plan_summary = summarize_plan(plan, opts, shard=shard, size=size)
    with sd.session(_settings(opts, plan, gen, size), held, overwrite=opts.overwrite) as claim:
        owner = {c.clip_id: stable_shard(c.clip_id, held[1]) for c in plan.clips}
        mine = [c for c in plan.clips if owner[c.clip_id] == held[0]]
        theirs = [cid for cid, k in owner.items() if k != held[0]]  # the other shards' clips
        sd.discard_unfinished([c.clip_id for c in mine])
        # a clip the gate rejected (and moved aside) is done too: a resumed run does not redo it
        finished = sd.finished_ids() | sd.rejected_ids(sd.read_settings())
        todo = [c for c in mine if c.clip_id not in finished]
        skipped = len(mine) - len(todo)
        if on_plan:
            on_plan(plan_summary)
        if on_start:
            on_start(len(mine), skipped)
        tg = time.perf_counter()
        done, frames, failed, interrupted = _generate(sd, todo, plan, opts, gen, size, skipped, len(mine), progress,
                                                      retry)
        generate_seconds = time.perf_counter() - tg

        def others_done() -> bool:
            # a clip the gate rejected or that failed is accounted for: its rank has ended with it
            ended = sd.finished_ids() | sd.rejected_ids(sd.read_settings()) | sd.failed_ids()
            return all(cid in ended for cid in theirs)

        # only the last rank of a launch to end finalizes (for the others it would be wasted work
        # and a half-made annotations.json for a while); a run interrupted before it made or
        # found anything lets its shard go when the session ends, without finalizing
        last = bool(done or skipped or not interrupted) and claim.release_if_last(others_done)
    summary = finalize(opts.out, flavor=opts.flavor, mot=opts.mot, jpeg_quality=opts.quality) if last else None
    return SynthResult(planned=len(plan.clips), assigned=len(mine), done=done, skipped=skipped, failed=failed,
                       seconds=round(time.perf_counter() - t0, 3), interrupted=interrupted, finalized=summary,
                       out=str(opts.out), plan=plan_summary, frames=frames,
                       generate_seconds=round(generate_seconds, 3))


@dataclass(frozen=True)
class Retry:
    """How synth regenerates clips that a judge finds wanting (``tdgen synth --gate --retries K``).

    After a batch is generated, ``score(fragment, frames)`` judges each clip on its frames as they
    will be written; a clip ``accept`` refuses is generated again, up to ``retries`` more times,
    with ``seed(clip seed, attempt)``, and ``best(scores)`` picks the attempt that is written.
    The runner knows nothing of detectors: the caller supplies these.
    """

    retries: int
    score: Callable[[ClipFragment, np.ndarray], Any]
    accept: Callable[[Any], bool]
    best: Callable[[list[Any]], int]
    seed: Callable[[int, int], int]


def _make_batch(batch: list[Clip], plan: SynthPlan, opts: SynthOptions, gen: Generator, size: tuple[int, int],
                ext: str, retry: Retry | None) -> list[tuple[np.ndarray, list[bytes], tuple[int, int], dict]]:
    """Per clip of ``batch``: (frames, encoded frames, (W, H), gate record), after any retries."""
    def render(clips: list[Clip], seeds: list[int]) -> list[tuple[np.ndarray, list[bytes], tuple[int, int]]]:
        frames = gen(clips, [plan.prompts[c.clip_id] for c in clips], seeds)
        out = []
        for clip, clip_frames in zip(clips, frames):
            wh = clip_size(clip, size)
            clip_frames = resize_frames(np.asarray(clip_frames), wh)
            out.append((clip_frames, [encode_image(f, ext, opts.quality) for f in clip_frames], wh))
        return out

    seeds = [plan.seeds[c.clip_id] for c in batch]
    first = render(batch, seeds)
    if retry is None:
        return [(f, e, wh, {}) for f, e, wh in first]
    attempts = [[(a, seeds[i])] for i, a in enumerate(first)]
    scores = [[_judge(retry, batch[i], plan, opts, gen, a, ext)] for i, a in enumerate(first)]
    for attempt in range(1, retry.retries + 1):
        pending = [i for i in range(len(batch)) if not retry.accept(scores[i][-1])]
        if not pending:
            break
        new_seeds = [retry.seed(seeds[i], attempt) for i in pending]
        for i, seed, a in zip(pending, new_seeds, render([batch[i] for i in pending], new_seeds)):
            attempts[i].append((a, seed))
            scores[i].append(_judge(retry, batch[i], plan, opts, gen, a, ext))
    out = []
    for i in range(len(batch)):
        k = retry.best(scores[i])
        (f, e, wh), seed = attempts[i][k]
        out.append((f, e, wh, {"gate_attempts": len(attempts[i]), "gate_attempt": k, "gate_seed": int(seed)}))
    return out


def _judge(retry: Retry, clip: Clip, plan: SynthPlan, opts: SynthOptions, gen: Generator,
           made: tuple[np.ndarray, list[bytes], tuple[int, int]], ext: str) -> Any:
    """The judge's score of one attempt, on the frames as a reader of the output will see them."""
    frames, encoded, wh = made
    if ext == "jpg":  # JPEG changes pixels: judge what is written, not what was generated
        from ..imageops import opencv

        cv2 = opencv()
        frames = np.stack([cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)[..., ::-1] for b in encoded])
    names = [f"{i + 1:06d}.{ext}" for i in range(clip.num_frames)]
    return retry.score(_fragment(clip, plan, opts, gen, wh, names, 0.0), frames)


def _generate(sd: SynthDir, todo: list[Clip], plan: SynthPlan, opts: SynthOptions, gen: Generator,
              size: tuple[int, int], skipped: int, total: int,
              progress: Callable[[int, int, int], None] | None,
              retry: Retry | None = None) -> tuple[int, int, list[str], bool]:
    """Generate and write ``todo`` in batches: (clips written, frames written, clip ids failed, interrupted)."""
    ext = "jpg" if opts.image_format in ("jpg", "jpeg") else "png"
    done, failed, interrupted = 0, [], False
    frames_done = 0
    with _Interrupts() as intr:
        try:
            for batch in _batches(todo, opts.batch_size):
                tb = time.perf_counter()
                try:
                    made = _make_batch(batch, plan, opts, gen, size, ext, retry)
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad batch must not lose a night's run
                    failed.extend(c.clip_id for c in batch)
                    _log_failure(sd, batch, e)
                    continue
                per_clip = (time.perf_counter() - tb) / len(batch)
                for clip, (clip_frames, encoded, wh, gate_info) in zip(batch, made):
                    names = [f"{i + 1:06d}.{ext}" for i in range(clip.num_frames)]
                    fragment = _fragment(clip, plan, opts, gen, wh, names, per_clip)
                    if gate_info:
                        fragment.manifest.update(gate_info)
                    intr.writing = True
                    try:
                        wrote = sd.write_clip(clip.clip_id, encoded, names, fragment)
                    finally:
                        intr.writing = False
                    if wrote:
                        if opts.preview:  # the preview reads only the clip's size from its fragment
                            _write_preview(sd, clip, clip_frames, {"video": {"width": wh[0], "height": wh[1]}})
                        done += 1
                        frames_done += clip.num_frames
                        if progress:
                            progress(skipped + done, total, frames_done)
                    intr.after_write()
        except KeyboardInterrupt:
            interrupted = True
    return done, frames_done, failed, interrupted


def _log_failure(sd: SynthDir, batch: list[Clip], err: Exception) -> None:
    line = json.dumps({"time": time.time(), "clips": [c.clip_id for c in batch],
                       "error": f"{type(err).__name__}: {err}"})
    sd.log_failure(line)


def _write_preview(sd: SynthDir, clip: Clip, frames: np.ndarray, fragment: dict) -> None:
    """An mp4 per clip with boxes and ids drawn, plus a one-row PNG sheet (``--preview``)."""
    from .. import preview as pv

    w, h = fragment["video"]["width"], fragment["video"]["height"]
    scale = np.array([w, h, w, h], np.float64)
    xyxy = clip.boxes.astype(np.float64) * scale
    xywh = np.concatenate([xyxy[..., :2], xyxy[..., 2:] - xyxy[..., :2]], -1)
    labels = [f"{n}" for n in clip.category_names] + [""] * (clip.num_slots - clip.num_tracks)
    ids = np.arange(1, clip.num_slots + 1)
    out = sd.root / "preview"
    out.mkdir(exist_ok=True)
    pv.preview_clip(frames, xywh, clip.mask, ids, labels, out / f"{clip.clip_id}.mp4")
    sheet = pv.clip_sheet(frames, xywh, clip.mask, ids, labels)
    from ..atomic import atomic_write_bytes

    atomic_write_bytes(out / f"{clip.clip_id}.png", encode_image(sheet, "png", 0))
