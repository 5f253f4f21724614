"""``tdgen synth``: plan clips from an annotation file, generate them in batches, write outputs.

The runner is independent of the model: it calls a *generator* (``clips, prompts, seeds ->
frames``), which is the TrackDiffusion pipeline in real runs and a cheap stand-in in tests of
resuming and sharding.
"""

from __future__ import annotations

import hashlib
import json
import math
import signal
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Protocol, Sequence

import numpy as np

from ..prompts import load_captions as _load_captions
from ..prompts import make_prompt
from ..tracks.classes import MOT_IGNORE_CLASSES, ClassFilter, classes_except, is_mot_categories
from ..tracks.clips import Clip, ClipSpec, clip_seed, plan_clips, select_clips, stable_shard
from ..errors import UsageError
from ..launch import current_launch
from ..tracks.io import read_tracks
from ..tracks.trackset import TrackSet
from .finalize import finalize
from .outputs import SynthDir, encode_image

__all__ = ["SynthOptions", "Generator", "run_synth", "plan_synth", "summarize_plan", "plan_only", "plan_line",
           "plan_lines", "shard_from_env", "parse_shard", "make_prompt", "validate_options", "MAX_STEPS"]

MAX_STEPS = 1000  # the schedulers' training timesteps: more sampler steps than that cannot be taken


class Generator(Protocol):
    """What the runner needs from a model."""

    model_id: str
    model_hash: str
    resolution: tuple[int, int]  # (W, H) the model generates at
    dtype: str

    def __call__(self, clips: Sequence[Clip], prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        """(B, F, H, W, 3) uint8 RGB frames."""


@dataclass
class SynthOptions:
    ann: Path
    out: Path
    frames: int = 16
    stride: int | None = None
    step: int = 1
    slots: int = 20
    overflow: str = "longest"
    min_tracks: int = 1
    videos: tuple[str, ...] = ()
    max_clips: int | None = None
    seed: int = 0
    batch_size: int = 4
    steps: int = 50
    guidance: float = 5.0
    guidance_kind: str = "cfg"
    prompt_template: str = "a video of {categories}"
    captions: Path | None = None
    out_size: tuple[int, int] | Literal["source"] | None = None  # (W, H), or each source video's own size
    image_format: str = "png"
    quality: int = 95
    flavor: str = "mmdet"
    mot: bool = False
    preview: bool = False
    overwrite: bool = False
    shard: tuple[int, int] | None = None  # (k, n)
    drop_boxes: bool = False  # ablation: generate with every box dropped
    classes: tuple[str, ...] | None = None  # categories to generate (default: the training targets)
    min_conf: float | None = None  # boxes below this conf are not generated (default: 1 for MOT data)


class SynthWarning(UserWarning):
    """Something the user should know about a synth plan (shown as one ``warning:`` line)."""


def target_filter(opts: SynthOptions, ts: TrackSet) -> ClassFilter:
    """Which boxes ``synth`` generates: the training targets.

    For MOT ground truth the default is the target classes with conf 1 (every class but the
    people a tracker is never scored on: static, on a vehicle, distractors, reflections, crowds;
    and never a conf-0 ignore row), so those take no slot and no prompt word; the ByteTrack
    flavour keeps pedestrians only, as ByteTrack's converter. Other sources keep everything.
    ``--classes``/``--min-conf`` replace the defaults. Boxes that are not generated are left out of
    the output annotations.
    """
    f = ClassFilter.for_flavor(opts.flavor, ts.source_format, ts.categories)
    if ts.source_format == "mot" or is_mot_categories(ts.categories):
        if opts.flavor != "bytetrack":
            f = ClassFilter(classes=classes_except(ts.categories, [n for n in MOT_IGNORE_CLASSES
                                                                   if any(c["name"] == n for c in ts.categories)]),
                            min_conf=1.0, ignore_as="drop", origin="the MOT training targets")
        f = replace(f, renumber=False)  # synth keeps the source's category ids
    f = f.with_options(classes=opts.classes, min_conf=opts.min_conf)
    return f.check(ts.categories)


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> (K, N) with 0 <= K < N."""
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard {text}: need 0 <= K < N")
    return k, n


def _int_in(flag: str, value: Any, lo: int, hi: int | None = None, hi_text: str | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{flag} must be an integer, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        want = f"in {lo}..{hi_text or hi}" if hi is not None else f"at least {lo}"
        raise UsageError(f"{flag} {value}: must be {want}")


def validate_options(opts: SynthOptions) -> None:
    """Refuse bad settings with a one-line :class:`UsageError` naming the flag.

    Called before anything is read, loaded or written, so a refused command leaves no trace and
    the corrected one just works.
    """
    _int_in("--frames", opts.frames, 1)
    if opts.stride is not None:
        _int_in("--stride", opts.stride, 1)
    _int_in("--step", opts.step, 1)
    _int_in("--slots", opts.slots, 1)
    if opts.overflow not in ("longest", "largest", "split"):
        raise UsageError(f"--overflow must be longest, largest or split, got {opts.overflow!r}")
    _int_in("--min-tracks", opts.min_tracks, 0)
    if opts.max_clips is not None:
        _int_in("--max-clips", opts.max_clips, 1)
    _int_in("--seed", opts.seed, 0, (1 << 63) - 1, "2**63-1")
    _int_in("--batch-size", opts.batch_size, 1)
    if opts.min_conf is not None and (isinstance(opts.min_conf, bool) or not math.isfinite(opts.min_conf)):
        raise UsageError(f"--min-conf must be a finite number, got {opts.min_conf!r}")
    _int_in("--steps", opts.steps, 1, MAX_STEPS)
    g = opts.guidance
    if isinstance(g, bool) or not isinstance(g, (int, float, np.floating)) or not math.isfinite(g) or g < 0:
        raise UsageError(f"--cfg {g}: must be a finite number >= 0 (1 = no guidance)")
    if opts.guidance_kind not in ("cfg", "rescaled"):
        raise UsageError(f"--guidance-kind must be cfg or rescaled, got {opts.guidance_kind!r}")
    if opts.image_format not in ("png", "jpg", "jpeg"):
        raise UsageError(f"--image-format must be png or jpg, got {opts.image_format!r}")
    # the value only matters for jpg, but an impossible one is a mistake whatever the format
    _int_in("--quality", opts.quality, 1, 100)
    if opts.flavor not in ("mmdet", "bytetrack"):
        raise UsageError(f"--flavor must be mmdet or bytetrack, got {opts.flavor!r}")
    if opts.out_size is not None and opts.out_size != "source":
        if len(opts.out_size) != 2:
            raise UsageError(f"--out-size must be (width, height), got {opts.out_size!r}")
        for v in opts.out_size:
            _int_in("--out-size", v, 8, 16384)
    if opts.shard is not None:
        _check_shard(opts.shard, "--shard")
    if any(not isinstance(v, str) or not v for v in opts.videos):
        raise UsageError("--videos: names must be non-empty")


def _check_shard(shard: tuple[int, int], source: str) -> None:
    try:
        k, n = shard
        ok = all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in (k, n)) and 0 <= k < n
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UsageError(f"{source} {shard!r}: need 0 <= K < N")


def shard_from_env() -> tuple[int, int] | None:
    """(rank, world size) when launched by ``torchrun`` or ``accelerate launch`` with > 1 process."""
    return current_launch().shard


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


@dataclass
class SynthPlan:
    ts: TrackSet
    clips: list[Clip]  # every planned clip, all shards, in plan order
    order: dict[str, int]
    prompts: dict[str, str]
    seeds: dict[str, int]
    settings: dict[str, Any] = field(default_factory=dict)


def plan_synth(opts: SynthOptions) -> SynthPlan:
    """Read the annotations and cut them into the clips to generate (all shards)."""
    ts = read_tracks(opts.ann)
    filt = target_filter(opts, ts)
    if not filt.is_noop:
        ts, report = filt.apply(ts)
        if report.dropped or report.ignored:
            warnings.warn(f"{opts.ann}: generating {filt.describe()}: {report.summary()}", SynthWarning,
                          stacklevel=2)
    spec = ClipSpec(frames=opts.frames, stride=opts.stride, step=opts.step, max_slots=opts.slots,
                    overflow=opts.overflow, min_tracks=opts.min_tracks)
    clips = plan_clips(ts, spec, videos=list(opts.videos) or None)
    clips = select_clips(clips, opts.max_clips, opts.seed)
    if not clips:
        raise UsageError(f"{opts.ann}: no clip of {opts.frames} frames with at least {opts.min_tracks} track(s); "
                         "try fewer --frames or --min-tracks 0")
    captions = _load_captions(opts.captions)
    prompts = {c.clip_id: make_prompt(c, opts.prompt_template, captions) for c in clips}
    seeds = {c.clip_id: clip_seed(opts.seed, c.clip_id) for c in clips}
    return SynthPlan(ts=ts, clips=clips, order={c.clip_id: i for i, c in enumerate(clips)}, prompts=prompts,
                     seeds=seeds)


# Rough bytes per pixel of an encoded frame, for the plan's size estimate only (generated frames are
# smoother than photos; real sizes vary with content by a factor of about two either way).
_BYTES_PER_PIXEL = {"png": 1.5, "jpg": 0.4}
_SHOWN_IDS = 8  # dropped track ids named in the one-line summary (all are in --json and the manifest)


def summarize_plan(plan: SynthPlan, opts: SynthOptions, *, shard: tuple[int, int] | None = None,
                   size: tuple[int, int] | None = None) -> dict[str, Any]:
    """What a plan will make, as a JSON-ready dict (nothing is read or written).

    ``clips``, ``videos``, ``tracks_per_clip`` (min/median/max), ``dropped_tracks`` (tracks a
    clip could not hold, total), ``dropped_targets`` (of those, training targets),
    ``clips_with_drops``, ``dropped`` (clip id -> dropped source track ids, only clips that
    dropped some), ``categories_used`` and ``source_sizes`` (what the clips use, for the
    model-domain check), then for this ``shard`` (all clips when None): ``assigned_clips``,
    ``frames_to_write`` and, with a known ``size`` (W, H), ``estimated_bytes`` (a rough guess).
    """
    from .domain import clip_inputs

    clips = plan.clips
    categories_used, source_sizes = clip_inputs(clips)
    tracks = np.asarray([c.num_tracks for c in clips], dtype=np.int64)
    dropped = {c.clip_id: [int(t) for t in c.dropped_track_ids] for c in clips if c.dropped_track_ids.size}
    mine = [c for c in clips if shard is None or stable_shard(c.clip_id, shard[1]) == shard[0]]
    frames = int(sum(c.num_frames for c in mine))
    ext = "jpg" if opts.image_format in ("jpg", "jpeg") else "png"
    estimate = None
    if size is not None:
        per_pixel = _BYTES_PER_PIXEL[ext] + (_BYTES_PER_PIXEL["jpg"] if opts.mot and ext == "png" else 0.0)
        estimate = int(sum(c.num_frames * _clip_size(c, size)[0] * _clip_size(c, size)[1] for c in mine)
                       * per_pixel)
    return {
        "clips": len(clips),
        "videos": len({c.video for c in clips}),
        "frames_per_clip": int(opts.frames),
        "slots": int(opts.slots),
        "overflow": opts.overflow,
        "tracks_per_clip": {"min": int(tracks.min()), "median": float(np.median(tracks)), "max": int(tracks.max())}
        if tracks.size else {"min": 0, "median": 0.0, "max": 0},
        "dropped_tracks": int(sum(len(v) for v in dropped.values())),
        "dropped_targets": int(sum(c.dropped_targets for c in clips)),
        "clips_with_drops": len(dropped),
        "dropped": dropped,
        "shard": list(shard) if shard is not None else None,
        "assigned_clips": len(mine),
        "frames_to_write": frames,
        "size": size if size is None or size == "source" else list(size),
        "image_format": ext,
        "mot": bool(opts.mot),
        "estimated_bytes": estimate,
        "categories_used": categories_used,
        "source_sizes": [list(wh) for wh in source_sizes],
    }


def _dropped_text(summary: dict[str, Any]) -> str:
    n = summary["dropped_tracks"]
    if not n:
        return "no track dropped"
    named, shown = [], 0
    for cid, ids in summary["dropped"].items():
        if shown >= _SHOWN_IDS:
            break
        take = ids[:_SHOWN_IDS - shown]
        named.append(f"{cid}: {' '.join(map(str, take))}" + (" ..." if len(take) < len(ids) else ""))
        shown += len(take)
    more = " ..." if len(named) < summary["clips_with_drops"] else ""
    targets = summary["dropped_targets"]
    return (f"{n} track(s) dropped ({targets} training target(s)) in {summary['clips_with_drops']} clip(s), more "
            f"than --slots {summary['slots']} with --overflow {summary['overflow']}: {'; '.join(named)}{more}")


def plan_line(summary: dict[str, Any]) -> str:
    """The plan in one line (printed to stderr before generating)."""
    t = summary["tracks_per_clip"]
    return (f"plan: {summary['clips']} clip(s) of {summary['frames_per_clip']} frames from {summary['videos']} "
            f"video(s), tracks per clip {t['min']}/{t['median']:g}/{t['max']} (min/median/max); "
            f"{_dropped_text(summary)}")


def _bytes_text(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def plan_lines(summary: dict[str, Any]) -> list[str]:
    """The plan for ``--plan-only``: clips, tracks, drops, frames to write, output size."""
    t = summary["tracks_per_clip"]
    lines = [f"clips: {summary['clips']} of {summary['frames_per_clip']} frames from {summary['videos']} video(s), "
             f"{summary['slots']} slots, --overflow {summary['overflow']}",
             f"tracks per clip: min {t['min']}, median {t['median']:g}, max {t['max']}",
             _dropped_text(summary)]
    where = f" (shard {summary['shard'][0]}/{summary['shard'][1]}: {summary['assigned_clips']} clips)" \
        if summary["shard"] else ""
    size = summary["size"]
    out = f"frames to write: {summary['frames_to_write']:,}{where}"
    if size == "source":
        out += f" at each source video's own size, {summary['image_format']}"
    elif size:
        out += f" at {size[0]}x{size[1]} {summary['image_format']}"
        if summary["mot"] and summary["image_format"] == "png":
            out += " (+ jpg copies in mot/)"
        out += f", about {_bytes_text(summary['estimated_bytes'])}"
    lines.append(out)
    return lines


def plan_only(opts: SynthOptions, *, resolution: tuple[int, int] | None = None) -> dict[str, Any]:
    """The plan summary of a run with ``opts``, made without a model and without touching ``opts.out``.

    ``resolution`` (W, H) is the model's, used when ``opts.out_size`` is not set.
    """
    validate_options(opts)
    shard = opts.shard or shard_from_env()
    if shard is not None:
        _check_shard(shard, "--shard" if opts.shard else "RANK/WORLD_SIZE")
    return summarize_plan(plan_synth(opts), opts, shard=shard, size=opts.out_size or resolution)


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
    }


def _fragment(clip: Clip, plan: SynthPlan, opts: SynthOptions, gen: Generator, size: tuple[int, int],
              names: list[str], seconds: float) -> dict[str, Any]:
    w, h = size
    ts = plan.ts
    f_idx, s_idx = np.nonzero(clip.mask > 0)
    xyxy = clip.boxes[f_idx, s_idx].astype(np.float64) * np.array([w, h, w, h], np.float64)
    bbox = np.stack([xyxy[:, 0], xyxy[:, 1], xyxy[:, 2] - xyxy[:, 0], xyxy[:, 3] - xyxy[:, 1]], 1)
    bbox = np.round(bbox, 2)
    rows = clip.box_rows[f_idx, s_idx]
    vis = ts.boxes.visibility[rows].tolist() if ts.boxes.visibility is not None else None
    conf = ts.boxes.conf[rows].tolist() if ts.boxes.conf is not None else None
    fps_col = ts.videos.fps
    fps = None if fps_col is None or np.isnan(fps_col[clip.video]) else float(fps_col[clip.video]) / clip.step
    ext = opts.image_format if opts.image_format != "jpeg" else "jpg"
    return {
        "clip_id": clip.clip_id,
        "order": plan.order[clip.clip_id],
        "slots": int(clip.num_slots),
        "video": {"name": clip.clip_id, "width": w, "height": h, "fps": fps},
        "frames": [{"file_name": f"images/{clip.clip_id}/{n}", "number": i + 1} for i, n in enumerate(names)],
        "boxes": {"frame": f_idx.tolist(), "slot": s_idx.tolist(), "bbox": bbox.tolist(),
                  "category": clip.categories[s_idx].tolist(), "visibility": vis, "conf": conf},
        "categories": ts.categories,
        "manifest": {
            "clip_id": clip.clip_id, "order": plan.order[clip.clip_id], "source": str(opts.ann),
            "source_video": clip.video_name, "first_frame": int(clip.frame_numbers[0]),
            "last_frame": int(clip.frame_numbers[-1]), "frame_step": int(clip.step),
            "frames": int(clip.num_frames), "tracks": int(clip.num_tracks),
            "source_track_ids": [int(t) for t in clip.track_ids],
            "dropped_tracks": int(clip.dropped_track_ids.size),
            "dropped_track_ids": [int(t) for t in clip.dropped_track_ids], "prompt": plan.prompts[clip.clip_id],
            "seed": int(plan.seeds[clip.clip_id]), "model_id": gen.model_id, "model_hash": gen.model_hash,
            "steps": opts.steps, "guidance": float(opts.guidance), "guidance_kind": opts.guidance_kind,
            "width": w, "height": h, "seconds": round(float(seconds), 4), "ext": ext,
        },
    }


def _clip_size(clip: Clip, size: tuple[int, int] | str) -> tuple[int, int]:
    """The (W, H) a clip's frames are written at: ``size``, or with ``"source"`` its video's own."""
    if size != "source":
        return size  # type: ignore[return-value]
    if clip.width <= 0 or clip.height <= 0:
        raise UsageError(f"--out-size source: video {clip.video_name!r} has no known frame size; pass --out-size WxH")
    return int(clip.width), int(clip.height)


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    w, h = size
    if frames.shape[2] == w and frames.shape[1] == h:
        return frames
    interp = cv2.INTER_AREA if w < frames.shape[2] else cv2.INTER_CUBIC
    return np.stack([cv2.resize(f, (w, h), interpolation=interp) for f in frames])


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_synth(
    opts: SynthOptions,
    make_generator: Callable[[], Generator],
    *,
    progress: Callable[[int, int, int], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_plan: Callable[[dict], None] | None = None,
) -> SynthResult:
    """Generate every planned clip of this shard that is not finished yet, then finalize.

    Flags are checked first, then the plan is made and ``make_generator`` is called, all before
    anything is written (the generator must expose the model id and hash for the settings
    record). The output directory is then held for this shard for the whole run (see
    :mod:`tdgen.synth.outputs`): another run on it is refused with the holder's PID.
    ``progress(done, total, frames)`` is called after each batch; ``on_start(total,
    already_done)`` once planning is done; ``on_plan(summary)`` just before, with
    :func:`summarize_plan`'s dict (dropped tracks included), once the directory is claimed: a
    refused run reports nothing but its error.
    """
    t0 = time.perf_counter()
    validate_options(opts)
    shard = opts.shard or shard_from_env()
    if shard is not None:
        _check_shard(shard, "--shard" if opts.shard else "RANK/WORLD_SIZE")
    held = shard or (0, 1)
    sd = SynthDir(opts.out)
    sd.preflight(held, overwrite=opts.overwrite)  # fail before the model loads, creating nothing
    plan = plan_synth(opts)
    gen = make_generator()
    size = opts.out_size or gen.resolution
    plan_summary = summarize_plan(plan, opts, shard=shard, size=size)
    with sd.session(_settings(opts, plan, gen, size), held, overwrite=opts.overwrite):
        mine = [c for c in plan.clips if shard is None or stable_shard(c.clip_id, shard[1]) == shard[0]]
        sd.discard_unfinished([c.clip_id for c in mine])
        finished = sd.finished_ids()
        todo = [c for c in mine if c.clip_id not in finished]
        skipped = len(mine) - len(todo)
        if on_plan:
            on_plan(plan_summary)
        if on_start:
            on_start(len(mine), skipped)
        done, failed, interrupted = _generate(sd, todo, plan, opts, gen, size, skipped, len(mine), progress)
        summary = finalize(opts.out, flavor=opts.flavor, mot=opts.mot, jpeg_quality=opts.quality) \
            if (done or skipped or not interrupted) else None
    return SynthResult(planned=len(plan.clips), assigned=len(mine), done=done, skipped=skipped, failed=failed,
                       seconds=round(time.perf_counter() - t0, 3), interrupted=interrupted, finalized=summary,
                       out=str(opts.out), plan=plan_summary)


def _generate(sd: SynthDir, todo: list[Clip], plan: SynthPlan, opts: SynthOptions, gen: Generator,
              size: tuple[int, int], skipped: int, total: int,
              progress: Callable[[int, int, int], None] | None) -> tuple[int, list[str], bool]:
    """Generate and write ``todo`` in batches: (clips written, clip ids failed, interrupted)."""
    ext = "jpg" if opts.image_format in ("jpg", "jpeg") else "png"
    done, failed, interrupted = 0, [], False
    frames_done = 0
    with _Interrupts() as intr:
        try:
            for batch in _batches(todo, opts.batch_size):
                tb = time.perf_counter()
                try:
                    frames = gen(batch, [plan.prompts[c.clip_id] for c in batch],
                                 [plan.seeds[c.clip_id] for c in batch])
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # noqa: BLE001 - one bad batch must not lose a night's run
                    failed.extend(c.clip_id for c in batch)
                    _log_failure(sd, batch, e)
                    continue
                per_clip = (time.perf_counter() - tb) / len(batch)
                for clip, clip_frames in zip(batch, frames):
                    clip_size = _clip_size(clip, size)
                    clip_frames = _resize(np.asarray(clip_frames), clip_size)
                    names = [f"{i + 1:06d}.{ext}" for i in range(clip.num_frames)]
                    encoded = [encode_image(f, ext, opts.quality) for f in clip_frames]
                    fragment = _fragment(clip, plan, opts, gen, clip_size, names, per_clip)
                    intr.writing = True
                    try:
                        wrote = sd.write_clip(clip.clip_id, encoded, names, fragment)
                    finally:
                        intr.writing = False
                    if wrote:
                        if opts.preview:
                            _write_preview(sd, clip, clip_frames, fragment)
                        done += 1
                        frames_done += clip.num_frames
                    intr.after_write()
                if progress:
                    progress(skipped + done, total, frames_done)
        except KeyboardInterrupt:
            interrupted = True
    return done, failed, interrupted


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
