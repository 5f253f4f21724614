"""Milliseconds per UNet step and seconds per video of the full-size UNet on a GPU: eager vs torch.compile.

    python benchmarks/gpu_sampling.py                      # any CUDA machine, about 8 minutes
    python benchmarks/gpu_sampling.py --model DIR          # real weights instead of random ones
    python benchmarks/gpu_sampling.py --tiny [--no-compile] # the tiny UNet on the CPU, in seconds

One configuration is a frame size, a dtype, a number of clips per UNet forward and eager or
compiled. Each clip's two guidance branches are batched, so the UNet batch is 2 x clips. Per
configuration the script measures ms per UNet step (CUDA events after warm-up), s per video at 50
steps with guidance (ms_per_step * 50 / clips / 1000), peak memory, UNet FLOPs per step (counted
once per shape on the meta device) and the fraction of the device's peak that achieves.

The baseline measured in the same run is the way the published pipeline samples: one clip per
forward, its two guidance branches as one batch of 2, eager, the first dtype. Every row is given
as ratios against the baseline of its frame size (speed-up of s/video, memory): ratios, not
absolute claims. A configuration that runs out of memory or fails to compile is a row with its
error. Eager rows run first; compiled ones stop starting once --time-limit-s has passed (they are
reported as skipped), so the run stays near its budget whatever compiling costs on the machine.

The table goes to stdout, then one line ``JSON {...}`` with every row (also written to --json-out).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tdgen.model import TrackDiffusionUNet, full_config, tiny_config  # noqa: E402
from tdgen.pipeline import quiet_libraries  # noqa: E402

# Dense (no sparsity) fp16/bf16 tensor-core peaks from NVIDIA's data sheets, in TFLOP/s: H100 SXM
# 989.4 (H200 uses the same GH100 compute), A100 312. PCIe/NVL parts are lower: pass --peak-tflops.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
TOKENS = 77  # CLIP text tokens per prompt
STEPS_PER_VIDEO = 50


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny UNet config, small frames, fp32, 1 and 2 clips "
                    "(CPU-sized; finishes in seconds with --no-compile)")
    ap.add_argument("--model", type=Path, default=None, help="model directory (or its unet/ folder) whose UNet "
                    "weights to load (default: random weights in the published layout)")
    ap.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda if available, else cpu)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default 16; --tiny: 4)")
    ap.add_argument("--sizes", default=None, help="frame sizes in pixels, HxW, comma-separated (latents are /8; "
                    "default 256x384,320x480; --tiny: 32x48)")
    ap.add_argument("--dtypes", default=None, help="fp16, bf16, fp32, comma-separated (default fp16,bf16; "
                    "--tiny: fp32); the first is the baseline's")
    ap.add_argument("--clips", default=None, help="clips per UNet forward, comma-separated (default 1,2,4; "
                    "--tiny: 1,2)")
    ap.add_argument("--slots", type=int, default=20, help="track slots per clip")
    ap.add_argument("--steps-measured", type=int, default=None, help="timed UNet steps per configuration "
                    "(default 10; --tiny: 3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; --tiny: 1)")
    ap.add_argument("--no-compile", action="store_true", help="eager rows only")
    ap.add_argument("--time-limit-s", type=float, default=480.0, help="start no compiled configuration after "
                    "this many seconds (default 480)")
    ap.add_argument("--peak-tflops", type=float, default=None, help="the device's dense peak for the dtype, "
                    "TFLOP/s (default: by device name, H100/H200 989, A100 312; none on the CPU)")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the JSON result here")
    args = ap.parse_args(argv)
    tiny = args.tiny
    args.frames = args.frames or (4 if tiny else 16)
    args.sizes = _sizes(args.sizes or ("32x48" if tiny else "256x384,320x480"))
    args.dtypes = [d.strip() for d in (args.dtypes or ("fp32" if tiny else "fp16,bf16")).split(",") if d.strip()]
    bad = [d for d in args.dtypes if d not in DTYPES]
    if bad:
        ap.error(f"--dtypes: unknown {', '.join(bad)} (use fp16, bf16, fp32)")
    args.clips = [int(c) for c in (args.clips or ("1,2" if tiny else "1,2,4")).split(",") if c.strip()]
    if not args.clips or min(args.clips) < 1:
        ap.error("--clips: positive integers")
    args.steps_measured = args.steps_measured or (3 if tiny else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if tiny else 3)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() and not tiny else "cpu"
    return args


def _sizes(text: str) -> list[tuple[int, int]]:
    out = []
    for part in text.split(","):
        h, w = (int(v) for v in part.lower().split("x"))
        if h % 8 or w % 8:
            raise SystemExit(f"--sizes {part}: height and width must be multiples of 8")
        out.append((h, w))
    return out


def build_unet(args: argparse.Namespace, device: torch.device) -> TrackDiffusionUNet:
    """The UNet in fp32 on ``device``: weights of --model, else random ones in the published layout."""
    if args.model is not None:
        path = args.model / "unet" if (args.model / "unet").is_dir() else args.model
        return TrackDiffusionUNet.from_pretrained(path).to(device).eval()
    cfg = tiny_config() if args.tiny else full_config()
    with torch.device(device):  # initialise in place: 1.76 B parameters are slow to draw on a CPU
        torch.manual_seed(0)
        return TrackDiffusionUNet(**cfg).eval()


def unet_inputs(cfg: Any, batch: int, frames: int, size: tuple[int, int], slots: int, dtype: torch.dtype,
                device: torch.device) -> dict[str, torch.Tensor]:
    """One step's UNet keywords as the pipeline passes them (random values of the right shapes)."""
    g = torch.Generator("cpu").manual_seed(0)
    h, w = size[0] // 8, size[1] // 8
    x = int(cfg.cross_attention_dim)
    xy = torch.rand(batch, frames, slots, 2, generator=g) * 0.6
    boxes = torch.cat([xy, xy + 0.1 + torch.rand(batch, frames, slots, 2, generator=g) * 0.3], -1)
    masks = (torch.rand(batch, frames, slots, generator=g) > 0.3).float()
    masks[: batch // 2] = 0  # the unconditional branch: every slot off
    tensors = dict(sample=torch.randn(batch, int(cfg.in_channels), frames, h, w, generator=g).to(dtype),
                   timestep=torch.tensor(500.0),
                   encoder_hidden_states=torch.randn(batch, TOKENS, x, generator=g).to(dtype),
                   boxes=boxes, box_masks=masks,
                   box_embeddings=torch.randn(batch, frames, slots, x, generator=g).to(dtype))
    return {k: v.to(device) for k, v in tensors.items()}


_FLOPS: dict[tuple, int | None] = {}
_META: list[TrackDiffusionUNet] = []


def unet_flops(config: dict, batch: int, frames: int, size: tuple[int, int], slots: int) -> int | None:
    """FLOPs of one forward, counted once per shape on the meta device (no memory, no kernels; the
    count does not depend on the dtype)."""
    key = (batch, frames, size, slots)
    if key not in _FLOPS:
        try:
            if not _META:
                with torch.device("meta"):
                    _META.append(TrackDiffusionUNet(**config).eval())
            meta = _META[0]
            kw = unet_inputs(meta.config, batch, frames, size, slots, torch.float32, torch.device("meta"))
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                meta(**kw)
            _FLOPS[key] = int(counter.get_total_flops())
        except Exception:  # an operator without a meta kernel: leave the column empty
            _FLOPS[key] = None
    return _FLOPS[key]


class _Clock:
    """Elapsed seconds of a block of queued work: CUDA events on a GPU, the host clock elsewhere."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"

    def __enter__(self) -> "_Clock":
        if self.cuda:
            self.start, self.end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            self.end.record()
            self.end.synchronize()
            self.seconds = self.start.elapsed_time(self.end) / 1000.0
        else:
            self.seconds = time.perf_counter() - self.t0


def measure(unet: torch.nn.Module, config: dict, row: dict, args: argparse.Namespace,
            device: torch.device) -> None:
    """Fill ``row`` (size, dtype, clips, mode) with its measurements, or with the error that stopped it."""
    dtype = DTYPES[row["dtype"]]
    batch = 2 * row["clips"]
    size = tuple(row["size"])
    row.update(batch=batch, frames=args.frames)
    model = unet
    kw: dict[str, torch.Tensor] = {}
    try:
        if row["mode"] == "compile":
            torch._dynamo.reset()  # one graph per configuration, as `tdgen synth --compile` makes
            model = torch.compile(unet, fullgraph=True, dynamic=False)
        kw = unet_inputs(unet.config, batch, args.frames, size, args.slots, dtype, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        with torch.no_grad():
            with _Clock(device) as first:  # compiles, for the compiled rows
                model(**kw)
            row["first_call_s"] = round(first.seconds, 3)
            for _ in range(max(args.warmup - 1, 0)):
                model(**kw)
            with _Clock(device) as clock:
                for _ in range(args.steps_measured):
                    model(**kw)
        ms = clock.seconds * 1000.0 / args.steps_measured
        row["ms_per_step"] = round(ms, 3)
        row["s_per_video"] = round(ms * STEPS_PER_VIDEO / row["clips"] / 1000.0, 4)
        row["peak_mem_gib"] = (round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
                               if device.type == "cuda" else None)
        flops = unet_flops(config, batch, args.frames, size, args.slots)
        row["tflops_per_step"] = round(flops / 1e12, 4) if flops is not None else None
        achieved = flops / (ms / 1000.0) / 1e12 if flops is not None else None
        row["achieved_tflops"] = round(achieved, 3) if achieved is not None else None
        peak = args.peak_tflops_by_dtype.get(row["dtype"])
        row["peak_fraction"] = round(achieved / peak, 4) if achieved is not None and peak else None
    except torch.cuda.OutOfMemoryError:
        row["error"] = "out of memory"
    except Exception as exc:  # a compile failure, an unsupported dtype: one row, not a crash
        lines = [ln for ln in str(exc).strip().splitlines() if ln.strip()]
        row["error"] = f"{type(exc).__name__}: {lines[0][:200] if lines else ''}".rstrip(": ")
        if args.verbose_errors:
            traceback.print_exc()
    finally:
        del model
        kw.clear()  # before empty_cache, so that an out-of-memory row frees its inputs too
        if row["mode"] == "compile":
            torch._dynamo.reset()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def add_ratios(rows: list[dict]) -> None:
    """Each row's speed-up and memory against the baseline of its frame size."""
    base = {tuple(r["size"]): r for r in rows if r.get("baseline")}
    for r in rows:
        b = base.get(tuple(r["size"]))
        ok = b is not None and "ms_per_step" in b and "ms_per_step" in r
        r["speedup_vs_baseline"] = round(b["s_per_video"] / r["s_per_video"], 3) if ok else None
        r["mem_vs_baseline"] = (round(r["peak_mem_gib"] / b["peak_mem_gib"], 3)
                                if ok and r.get("peak_mem_gib") and b.get("peak_mem_gib") else None)


def table(rows: list[dict]) -> str:
    cols = [("size", "HxW"), ("dtype", "dtype"), ("clips", "clips"), ("batch", "batch"), ("mode", "mode"),
            ("ms_per_step", "ms/step"), ("s_per_video", "s/video"), ("peak_mem_gib", "peak GiB"),
            ("tflops_per_step", "TFLOP/step"), ("peak_fraction", "of peak"), ("speedup_vs_baseline", "speed-up"),
            ("mem_vs_baseline", "mem x"), ("first_call_s", "1st call s")]

    def cell(r: dict, key: str) -> str:
        v = r.get(key)
        if key == "size":
            return f"{v[0]}x{v[1]}"
        if key == "mode" and r.get("baseline"):
            return f"{v} (baseline)"
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    body = [[cell(r, k) for k, _ in cols] + [r.get("error", "")] for r in rows]
    head = [h for _, h in cols] + ["error"]
    widths = [max(len(head[i]), *(len(b[i]) for b in body)) for i in range(len(head))]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([fmt(head), fmt(["-" * w for w in widths])] + [fmt(b) for b in body])


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.verbose_errors = False
    quiet_libraries()  # diffusers' notes on casting a model with .to(dtype)
    t_start = time.perf_counter()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops
    if peak is None:
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    # the tensor-core peak applies to fp16/bf16 only; fp32 gets one only when given explicitly
    args.peak_tflops_by_dtype = {d: (peak if d != "fp32" or args.peak_tflops else None) for d in DTYPES}

    unet = build_unet(args, device)
    config = dict(unet.config)
    config = {k: v for k, v in config.items() if not k.startswith("_")}
    modes = ["eager"] + ([] if args.no_compile else ["compile"])
    base_dtype = args.dtypes[0]
    rows: list[dict] = []
    for size in args.sizes:
        rows.append(dict(size=list(size), dtype=base_dtype, clips=1, mode="eager", baseline=True))
        for dt in args.dtypes:
            for clips in args.clips:
                for mode in modes:
                    if (dt, clips, mode) != (base_dtype, 1, "eager"):
                        rows.append(dict(size=list(size), dtype=dt, clips=clips, mode=mode, baseline=False))
    # eager first (the baseline among them), one dtype at a time so the weights are cast once per dtype
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["mode"] != "eager", args.dtypes.index(rows[i]["dtype"]), i))
    current = next(k for k, v in DTYPES.items() if v == unet.dtype)
    for i in order:
        row = rows[i]
        if row["mode"] == "compile" and time.perf_counter() - t_start > args.time_limit_s:
            row["error"] = f"skipped: past --time-limit-s {args.time_limit_s:g}"
            continue
        if row["dtype"] != current:
            unet.to(DTYPES[row["dtype"]])
            current = row["dtype"]
        measure(unet, config, row, args, device)
        print(f"[{time.perf_counter() - t_start:6.1f} s] {row['size'][0]}x{row['size'][1]} {row['dtype']} "
              f"clips={row['clips']} {row['mode']}: " + (row.get("error") or f"{row['ms_per_step']:.2f} ms/step"),
              file=sys.stderr, flush=True)
    add_ratios(rows)
    result = {
        "benchmark": "gpu_sampling",
        "device": name,
        "torch": torch.__version__,
        "weights": str(args.model) if args.model else "random",
        "unet": "tiny" if args.tiny and args.model is None else "full",
        "parameters": sum(p.numel() for p in unet.parameters()),
        "frames": args.frames,
        "slots": args.slots,
        "steps_measured": args.steps_measured,
        "steps_per_video": STEPS_PER_VIDEO,
        "peak_tflops": peak,
        "baseline": {"clips": 1, "unet_batch": 2, "mode": "eager", "dtype": base_dtype},
        "seconds": round(time.perf_counter() - t_start, 1),
        "rows": rows,
    }
    print(table(rows))
    line = json.dumps(result, separators=(",", ":"), default=str)
    print("JSON " + line, flush=True)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
