"""Planning a ``tdgen synth`` run: which boxes are generated, the clips, prompts and seeds, and
the plan summary printed before (or instead of, with ``--plan-only``) generating.

Nothing here loads a model or writes a file.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..errors import UsageError
from ..prompts import load_captions as _load_captions
from ..prompts import make_prompt
from ..tracks.classes import MOT_IGNORE_CLASSES, ClassFilter, classes_except, is_mot_categories
from ..tracks.clips import Clip, ClipSpec, clip_seed, plan_clips, select_clips, stable_shard
from ..tracks.io import read_tracks
from ..tracks.trackset import Boxes, TrackSet
from .options import SynthOptions, SynthWarning, run_shard, validate_options

__all__ = ["SynthPlan", "target_filter", "plan_synth", "summarize_plan", "plan_line", "plan_lines", "plan_only",
           "plan_model_record",
           "clip_size"]


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
    f = f.with_options(classes=opts.classes, min_conf=opts.min_conf,
                       ignore_as="crowd" if opts.ignore_as == "crowd" else None)  # type: ignore[arg-type]
    return f.check(ts.categories)


@dataclass
class SynthPlan:
    ts: TrackSet
    clips: list[Clip]  # every planned clip, all shards, in plan order
    order: dict[str, int]
    prompts: dict[str, str]
    seeds: dict[str, int]
    settings: dict[str, Any] = field(default_factory=dict)
    # iscrowd=1 boxes of ts.frames (ignore regions): never in a slot; written with --ignore-as crowd
    regions: Boxes | None = None


def plan_synth(opts: SynthOptions) -> SynthPlan:
    """Read the annotations and cut them into the clips to generate (all shards)."""
    ts = read_tracks(opts.ann)
    filt = target_filter(opts, ts)
    if not filt.is_noop:
        ts, report = filt.apply(ts)
        if report.dropped or report.ignored:
            warnings.warn(f"{opts.ann}: generating {filt.describe()}: {report.summary()}", SynthWarning,
                          stacklevel=2)
    # ignore regions (iscrowd) never take a slot: the clips are planned without them
    ts, regions = _split_regions(ts)
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
                     seeds=seeds, regions=regions if opts.ignore_as == "crowd" else None)


def _split_regions(ts: TrackSet) -> tuple[TrackSet, Boxes | None]:
    """``ts`` without its iscrowd boxes, and those boxes (None when there are none)."""
    crowd = ts.boxes.iscrowd != 0
    if not crowd.any():
        return ts, None
    return replace(ts, boxes=ts.boxes.take(np.flatnonzero(~crowd))), ts.boxes.take(np.flatnonzero(crowd))


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
        estimate = int(sum(c.num_frames * clip_size(c, size)[0] * clip_size(c, size)[1] for c in mine)
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
    shard = run_shard(opts)
    return summarize_plan(plan_synth(opts), opts, shard=shard, size=opts.out_size or resolution)


def clip_size(clip: Clip, size: tuple[int, int] | str) -> tuple[int, int]:
    """The (W, H) a clip's frames are written at: ``size``, or with ``"source"`` its video's own."""
    if size != "source":
        return size  # type: ignore[return-value]
    if clip.width <= 0 or clip.height <= 0:
        raise UsageError(f"--out-size source: video {clip.video_name!r} has no known frame size; pass --out-size WxH")
    return int(clip.width), int(clip.height)




def plan_model_record(model: str | None, opts: SynthOptions) -> dict[str, Any]:
    """What ``--plan-only`` needs from the model (:func:`tdgen.modeldir.model_defaults`' keys),
    read from its ``tdgen.json`` only (no weights), and not at all when the flags fix clip
    length, slots and output size."""
    from ..modeldir import DEFAULT_PROMPT_TEMPLATE, default_model, model_defaults

    if opts.frames is not None and opts.slots is not None and opts.out_size is not None:
        return {"frames": opts.frames, "slots": opts.slots, "prompt_template": DEFAULT_PROMPT_TEMPLATE,
                "resolution": None}
    return model_defaults(model if model is not None else default_model())
