"""The trainability benchmark: does training on generated clips make a detector and tracker better?

Protocol (the TrackDiffusion paper's Table A7, with the baseline given as many steps as every
other arm):

* a real training set rendered by ``tdgen shapes`` (``--train-seed``, default 3: the bundled
  model was trained on seed-1 videos and evaluated on seed 2, so seed 3 is a set neither has
  seen) and a held-out real test set (``--heldout-seed``, default 4), never trained on by anyone;
* generated clips: ``tdgen synth`` with the bundled model (default sampler) on the tracklets of
  the *whole* real training set, one clip per video; the gated copy is the same clips after
  ``tdgen gate --gate-level both --box-action ignore`` (the shapes detector; weak clips
  rejected, weak boxes kept as ignore regions so the detector is neither taught nor punished there);
* arms: real only at ``--fractions`` of the training videos (a prefix: video k is the same in
  every set); real at ``--mix-fraction`` + generated; the same + gated; generated only.
  Every arm trains a fresh detector for the same ``--steps`` with the same ``--batch-size``
  (frames drawn uniformly from the arm's pool, as a merged training set would be), once per seed;
* every arm is scored on the same held-out clips by the same code: detection recall and
  precision at IoU 0.5 (detections scoring at least the tracker's high threshold), then the
  ByteTrack-style tracker's MOT result files through :func:`tdgen.evaluate.tracker_eval.evaluate_tracks`
  (what ``tdgen eval --tracks`` runs: HOTA, MOTA, IDF1 by TrackEval). Boxes less than 40%
  visible are ignored in scoring and training, as in ``tdgen eval``.

Everything is cached in the work directory: rendered sets, generated clips (a rerun skips
finished clips; a killed synth resumes), and each finished (arm, seed) run's scores.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import TdgenError, UsageError
from .data import FrameSet, load_frameset

__all__ = ["BenchConfig", "Arm", "arms_for", "real_videos", "run_benchmark", "detection_scores", "format_table",
           "config_from_args", "main", "METRICS"]

# every arm's scores, in the table's order: (key, label)
METRICS = [("det_recall", "recall"), ("det_precision", "precision"), ("hota", "HOTA"), ("mota", "MOTA"),
           ("idf1", "IDF1"), ("id_switches", "IDsw")]
MIN_VISIBILITY = 0.4  # as tdgen eval: boxes mostly hidden behind other shapes are ignored


@dataclass(frozen=True)
class Arm:
    """One training mix: ``real`` a fraction of the real training videos, ``generated`` None, "synth" or "gated"."""

    name: str
    real: float
    generated: str | None


@dataclass(frozen=True)
class BenchConfig:
    """Sizes, seeds and budgets of one run (the command line's flags; defaults: the README's run)."""

    work: Path
    out: Path
    train_videos: int = 24
    frames: int = 8
    train_seed: int = 3
    heldout_videos: int = 20
    heldout_frames: int = 16
    heldout_seed: int = 4
    fractions: tuple[float, ...] = (0.1, 0.5)
    mix_fraction: float = 0.1
    model: str | None = None  # None: the bundled model
    synth_steps: int = 50
    synth_seed: int = 0
    steps: int = 400
    batch_size: int = 16
    seeds: tuple[int, ...] = (0, 1, 2)
    threads: int = 1
    min_recall: float = 0.5
    min_box_iou: float = 0.3
    tiny: bool = False

    def check(self) -> None:
        """One-line UsageErrors for bad settings, before anything is created."""
        for name in ("train_videos", "frames", "heldout_videos", "heldout_frames", "synth_steps", "steps",
                     "batch_size", "threads"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for f in (*self.fractions, self.mix_fraction):
            if not 0 < f <= 1:
                raise UsageError(f"real-data fractions must be in (0, 1], got {f}")
        if not self.seeds:
            raise UsageError("--seeds: give at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise UsageError(f"--seeds: repeated seed in {list(self.seeds)}")
        if self.train_seed == self.heldout_seed:
            raise UsageError("--train-seed and --heldout-seed must differ (the test set must be held out)")
        if self.out.exists() and self.out.is_dir():
            raise UsageError(f"--out {self.out}: is a directory (give the JSON file to write)")


def arms_for(cfg: BenchConfig) -> list[Arm]:
    """The arms: real only at each fraction, real + generated, real + gated, generated only."""
    pct = lambda f: f"{round(f * 100):d}%"  # noqa: E731
    arms = [Arm(f"real {pct(f)}", f, None) for f in cfg.fractions]
    m = pct(cfg.mix_fraction)
    arms += [Arm(f"real {m} + generated", cfg.mix_fraction, "synth"),
             Arm(f"real {m} + gated", cfg.mix_fraction, "gated"),
             Arm("generated only", 0.0, "synth")]
    return arms


def real_videos(cfg: BenchConfig, fraction: float) -> int:
    """Videos of the real set an arm with this fraction gets (at least one when the fraction is > 0)."""
    return 0 if fraction <= 0 else max(1, int(round(fraction * cfg.train_videos)))


# --------------------------------------------------------------------------- data
def _render(out: Path, videos: int, frames: int, seed: int, log: Callable[[str], None]) -> Path:
    from ..shapes.render import render_shapes

    if (out / "annotations.json").is_file():
        return out
    t = time.perf_counter()
    render_shapes(out, videos=videos, frames=frames, size=(128, 128), seed=seed, overwrite=out.exists())
    log(f"rendered {videos} videos x {frames} frames (seed {seed}) to {out} in {time.perf_counter() - t:.1f}s")
    return out


def _synth(cfg: BenchConfig, real: Path, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """``tdgen synth`` of every real training video, through the library (same code path as the CLI)."""
    from ..modeldir import default_model, model_defaults
    from ..synth import run_synth
    from ..synth.options import SynthOptions, options_with_model

    model = cfg.model if cfg.model is not None else default_model()
    opts = SynthOptions(ann=real / "annotations.json", out=out, frames=cfg.frames, slots=None,
                        prompt_template=None, captions=real / "captions.json", seed=cfg.synth_seed,
                        batch_size=1, steps=cfg.synth_steps, out_size=(128, 128))
    opts = options_with_model(opts, model_defaults(model))

    def make_generator():
        from ..synth import generator

        # looked up at call time, as the CLI does: tests stand a fake in for the model
        return generator.PipelineGenerator(model, steps=cfg.synth_steps, slots=opts.slots, frames=opts.frames)

    t_last = [time.perf_counter()]

    def progress(done: int, total: int, frames: int) -> None:
        if time.perf_counter() - t_last[0] > 60 or done == total:
            t_last[0] = time.perf_counter()
            log(f"synth: {done}/{total} clips")

    res = run_synth(opts, make_generator, progress=progress)
    if res.failed:
        raise TdgenError(f"synth: {res.failed} clips failed (see {out / 'failures.jsonl'}); run again to retry")
    if res.interrupted:
        raise TdgenError("synth interrupted; run again to resume")
    log(f"synth: {res.done} clips generated, {res.skipped} already there, {res.generate_seconds:.0f}s generating")
    import pyarrow.parquet as pq

    # what every clip cost when it was made, also when this run found them all cached
    per_clip = pq.read_table(out / "manifest.parquet", columns=["seconds"]).column("seconds").to_pylist()
    return {"model": str(model), "steps": cfg.synth_steps, "seed": cfg.synth_seed, "clips": res.assigned,
            "generated_now": res.done, "skipped": res.skipped, "generate_seconds": res.generate_seconds,
            "clip_seconds_total": round(float(sum(x for x in per_clip if x is not None)), 1)}


def _gate(cfg: BenchConfig, synth: Path, gated: Path, log: Callable[[str], None]) -> dict[str, Any]:
    """A fresh copy of the synth output, gated (clip and box level) with the shapes detector."""
    from ..gate.apply import gate_synth_dir
    from ..gate.factory import make_detector
    from ..gate.policy import GatePolicy

    tmp = gated.with_name(gated.name + ".tmp")
    for p in (tmp, gated):
        if p.exists():
            shutil.rmtree(p)
    shutil.copytree(synth, tmp)
    tmp.rename(gated)
    policy = GatePolicy(level="both", min_recall=cfg.min_recall, min_box_iou=cfg.min_box_iou, box_action="ignore")
    res = gate_synth_dir(gated, make_detector("shapes", None), policy, iou=0.5)
    totals = res["report"]["totals"]
    log(f"gate: kept {totals['kept']} of {totals['clips']} clips")
    return {"policy": policy.as_dict(), "detector": "shapes", **{k: totals.get(k) for k in ("clips", "kept",
                                                                                              "rejected")}}


# --------------------------------------------------------------------------- scoring
def detection_scores(sets: FrameSet, detections: Sequence[tuple[np.ndarray, np.ndarray]], min_score: float,
                     iou: float = 0.5) -> dict[str, Any]:
    """Recall and precision at ``iou`` of the detections scoring >= ``min_score``; ignore boxes excluded
    (a detection on an ignore box is neither a hit nor a false positive)."""
    from ..evaluate.metrics import ignored_detections, match_boxes

    tp = n_gt = n_det = 0
    for gt, ign, (boxes, scores) in zip(sets.boxes, sets.ignore, detections):
        det = boxes[scores >= min_score]
        rows, cols, _ = match_boxes(gt, det, iou)
        rest = np.setdiff1d(np.arange(len(det)), cols)
        on_ignored = ignored_detections(ign, det[rest], iou)
        tp += len(rows)
        n_gt += len(gt)
        n_det += len(rows) + int((~on_ignored).sum())
    return {"det_recall": round(tp / n_gt, 4) if n_gt else None,
            "det_precision": round(tp / n_det, 4) if n_det else None, "gt": n_gt, "det": n_det, "tp": tp}


def _score_run(model: Any, heldout: FrameSet, heldout_ann: Path, run_dir: Path) -> dict[str, Any]:
    import torch

    from ..evaluate.tracker_eval import evaluate_tracks
    from .detector import detect_frames
    from .tracker import ByteTrackConfig, byte_track, write_mot_results

    tcfg = ByteTrackConfig()
    frames = torch.from_numpy(heldout.images).permute(0, 3, 1, 2).contiguous()
    dets = detect_frames(model, frames, min_score=tcfg.low)
    scores = detection_scores(heldout, dets, tcfg.high)
    results = run_dir / "tracks"
    results.mkdir(parents=True, exist_ok=True)
    for v, name in enumerate(heldout.videos):
        rows = heldout.video_frames(v)
        write_mot_results(results / f"{name}.txt", byte_track([dets[i] for i in rows], tcfg))
    ev = evaluate_tracks(heldout_ann, results, min_visibility=MIN_VISIBILITY)
    keep = ("hota", "deta", "assa", "mota", "idf1", "id_switches", "recall", "precision", "track_ap")
    return {**scores, **{k: ev.get(k) for k in keep}, "tracker": asdict(tcfg)}


# --------------------------------------------------------------------------- summary
def _stats(values: list[Any]) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    a = np.asarray(vals)
    return {"mean": round(float(a.mean()), 4), "std": round(float(a.std(ddof=1)) if a.size > 1 else 0.0, 4),
            "min": round(float(a.min()), 4), "max": round(float(a.max()), 4), "n": int(a.size)}


def format_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table: one row per arm, mean ± sample std over seeds."""
    head = ["arm", "real frames", "generated frames"] + [label for _, label in METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for arm in result["arms"]:
        cells = [arm["name"], f"{arm['real_frames']:,}", f"{arm['generated_frames']:,}"]
        for key, _ in METRICS:
            s = arm["summary"][key]
            if s["mean"] is None:
                cells.append("-")
            elif key == "id_switches":
                cells.append(f"{s['mean']:.1f} ± {s['std']:.1f}")
            else:
                cells.append(f"{s['mean']:.3f} ± {s['std']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run
def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] = lambda s: None) -> dict[str, Any]:
    """Run (or resume) the whole benchmark and write ``cfg.out``; returns the result."""
    import torch

    from ..atomic import atomic_write_text
    from .detector import Targets, TrainConfig, encode_targets, train_detector

    cfg.check()
    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    work = cfg.work
    work.mkdir(parents=True, exist_ok=True)
    real_dir = _render(work / f"real_seed{cfg.train_seed}_v{cfg.train_videos}_f{cfg.frames}", cfg.train_videos,
                       cfg.frames, cfg.train_seed, log)
    held_dir = _render(work / f"heldout_seed{cfg.heldout_seed}_v{cfg.heldout_videos}_f{cfg.heldout_frames}",
                       cfg.heldout_videos, cfg.heldout_frames, cfg.heldout_seed, log)
    model_tag = "bundled" if cfg.model is None else Path(cfg.model).name
    synth_dir = work / f"synth_{model_tag}_steps{cfg.synth_steps}_seed{cfg.synth_seed}_{real_dir.name}"
    t_synth = time.perf_counter()
    synth_info = _synth(cfg, real_dir, synth_dir, log)
    synth_info["wall_seconds"] = round(time.perf_counter() - t_synth, 1)
    gated_dir = synth_dir.with_name(synth_dir.name + "_gated")
    gate_info = _gate(cfg, synth_dir, gated_dir, log)

    pools = {"real": load_frameset(real_dir / "annotations.json", min_visibility=MIN_VISIBILITY),
             "synth": load_frameset(synth_dir / "annotations.json", min_visibility=MIN_VISIBILITY),
             "gated": load_frameset(gated_dir / "annotations.json", min_visibility=MIN_VISIBILITY)}
    heldout = load_frameset(held_dir / "annotations.json", min_visibility=MIN_VISIBILITY)
    targets = {k: encode_targets(p.boxes, p.ignore, (128, 128)) for k, p in pools.items() if len(p)}

    arms_out = []
    for arm in arms_for(cfg):
        nv = real_videos(cfg, arm.real)
        rows = np.flatnonzero(pools["real"].video < nv)
        parts = [(pools["real"], rows)]
        if arm.generated is not None:
            g = pools[arm.generated]
            parts.append((g, np.arange(len(g))))
        frames = torch.cat([torch.from_numpy(p.images[r]).permute(0, 3, 1, 2) for p, r in parts if len(r)])
        tg = [targets[k].take(torch.from_numpy(r)) for (p, r), k in zip(parts, ["real", arm.generated]) if len(r)]
        target = Targets(*(torch.cat([getattr(t, f) for t in tg]) for f in ("heatmap", "weight", "size", "offset",
                                                                            "centre")))
        n_real, n_gen = len(rows), len(frames) - len(rows)
        boxes_real = sum(len(pools["real"].boxes[i]) for i in rows)
        boxes_gen = pools[arm.generated].num_boxes if arm.generated else 0
        runs = []
        for seed in cfg.seeds:
            tc = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, seed=seed)
            run_dir = work / "runs" / arm.name.replace(" ", "_").replace("%", "pct").replace("+", "plus") / \
                f"seed{seed}"
            key = {"train": asdict(tc), "real_frames": n_real, "generated_frames": n_gen, "threads": cfg.threads,
                   "real": real_dir.name, "heldout": held_dir.name,
                   "generated": None if arm.generated is None else
                   (synth_dir.name if arm.generated == "synth" else gated_dir.name),
                   "gate": gate_info["policy"] if arm.generated == "gated" else None,
                   "kept": gate_info["kept"] if arm.generated == "gated" else None}
            cached = run_dir / "scores.json"
            if cached.is_file():
                old = json.loads(cached.read_text())
                if old.get("key") == key:
                    runs.append(old)
                    log(f"{arm.name} seed {seed}: cached")
                    continue
            model, rec = train_detector(frames, target, tc)
            scores = _score_run(model, heldout, held_dir / "annotations.json", run_dir)
            entry = {"key": key, "seed": seed, "train": rec, **scores}
            atomic_write_text(cached, json.dumps(entry, indent=1) + "\n")
            runs.append(entry)
            log(f"{arm.name} seed {seed}: {rec['seconds']:.0f}s training, loss {rec['final_loss']}, recall "
                f"{scores['det_recall']}, precision {scores['det_precision']}, HOTA {scores['hota']}, "
                f"MOTA {scores['mota']}, IDF1 {scores['idf1']}")
        arms_out.append({"name": arm.name, "real_fraction": arm.real, "real_videos": nv, "generated": arm.generated,
                         "real_frames": n_real, "generated_frames": n_gen, "real_boxes": int(boxes_real),
                         "generated_boxes": int(boxes_gen),
                         "summary": {k: _stats([r.get(k) for r in runs]) for k, _ in METRICS},
                         "runs": [{k: v for k, v in r.items() if k != "key"} for r in runs]})
    result = {
        "benchmark": "trainability",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()},
        "sets": {"real": {"dir": str(real_dir), "videos": cfg.train_videos, "frames": len(pools["real"]),
                          "boxes": pools["real"].num_boxes, "seed": cfg.train_seed},
                 "heldout": {"dir": str(held_dir), "videos": cfg.heldout_videos, "frames": len(heldout),
                             "boxes": heldout.num_boxes, "seed": cfg.heldout_seed},
                 "generated": {"dir": str(synth_dir), "frames": len(pools["synth"]),
                               "boxes": pools["synth"].num_boxes, **synth_info},
                 "gated": {"dir": str(gated_dir), "frames": len(pools["gated"]), "boxes": pools["gated"].num_boxes,
                           **gate_info}},
        "protocol": {"steps": cfg.steps, "batch_size": cfg.batch_size, "seeds": list(cfg.seeds),
                     "detection_iou": 0.5, "detection_min_score": 0.5, "min_visibility": MIN_VISIBILITY,
                     "threads": cfg.threads, "spread": "sample standard deviation over seeds"},
        "arms": arms_out,
        # this invocation (cached stages cost nothing) and what the whole work cost when it was made
        "seconds": round(time.perf_counter() - t0, 1),
        "train_seconds_total": round(sum(r["train"]["seconds"] for a in arms_out for r in a["runs"]), 1),
    }
    result["table"] = format_table(result)
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.out, json.dumps(result, indent=1) + "\n")
    return result


TINY = dict(train_videos=4, frames=8, heldout_videos=2, heldout_frames=8, synth_steps=2, steps=4, batch_size=4,
            seeds=(0,))


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="benchmarks/trainability.py",
                                 description="Real-only vs real + generated (gated and not) detector training "
                                             "on the shapes domain, scored on held-out real clips.")
    ap.add_argument("--work", type=Path, required=True, help="work directory (sets, generated clips, runs; reused)")
    ap.add_argument("--out", type=Path, default=None, help="result JSON (default WORK/result.json)")
    ap.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tiny sets, few steps, 1 seed)")
    ap.add_argument("--model", default=None, help="generator model directory or preset (default: the bundled one)")
    ap.add_argument("--train-videos", type=int, help="real training videos, 8 frames each (default 24)")
    ap.add_argument("--train-seed", type=int, help="tdgen shapes seed of the real training set (default 3)")
    ap.add_argument("--heldout-videos", type=int, help="held-out real videos (default 20)")
    ap.add_argument("--heldout-frames", type=int, help="frames per held-out video (default 16)")
    ap.add_argument("--heldout-seed", type=int, help="tdgen shapes seed of the held-out set (default 4)")
    ap.add_argument("--fractions", default=None, help="real-only fractions, comma-separated (default 0.1,0.5)")
    ap.add_argument("--mix-fraction", type=float, default=None, help="real fraction of the mixed arms (0.1)")
    ap.add_argument("--synth-steps", type=int, help="sampler steps (default 50; lower only for quick checks)")
    ap.add_argument("--steps", type=int, help="detector gradient steps per run, every arm (default 400)")
    ap.add_argument("--batch-size", type=int, help="frames per step, every arm (default 16)")
    ap.add_argument("--seeds", default=None, help="detector seeds, comma-separated (default 0,1,2)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default 1: a shared machine)")
    return ap


def _floats(text: str, flag: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers") from None


def config_from_args(argv: Sequence[str] | None = None) -> BenchConfig:
    """The :class:`BenchConfig` of a command line (``--tiny`` sets small defaults that flags still override)."""
    a = _parser().parse_args(argv)
    kw: dict[str, Any] = dict(TINY) if a.tiny else {}
    kw["tiny"] = a.tiny
    for name in ("model", "train_videos", "train_seed", "heldout_videos", "heldout_frames", "heldout_seed",
                 "mix_fraction", "synth_steps", "steps", "batch_size", "threads"):
        if getattr(a, name) is not None:
            kw[name] = getattr(a, name)
    if a.fractions is not None:
        kw["fractions"] = _floats(a.fractions, "--fractions")
    if a.seeds is not None:
        try:
            kw["seeds"] = tuple(int(x) for x in a.seeds.split(",") if x.strip())
        except ValueError:
            raise UsageError(f"--seeds {a.seeds!r}: expected comma-separated integers") from None
    cfg = BenchConfig(work=a.work, out=a.out if a.out is not None else a.work / "result.json", **kw)
    cfg.check()
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    """The benchmark's command line; returns the exit status (2 for bad usage, 1 for a failure)."""
    try:
        cfg = config_from_args(argv)

        def log(msg: str) -> None:
            print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

        result = run_benchmark(cfg, log)
    except TdgenError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    print(result["table"])
    print(f"{result['seconds']:.0f}s in all; wrote {cfg.out}")
    return 0
