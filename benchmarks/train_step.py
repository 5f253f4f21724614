"""Seconds per training step of the tiny configuration, tiny AutoencoderKL (4 latent channels)
against the space-to-depth autoencoder (192 channels), through ``tdgen.train.train``.

    python benchmarks/train_step.py [--size 128] [--frames 8] [--batch 2] [--steps 6] [--cache]

Renders a small shapes set, trains ``--steps`` steps from ``--init tiny`` with each autoencoder
(fp32, this machine's threads) and prints the median seconds of steps 2.. (step 1 warms up).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--cache", action="store_true", help="pre-encode latents (excludes VAE encoding)")
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--autoencoders", default="model,space-to-depth")
    ap.add_argument("--init", default="tiny", help="tiny, or a JSON file of UNet config fields")
    args = ap.parse_args()

    import torch

    from tdgen.shapes.render import render_shapes
    from tdgen.train.loop import TrainConfig, train

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "shapes"
        render_shapes(data, videos=4, frames=args.frames * 2, size=(args.size, args.size), seed=0)
        rows = {}
        for ae in args.autoencoders.split(","):
            cfg = TrainConfig(ann=data / "annotations.json", captions=data / "captions.json",
                              out=Path(tmp) / f"run-{ae}", init=args.init, autoencoder=ae,
                              resolution=(args.size, args.size), frames=args.frames, slots=20,
                              steps=args.steps, batch_size=args.batch, cache_latents=args.cache,
                              gradient_checkpointing=args.grad_checkpointing, ema_decay=0.999)
            t0 = time.perf_counter()
            train(cfg)
            total = time.perf_counter() - t0
            log = [json.loads(x) for x in (cfg.out / "train_log.jsonl").read_text().splitlines()]
            secs = [x["seconds"] for x in log[1:]] or [log[0]["seconds"]]
            unet = json.loads((cfg.out / "model" / "unet" / "config.json").read_text())
            rows[ae] = {"latent_channels": unet["in_channels"], "step_s_median": round(statistics.median(secs), 3),
                        "step_s_min": round(min(secs), 3), "first_step_s": log[0]["seconds"],
                        "run_s": round(total, 1)}
    print(json.dumps({"init": args.init, "size": args.size, "frames": args.frames, "batch": args.batch,
                      "cache": args.cache,
                      "grad_checkpointing": args.grad_checkpointing, "threads": torch.get_num_threads(),
                      "results": rows}, indent=2))


if __name__ == "__main__":
    main()
