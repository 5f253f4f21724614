"""Peak memory of `tdgen model import-official` against the size of the source UNet file.

    python benchmarks/import_memory.py [--keep DIR] [--no-bin]

Builds synthetic published-style TrackDiffusion UNet checkpoints (random values, the published
diffusers 0.21 config.json) in a temporary directory:

* tiny:   the tiny test configuration (a few MB);
* medium: block_out_channels (320, 640), one layer per block, cross_attention_dim 768: about
  570 MB of fp32 safetensors (written tensor by tensor, so building it needs little memory);
* medium .bin: the same tensors as a torch.save file (ModelScope ships .bin);
* medium without enhancer: the medium checkpoint without injectors, frame/identity embeddings and
  motion extractor (like TrackDiffusion_Pretrain), so those modules are made fresh.

Each import runs in a child process (itself started by a fresh helper process, so
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is that one import's peak). The child reports its own
baseline, the peak RSS right after ``import tdgen.weights`` (torch, diffusers loaded). Printed:
peak - baseline against the source UNet file size; acceptance: below 1.5x.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _child_import(args: dict) -> None:
    """Grandchild: measure the baseline, run the import, print the baseline (KiB)."""
    import tdgen.weights as weights  # noqa: F401  (torch, diffusers and tdgen loaded: the baseline)

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    report = weights.import_official(args["unet"], args["base"], args["out"], resolution=(384, 256), frames=16)
    print(json.dumps({"baseline_kib": baseline, "seconds": time.perf_counter() - t0,
                      "fresh": sum(c.fresh for c in report.groups.values()), "tensors": report.tensors}))


def _child_measure(args: dict) -> None:
    """Child: run one import in a grandchild and report its peak RSS (KiB)."""
    r = subprocess.run([sys.executable, __file__, "--_import", json.dumps(args)], capture_output=True, text=True)
    if r.returncode:
        print(json.dumps({"error": r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "failed"}))
        return
    result = json.loads(r.stdout.strip().splitlines()[-1])
    result["peak_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(result))


def _published_config(cfg: dict) -> dict:
    n = len(cfg["block_out_channels"])
    return {
        "_class_name": "UNet3DConditionModel", "_diffusers_version": "0.21.0.dev0", "act_fn": "silu",
        "attention_head_dim": cfg["attention_head_dim"], "attention_type": "gated",
        "block_out_channels": list(cfg["block_out_channels"]), "cross_attention_dim": cfg["cross_attention_dim"],
        "down_block_types": ["CrossAttnDownBlock3D"] * (n - 1) + ["DownBlock3D"], "downsample_padding": 1,
        "in_channels": 4, "layers_per_block": cfg["layers_per_block"], "mid_block_scale_factor": 1,
        "norm_eps": 1e-05, "norm_num_groups": cfg["norm_num_groups"], "out_channels": 4, "sample_size": 32,
        "up_block_types": ["UpBlock3D"] + ["CrossAttnUpBlock3D"] * (n - 1),
    }


def _write_checkpoint(folder: Path, cfg: dict, *, fmt: str = "safetensors", drop_groups=()) -> Path:
    """A published-style UNet directory with random values, written one tensor at a time."""
    import torch

    from tdgen.model import TrackDiffusionUNet, key_group
    from tdgen.weights.safetensors_stream import safetensors_order, write_safetensors

    with torch.device("meta"):
        model = TrackDiffusionUNet(**cfg)
    specs = [(k, v.dtype, tuple(v.shape)) for k, v in model.state_dict().items() if key_group(k) not in drop_groups]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(_published_config(cfg), indent=2))
    g = torch.Generator().manual_seed(0)

    def make(key: str) -> torch.Tensor:
        shape = next(s for k, _, s in specs if k == key)
        return torch.randn(shape, generator=g) * 0.02

    if fmt == "safetensors":
        write_safetensors(folder / "diffusion_pytorch_model.safetensors", safetensors_order(specs), make)
        return folder / "diffusion_pytorch_model.safetensors"
    state = {k: make(k) for k, _, _ in specs}
    torch.save(state, folder / "diffusion_pytorch_model.bin")
    return folder / "diffusion_pytorch_model.bin"


def _write_base(folder: Path, text_width: int) -> Path:
    """A small 'Stable Diffusion 1.x' directory whose CLIP text encoder is ``text_width`` wide."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from tdgen.modeldir import init_tiny_model, tiny_component_configs

    init_tiny_model(folder, resolution=(64, 64), frames=4)
    if text_width != 32:
        cfg = tiny_component_configs(text_width=text_width, text_layers=1)["text_encoder"]
        cfg["num_attention_heads"] = 12
        shutil.rmtree(folder / "text_encoder")
        CLIPTextModel(CLIPTextConfig(**cfg)).save_pretrained(folder / "text_encoder", safe_serialization=True)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, default=None, help="build the checkpoints here and keep them")
    ap.add_argument("--no-bin", action="store_true", help="skip the .bin case")
    ap.add_argument("--_import", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--_measure", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._import:
        return _child_import(json.loads(args._import))
    if args._measure:
        return _child_measure(json.loads(args._measure))

    from tdgen.model import full_config, tiny_config

    tmp = Path(tempfile.mkdtemp(prefix="tdgen-import-mem-")) if args.keep is None else args.keep
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        print("building sources ...", file=sys.stderr)
        tiny_cfg = tiny_config(cross_attention_dim=32)
        medium_cfg = full_config(block_out_channels=(320, 640), layers_per_block=1)
        lacks = ("injectors", "null_track_feat", "motion_extractor", "frame_embeddings", "instance_embedding")
        bases = {32: _write_base(tmp / "base-32", 32), 768: _write_base(tmp / "base-768", 768)}
        cases = [
            ("tiny", _write_checkpoint(tmp / "tiny" / "unet", tiny_cfg), 32),
            ("medium", _write_checkpoint(tmp / "medium" / "unet", medium_cfg), 768),
            ("medium, no enhancer", _write_checkpoint(tmp / "pretrain" / "unet", medium_cfg, drop_groups=lacks), 768),
        ]
        if not args.no_bin:
            cases.append(("medium .bin", _write_checkpoint(tmp / "medium-bin" / "unet", medium_cfg, fmt="bin"), 768))

        print(f"{'case':<22} {'source UNet':>12} {'baseline':>10} {'peak':>10} {'peak-base':>10} {'ratio':>6} "
              f"{'fresh':>6} {'time':>7}  acceptance (< 1.5x)")
        for name, weights, width in cases:
            out = tmp / "out" / name.replace(" ", "_").replace(",", "").replace(".", "")
            shutil.rmtree(out, ignore_errors=True)
            job = {"unet": str(weights.parent), "base": str(bases[width]), "out": str(out)}
            r = subprocess.run([sys.executable, __file__, "--_measure", json.dumps(job)], capture_output=True,
                               text=True, check=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            if "error" in res:
                print(f"{name:<22} failed: {res['error']}")
                continue
            size = weights.stat().st_size / 2**20
            base, peak = res["baseline_kib"] / 1024, res["peak_kib"] / 1024
            ratio = (peak - base) / size
            print(f"{name:<22} {size:>9.1f} MB {base:>7.0f} MB {peak:>7.0f} MB {peak - base:>7.0f} MB {ratio:>5.2f}x "
                  f"{res['fresh']:>6} {res['seconds']:>6.1f}s  {'ok' if ratio < 1.5 else 'FAIL'}")
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
