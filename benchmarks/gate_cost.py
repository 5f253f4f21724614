"""What the gate costs beside generation: detector seconds per clip vs generation seconds per clip.

    python benchmarks/gate_cost.py [--clips 4] [--model default] [--steps 50] [--threads N]

Renders a few shapes clips (8 frames, 128x128) into a temporary directory, generates the same
clips with ``--model`` (default: the bundled shapes model) through the real synth path, then runs
the gate's shapes detector and scoring on the generated clips. Prints seconds per clip of each and
the ratio gate/generation, measured in the same run: the share of a gated run that the gate adds
per attempt.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from tdgen.gate.apply import read_frames
from tdgen.gate.factory import make_detector
from tdgen.gate.score import score_trackset
from tdgen.modeldir import default_model
from tdgen.shapes.render import render_shapes
from tdgen.synth import SynthOptions, run_synth
from tdgen.synth.fragments import read_fragment
from tdgen.synth.generator import PipelineGenerator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--model", default=None, help="model directory or preset (default: the bundled model)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or default_model()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        render_shapes(root / "src", videos=args.clips, frames=8, size=(128, 128), seed=3)
        gen = PipelineGenerator(model, steps=args.steps)
        opts = SynthOptions(ann=root / "src" / "annotations.json", out=root / "out", frames=8, slots=gen.slots,
                            steps=args.steps, batch_size=1, prompt_template="a video of {categories}")
        t = time.perf_counter()
        result = run_synth(opts, lambda: gen)
        gen_s = (time.perf_counter() - t) / max(result.done, 1)

        detector = make_detector("shapes", None)
        frags = [read_fragment(p) for p in sorted((root / "out" / "clips").glob("*.json"))]
        t = time.perf_counter()
        recalls = []
        for frag in frags:
            frames = read_frames(frag.trackset, root / "out" / "images" / frag.manifest["clip_id"])
            score = score_trackset(frag.trackset, detector.detect_clip(frames, frag.manifest["clip_id"]))
            recalls.append(score.recall)
        gate_s = (time.perf_counter() - t) / max(len(frags), 1)
    print(f"clips: {len(frags)} (8 frames, 128x128), model {Path(str(model)).name}, {args.steps} steps, "
          f"{torch.get_num_threads()} threads")
    print(f"generation: {gen_s:8.3f} s per clip")
    print(f"gate:       {gate_s:8.3f} s per clip (read frames, shapes detector, scoring); "
          f"mean recall {sum(recalls) / max(len(recalls), 1):.3f}")
    print(f"ratio gate/generation: {gate_s / gen_s:.4f} (each retry costs one more generation)")


if __name__ == "__main__":
    main()
