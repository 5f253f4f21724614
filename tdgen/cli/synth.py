"""``tdgen synth``: generate clips that follow an annotation file's tracklets."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import typer

from ..errors import UsageError
from ._app import app, handle_errors
from ._options import (BoxAction, BoxActionOpt, Captions, Detections, Detector, Flavor, Frames, GateLevel, GateLevelOpt,
                       Iou, MinBoxIou, MinRecall, Prompt)
from ._output import Progress, duration_text, emit_json, warn

@app.command()
@handle_errors
def synth(
    ann: Optional[Path] = typer.Option(None, "--ann", "-a", help="Tracklets to follow: COCO-VID JSON, MOT "
                                       "directory or YouTube-VIS JSON."),
    out: Path = typer.Option(..., "--out", "-o", help="Output directory (frames, annotations.json, "
                             "manifest.parquet). Re-running the same command resumes."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model directory, or a preset name "
                                        "(tiny = random weights, to try the pipeline)."),
    frames: Frames = None,
    stride: Optional[int] = typer.Option(None, "--stride", help="Source frames between clip starts "
                                         "(default: frames x step, no overlap)."),
    step: int = typer.Option(1, "--step", help="Take every STEP-th source frame."),
    slots: Optional[int] = typer.Option(None, "--slots", help="Tracks per clip (default: the model's, 20)."),
    overflow: str = typer.Option("longest", "--overflow", help="More tracks than slots: 'longest' (default) or "
                                 "'largest' keep training targets first (not crowd/ignore, conf > 0), then the "
                                 "tracks present in most frames, or with the largest boxes; 'split' makes "
                                 "several clips so no track is left out. Left-out tracks are named in the plan "
                                 "line, --json and manifest.parquet."),
    min_tracks: int = typer.Option(1, "--min-tracks", help="Skip windows with fewer tracks."),
    videos: List[str] = typer.Option([], "--videos", help="Only these source videos (repeatable)."),
    max_clips: Optional[int] = typer.Option(None, "--max-clips", help="At most this many clips (a seeded sample)."),
    seed: int = typer.Option(0, "--seed", help="Run seed: each clip's seed derives from it and the clip id."),
    batch_size: int = typer.Option(4, "--batch-size", "-b", help="Clips per batch (text encoding, decoding and "
                                   "writing are batched; a clip's frames never depend on it)."),
    unet_batch: int = typer.Option(1, "--unet-batch", help="Clips per UNet forward. Above 1 it can be faster on "
                                   "a GPU with a small model, but the kernels then round differently, so a "
                                   "clip's frames change by a few levels with the batch it lands in."),
    preset: Optional[str] = typer.Option(None, "--preset", metavar="default|fast", help="Sampler preset: "
                                         "'default' (DPM-Solver++ 50 steps, CFG 5.0, as published) or 'fast' (25 "
                                         "steps: half the time, recall within 0.02 on the shapes benchmark; see "
                                         "the README). --steps/--cfg override it."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Sampler steps (DPM-Solver++; default 50, or the "
                                        "preset's)."),
    cfg: Optional[float] = typer.Option(None, "--cfg", help="Classifier-free guidance scale (1 = no guidance; "
                                        "default 5.0, or the preset's)."),
    guidance_kind: str = typer.Option("cfg", "--guidance-kind", help="cfg, or rescaled (the published demo's "
                                      "norm-rescaled guidance; use with --cfg 1.2 for its weights)."),
    prompt: Prompt = None,
    captions: Captions = None,
    out_size: Optional[str] = typer.Option(None, "--out-size", help="Resize frames (and boxes) to WxH, or "
                                           "'source' for each source video's own size (default: the model's "
                                           "resolution)."),
    image_format: str = typer.Option("png", "--image-format", help="png or jpg."),
    quality: int = typer.Option(95, "--quality", help="JPEG quality, 1..100."),
    flavor: Flavor = typer.Option(Flavor.mmdet, "--flavor", help="annotations.json flavour."),
    mot: bool = typer.Option(False, "--mot", help="Also write MOT Challenge sequences in OUT/mot/<clip>/ "
                             "(seqinfo.ini, img1/000001.jpg, gt/gt.txt; jpg frames are hard links, png frames "
                             "get jpg copies), as ByteTrack's and mmdet's MOT converters read them."),
    preview: bool = typer.Option(False, "--preview", help="Also write an mp4 and a PNG sheet per clip with "
                                 "boxes and ids drawn (preview/)."),
    shard: Optional[str] = typer.Option(None, "--shard", help="K/N: generate only shard K of N (stable by clip "
                                        "id). Under torchrun/accelerate launch the shard is the process rank."),
    finalize_only: bool = typer.Option(False, "--finalize", help="Only rebuild annotations.json and "
                                       "manifest.parquet from the finished clips."),
    plan_only: bool = typer.Option(False, "--plan-only", "--dry-run", help="Only print the plan (clips, tracks "
                                   "per clip, dropped tracks, frames to write, output size): no model is "
                                   "loaded and OUT is not created. With --json, one JSON object."),
    device: Optional[str] = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda if "
                                         "available (this process's local rank under a launcher), else cpu)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32, fp16 or bf16 (default: fp32 on cpu, "
                                        "fp16 on cuda)."),
    compile_unet: bool = typer.Option(False, "--compile", help="torch.compile the UNet (one graph, compiled "
                                      "before anything is written; minutes on a CPU). Frames match a run without "
                                      "it to within float rounding, not bit for bit."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Start over in an --out made with other settings."),
    drop_boxes: bool = typer.Option(False, "--drop-boxes", help="Ablation: generate with every box dropped "
                                    "(the model sees no layout) while annotations.json still lists the "
                                    "tracklets, so 'tdgen eval' shows what the boxes contribute."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Categories to generate, comma-separated "
                                          "(default: the training targets; for MOT data every class but static "
                                          "people, people on vehicles, distractors, reflections and crowds, or "
                                          "only pedestrians with --flavor bytetrack). Other boxes take no slot "
                                          "and no prompt word, and are left out of the annotations."),
    min_conf: Optional[float] = typer.Option(None, "--min-conf", help="Generate only boxes with at least this "
                                             "conf (default: 1 for MOT data, so conf-0 ignore rows take no slot)."),
    ignore_as: str = typer.Option("drop", "--ignore-as", metavar="drop|crowd", help="Boxes that are not "
                                  "generated (conf-0 ignore rows, crowds, distractors, other classes): leave them "
                                  "out (drop), or write them into annotations.json as iscrowd=1 ignore regions "
                                  "(crowd), as trackers' loaders expect. They never take a slot."),
    gate: bool = typer.Option(False, "--gate", help="Check every clip with a detector before it counts (see "
                              "`tdgen gate --help`): clips below --min-recall are generated again with a new "
                              "seed up to --retries times (the best attempt is kept), then rejected clips are "
                              "moved to OUT/rejected/ and annotations.json lists only what was kept."),
    retries: int = typer.Option(0, "--retries", help="With --gate: attempts after the first for a clip the gate "
                                "rejects (seeds derived from the clip's seed and the attempt, recorded)."),
    detector: Detector = None,
    detections: Detections = None,
    min_recall: MinRecall = 0.5,
    iou: Iou = 0.5,
    gate_level: GateLevelOpt = GateLevel.clip,
    min_box_iou: MinBoxIou = 0.3,
    box_action: BoxActionOpt = BoxAction.drop,
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress (dropped tracks are still reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print a one-line JSON summary at the end."),
) -> None:
    """Generate synthetic clips that follow the tracklets of ANN, with annotations that match them.

      tdgen synth --ann mot17_half_train.json --out synth/ --model tiny --max-clips 4

    Frames go to OUT/images/<clip>/, one annotation fragment per clip to OUT/clips/, and
    OUT/annotations.json (COCO-VID) plus OUT/manifest.parquet are rebuilt at the end. A killed
    run resumes where it stopped when the same command is run again. One run holds OUT at a
    time (the ranks of one torchrun/accelerate launch or --shard K/N share it); another is
    refused with the holder's PID.

    When a window has more tracks than --slots, --overflow longest/largest keeps training
    targets first (tracks that are not crowd/ignore regions and have conf > 0), then the
    longest/largest tracks. Every track left out is counted and named: in the plan line on
    stderr, in --json (plan.dropped) and in manifest.parquet (dropped_track_ids). --plan-only
    shows the plan without a model.
    """
    from ..synth import finalize, run_synth
    from ..synth.options import SynthOptions, options_with_model, parse_shard, shard_from_env, validate_options
    from ..synth.domain import parse_out_size
    from ..synth.sampler_presets import resolve_sampler
    from ..tracks.classes import parse_class_list

    steps, cfg = resolve_sampler(preset, steps, cfg)

    if finalize_only:
        # refuses a folder without a synth run; --quality sets the jpg copies of png frames in mot/
        summary = finalize(out, flavor=flavor.value, mot=mot, jpeg_quality=quality)
        if as_json:
            emit_json(summary)
        else:
            print(f"wrote {summary['paths']['annotations']}: {summary['clips']} clips, {summary['frames']:,} frames, "
                  f"{summary['boxes']:,} boxes")
        return
    if ann is None:
        raise UsageError("--ann is required (the annotation file whose tracklets the clips follow)")
    from ..synth.generator import check_generator_flags

    gate_setup = _gate_setup(gate, retries, detector, detections, min_recall, iou, gate_level.value, min_box_iou,
                             box_action.value)
    # Every flag is checked before a model is resolved or anything is written; frames, slots and
    # the prompt template left None are the model's.
    opts = SynthOptions(
        ann=ann, out=out, frames=frames, stride=stride, step=step, slots=slots, overflow=overflow,
        min_tracks=min_tracks, videos=tuple(videos), max_clips=max_clips, seed=seed, batch_size=batch_size,
        steps=steps, guidance=cfg, guidance_kind=guidance_kind, prompt_template=prompt, captions=captions,
        out_size=parse_out_size(out_size), image_format=image_format, quality=quality, flavor=flavor.value, mot=mot,
        preview=preview, overwrite=overwrite, shard=parse_shard(shard) if shard else None, drop_boxes=drop_boxes,
        classes=parse_class_list(classes) if classes is not None else None, min_conf=min_conf,
        ignore_as=ignore_as, gate=gate_setup["record"] if gate_setup else None)
    validate_options(opts)
    if prompt is not None:
        from ..prompts import parse_template

        parse_template(prompt, source="--prompt template")
    check_generator_flags(device=device, dtype=dtype, guidance_kind=guidance_kind, unet_batch=unet_batch)
    if shard and shard_from_env():
        raise UsageError("--shard cannot be combined with a torchrun/accelerate launch (the rank is the shard)")
    if plan_only:
        from ..synth.plan import plan_model_record, plan_lines
        from ..synth.plan import plan_only as make_plan

        md = plan_model_record(model, opts)  # tdgen.json only, and only when the flags leave something open
        opts = options_with_model(opts, md)
        plan = make_plan(opts, resolution=md.get("resolution"))
        warn(_domain_warnings(md, plan, opts.out_size))
        if as_json:
            emit_json(plan)
        else:
            print("\n".join(plan_lines(plan)))
        return
    from ..launch import current_launch, default_dtype, pick_device
    from ..modeldir import default_model, model_defaults

    model = model if model is not None else default_model()
    device = pick_device(device)
    dtype = default_dtype(device, dtype)
    md = model_defaults(model)
    opts = options_with_model(opts, md)
    main_rank = current_launch().is_main
    report = _SynthProgress(Progress("synth", enabled=not (quiet or as_json) and main_rank),
                            batch_size=batch_size)

    def make_generator():
        from ..synth import generator

        # looked up here, at call time: tests stand a fake in for the model
        g = generator.PipelineGenerator(model, device=device, dtype=dtype, steps=steps, guidance=cfg,
                                        guidance_kind=guidance_kind, slots=opts.slots, frames=opts.frames,
                                        unet_batch=unet_batch, drop_boxes=drop_boxes, on_step=report.step,
                                        **({"compile": True} if compile_unet else {}))
        return g

    def on_plan(plan: dict) -> None:
        from ..synth.plan import plan_line

        # a dropped track is never silent: even --quiet reports it (once per launch: the plan is the
        # same on every rank)
        if main_rank and (not quiet or plan["dropped_tracks"]):
            print(("warning: " if quiet else "") + plan_line(plan), file=sys.stderr, flush=True)
        warn(_domain_warnings(md, plan, opts.out_size))

    retry = None
    if gate_setup:
        from ..gate.factory import make_detector

        # fails before anything is written
        gate_setup["detector"] = make_detector(gate_setup["detector_name"], gate_setup["detections"])
        from ..gate.retry import gate_retry

        retry = gate_retry(gate_setup["detector"], gate_setup["policy"], iou=gate_setup["iou"],
                           retries=retries) if retries else None
    with report.progress:
        result = run_synth(opts, make_generator, progress=report.clip, on_start=report.start, on_plan=on_plan,
                           retry=retry)
    gated = None
    if gate_setup and result.finalized and not result.interrupted:
        if opts.shard or shard_from_env():
            # the other shards may still be writing: the gate decides once every clip is there
            warn([f"--gate with shards: each shard retried its own clips; run `tdgen gate {out}` with the same "
                  "gate flags once every shard has finished, to apply the decisions"], as_json)
        else:
            from ..gate.apply import gate_synth_dir

            gated = gate_synth_dir(out, gate_setup["detector"], gate_setup["policy"], iou=gate_setup["iou"])
    if as_json:
        emit_json({**result.as_dict(), **({"gate": gated["report"]["totals"]} if gated else {})})
    elif not quiet:
        fin = result.finalized or {}
        rate = (f" ({result.frames_per_s:.2f} frames/s, {result.clips_per_min:.2f} clips/min)"
                if result.frames_per_s is not None else "")
        listed = (f"{fin.get('clips', 0)} clips in {out / 'annotations.json'}" if result.finalized is not None else
                  "annotations.json is left to the last shard to finish (or `tdgen synth --finalize`)")
        print(f"{result.done} clips generated, {result.skipped} already done, {len(result.failed)} failed "
              f"in {result.seconds:.1f} s{rate}; {listed}")
        if gated:
            t = gated["report"]["totals"]
            print(f"gate: kept {t['kept']} of {t['clips']} clips ({t['rejected']} rejected, moved to "
                  f"{out / 'rejected'}); annotations.json lists the kept ones; report in {out / 'gate_report.json'}")
    if result.interrupted:
        raise typer.Exit(130)
    if result.failed:
        print(f"error: {len(result.failed)} clips failed (see {out / 'failures.jsonl'}); run again to retry them",
              file=sys.stderr)
        raise typer.Exit(1)


def _gate_setup(gate: bool, retries: int, detector: Optional[str], detections: Optional[Path], min_recall: float,
                iou: float, level: str, min_box_iou: float, box_action: str) -> Optional[dict]:
    """The gate's policy and settings record from the flags (checked), or None without --gate."""
    if not gate:
        if retries:
            raise UsageError("--retries needs --gate (it regenerates clips the gate rejects)")
        if detector is not None or detections is not None:
            raise UsageError("--detector/--detections need --gate")
        return None
    from ..gate.factory import detector_choice
    from ..gate.policy import GatePolicy
    from ..gate.score import check_iou

    if isinstance(retries, bool) or retries < 0 or retries > 20:
        raise UsageError(f"--retries {retries}: must be in 0..20")
    detector, detections = detector_choice(detector, detections, default="shapes")
    policy = GatePolicy(level=level, min_recall=min_recall, min_box_iou=min_box_iou, box_action=box_action)
    iou = check_iou(iou)
    record = {"detector": detector if detections is None else f"detections:{Path(detections).resolve()}",
              "iou": iou, "retries": int(retries), **policy.as_dict()}
    return {"policy": policy, "iou": iou, "retries": int(retries), "record": record, "detector_name": detector,
            "detections": detections}


def _domain_warnings(md: dict, plan: dict, out_size: Any) -> list[str]:
    """The model-domain warnings of a plan (``md``: :func:`tdgen.modeldir.model_defaults`)."""
    from ..synth.domain import domain_warnings

    if md.get("domain") is None:
        return []
    return domain_warnings(md["domain"], plan["categories_used"], [tuple(s) for s in plan["source_sizes"]],
                           out_size, md["label"])


class _SynthProgress:
    """Clips done (frames/s, ETA) and, within a batch, the denoising step (s/step).

    On a terminal both show as a bar; in a log (stderr not a terminal) a line is written per
    finished clip and, during a long batch, one every 30 s with the step reached.
    """

    def __init__(self, progress: Progress, *, batch_size: int) -> None:
        self.progress = progress
        self.batch_size = batch_size
        self.task: Optional[int] = None
        self.total = self.done = self.done_before = 0
        self.t0 = self.first_step_at = 0.0
        self.step_seconds: Optional[float] = None  # the current batch's mean, carried into the next

    def start(self, total: int, already: int) -> None:
        self.total, self.done, self.done_before = total, already, already
        self.t0 = time.perf_counter()
        self.task = self.progress.add("synth", total=total, completed=already, unit="clips",
                                      info=f"{already} already done" if already else "")

    def step(self, index: int, steps: int, clips: int) -> None:
        """The generator finished denoising step ``index`` (0-based) of ``steps`` for a batch of ``clips``."""
        if self.task is None:
            return
        now = time.perf_counter()
        if index == 0:
            # the time to a batch's first step also holds text encoding and the previous batch's
            # decoding and writing: keep the last estimate (the first batch has no other)
            self.first_step_at = now
            per_step = self.step_seconds if self.step_seconds is not None else now - self.t0
        else:
            per_step = (now - self.first_step_at) / index
        self.step_seconds = per_step
        batches_after = -(-max(self.total - self.done - clips, 0) // self.batch_size)
        eta = ((steps - index - 1) + batches_after * steps) * per_step
        self.progress.update(self.task, info=f"batch of {clips}: step {index + 1}/{steps}, {per_step:.2f} s/step, "
                             f"ETA {duration_text(eta)}")

    def clip(self, done: int, total: int, frames: int) -> None:
        if self.task is None:
            return
        self.done = done
        elapsed = time.perf_counter() - self.t0
        new = done - self.done_before
        eta = (total - done) * elapsed / new if new else None
        rate = f"{frames / elapsed:.2f} frames/s" if elapsed > 0 else ""
        self.progress.update(self.task, completed=done, total=total, info=f"{rate}, ETA {duration_text(eta)}",
                             line=True)
