"""Seconds per clip of `tdgen synth` on this CPU with the tiny model: UNet time vs everything else.

    python benchmarks/synth_cpu.py [--clips 6] [--steps 50] [--cfg 5.0] [--batch-size 2] [--threads N]

Builds the tiny random model (128x128, 8 frames, 20 slots) and a small MOT-style split in a
temporary directory, then runs the real synth path (plan -> TrackDiffusionPipeline -> PNG frames,
fragments, annotations.json, manifest.parquet) with the default sampler settings. Prints, per clip:
the UNet forwards, the rest of the pipeline (text encoder, noise, scheduler, guidance, VAE decode)
and the runner's own work (image encoding and writing, fragments, finalize), each as a share of the
wall time. The baseline measured in the same run is the UNet alone: the ratio total/UNet says how
close the whole command is to the cost of the network it cannot avoid.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "synth"))

from make_mot import write_mot_split  # noqa: E402

from tdgen.modeldir import init_tiny_model  # noqa: E402
from tdgen.synth import SynthOptions, run_synth  # noqa: E402
from tdgen.synth.generator import PipelineGenerator  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--cfg", type=float, default=5.0)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = init_tiny_model(tmp / "model", seed=0, resolution=(128, 128), frames=8)
        ann = write_mot_split(tmp / "mot", lengths=(48, 40), tracks=(8, 6))
        gens: list[PipelineGenerator] = []

        def make():
            g = PipelineGenerator(model, device="cpu", dtype="float32", steps=args.steps, guidance=args.cfg)
            gens.append(g)
            return g

        # warm-up (first-call allocations, oneDNN primitive creation) on a throw-away output
        warm = SynthOptions(ann=ann, out=tmp / "warm", frames=8, slots=20, steps=2, guidance=args.cfg,
                            max_clips=1, batch_size=1)
        run_synth(warm, make)
        gens.clear()

        opts = SynthOptions(ann=ann, out=tmp / "synth", frames=8, slots=20, steps=args.steps, guidance=args.cfg,
                            max_clips=args.clips, batch_size=args.batch_size)
        t0 = time.perf_counter()
        result = run_synth(opts, make)
        wall = time.perf_counter() - t0
        timings = gens[0].timings
        n = result.done
        unet = sum(t["unet_s"] for t in timings)
        text = sum(t["text_s"] for t in timings)
        vae = sum(t["vae_s"] for t in timings)
        sampler_other = sum(t["other_s"] for t in timings)
        gen_wall = sum(t["wall_s"] for t in timings)
        runner = wall - gen_wall
        other = wall - unet

    print(f"tiny model, 128x128, 8 frames, 20 slots, {args.steps} steps, cfg {args.cfg}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} threads, {n} clips")
    print(f"{'part':<34}{'s/clip':>10}{'share':>9}")
    rows = [
        ("UNet forwards (baseline)", unet),
        ("text encoder (cache misses)", text),
        ("noise, scheduler, guidance", sampler_other),
        ("VAE decode", vae),
        ("runner: PNG encode+write, fragments", runner),
    ]
    for name, v in rows:
        print(f"{name:<34}{v / n:>10.3f}{v / wall:>9.1%}")
    print(f"{'total wall':<34}{wall / n:>10.3f}{1:>9.1%}")
    print(f"everything but the UNet: {other / n:.3f} s/clip = {other / wall:.1%} of the total "
          f"(target < 10%); total / UNet = {wall / unet:.3f}x")


if __name__ == "__main__":
    main()
