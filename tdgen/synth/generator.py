"""The TrackDiffusion pipeline behind the runner's generator interface: clips in, frames out.

Clips become the pipeline's arrays through :func:`tdgen.conditioning.clip_batch`, the same
adapter training uses, so a clip conditions the model the same way in both.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..conditioning import clip_batch
from ..errors import TdgenError, UsageError
from ..modeldir import load_pipeline, model_fingerprint, resolve_model_dir
from ..tracks.clips import Clip

__all__ = ["PipelineGenerator", "check_generator_flags"]

_DTYPES = ("float32", "fp32", "float16", "fp16", "bfloat16", "bf16")
_DEVICE = re.compile(r"cpu|mps|cuda(:\d+)?")


def check_generator_flags(*, device: str | None, dtype: str | None, guidance_kind: str, unet_batch: int) -> None:
    """The generator's flags, checked without torch or a model, so a typo fails at once."""
    if guidance_kind not in ("cfg", "rescaled"):
        raise UsageError(f"--guidance-kind must be cfg or rescaled, got {guidance_kind!r}")
    if dtype is not None and dtype not in _DTYPES:
        raise UsageError(f"--dtype must be fp32, fp16 or bf16, got {dtype!r}")
    if device is not None and not _DEVICE.fullmatch(device):
        raise UsageError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if device == "cpu" and dtype is not None and dtype not in ("float32", "fp32"):
        raise UsageError("fp16/bf16 are for GPUs; on the CPU use --dtype fp32 (bf16 is 12-25x slower here)")
    if isinstance(unet_batch, bool) or not isinstance(unet_batch, int) or unet_batch < 1:
        raise UsageError(f"--unet-batch must be >= 1, got {unet_batch}")


class PipelineGenerator:
    """Loads a model directory (or preset) once and turns batches of clips into frames."""

    def __init__(self, model: str | Path, *, device: str = "cpu", dtype: str = "float32", steps: int = 50,
                 guidance: float = 5.0, guidance_kind: str = "cfg", slots: int | None = None,
                 frames: int | None = None, unet_batch: int = 1, drop_boxes: bool = False,
                 on_step: Callable[[int, int, int], None] | None = None, compile: bool = False,
                 compile_backend: str = "inductor"):
        import torch  # only once a model is loaded: planning and --dry-run need none

        check_generator_flags(device=device, dtype=dtype, guidance_kind=guidance_kind, unet_batch=unet_batch)
        torch_dtype = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
                       "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}.get(dtype)
        if torch_dtype is None:
            raise UsageError(f"--dtype must be fp32, fp16 or bf16, got {dtype!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise UsageError(f"--device {device}: no CUDA device is available here")
        if torch_dtype != torch.float32 and device == "cpu":
            raise UsageError("fp16/bf16 are for GPUs; on the CPU use --dtype fp32 (bf16 is 12-25x slower here)")
        directory = resolve_model_dir(model)
        self.directory = directory
        self.pipe = load_pipeline(directory, device=device, dtype=torch_dtype)
        info = self.pipe.model_info
        self.model_id = info.model_id if info.model_id is not None else directory.name
        self.model_hash = model_fingerprint(directory)
        h, w = self.pipe.default_size()
        self.resolution = (int(w), int(h))
        self.frames = info.effective_frames
        self.slots = info.effective_slots
        self.dtype = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[torch_dtype]
        max_slots = int(self.pipe.unet.config.max_slots)
        if slots is not None and slots > max_slots:
            raise UsageError(f"--slots {slots}: this model takes at most {max_slots} tracks per clip")
        max_frames = int(self.pipe.unet.config.max_frames)
        if frames is not None and frames > max_frames and self.pipe.unet.config.frame_embedding == "learnable":
            raise UsageError(f"--frames {frames}: this model takes at most {max_frames} frames per clip")
        self.steps, self.guidance, self.kind = steps, guidance, guidance_kind
        self.unet_batch = unet_batch
        self.drop_boxes = bool(drop_boxes)
        self.timings: list[dict] = []
        # on_step(step index, steps, clips in the batch) after every denoising step, for progress
        self.on_step = on_step
        self.compiled = bool(compile)
        if compile:
            self._compile(compile_backend, frames if frames is not None else self.frames,
                          slots if slots is not None else self.slots)

    def _compile(self, backend: str, frames: int, slots: int) -> None:
        """``torch.compile`` the UNet (one graph, static shapes) and compile it now, on one
        batch of the run's shapes, so that a failure is one error before anything is written.

        The warm-up batch has no boxes, the empty prompt and its own seeds; the pipeline's caches
        it touches (the empty prompt, the zero category) hold deterministic values, so it changes
        no clip's frames. Another batch size later (a short last chunk) compiles once more.
        """
        unet = self.pipe.unet
        unet.compile(fullgraph=True, dynamic=False, backend=backend)
        b = self.unet_batch
        w, h = self.resolution
        try:
            self.pipe(np.zeros((b, frames, slots, 4), np.float32), np.zeros((b, frames, slots), np.float32),
                      np.full((b, slots), "", dtype=object), [""] * b, list(range(b)), num_inference_steps=1,
                      guidance_scale=self.guidance, guidance=self.kind, width=w, height=h, output_type="latent",
                      clips_per_forward=b)
        except (UsageError, KeyboardInterrupt, MemoryError):
            raise
        except Exception as exc:  # dynamo, inductor, a missing C++ compiler: whatever fails, one line
            lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
            why = f"{type(exc).__name__}: {lines[0][:300]}" if lines else type(exc).__name__
            raise TdgenError(f"--compile: torch.compile of the UNet failed ({why}); run without --compile") from None

    def _step_callback(self, clips: int) -> Callable[[int, Any, Any], None] | None:
        on_step = self.on_step
        if on_step is None:
            return None
        return lambda i, t, latents: on_step(i, self.steps, clips)  # latents untouched: no device sync

    def __call__(self, clips: Sequence[Clip], prompts: Sequence[str], seeds: Sequence[int]) -> np.ndarray:
        t = time.perf_counter()
        try:
            batch = clip_batch(clips)
        except ValueError as exc:  # clips of different lengths in one batch: the caller's mistake
            raise UsageError(str(exc)) from None
        frames = self.pipe(**batch.as_kwargs(), prompts=list(prompts), seeds=list(seeds),
                           num_inference_steps=self.steps, guidance_scale=self.guidance, guidance=self.kind,
                           width=self.resolution[0], height=self.resolution[1], output_type="np",
                           clips_per_forward=self.unet_batch, drop_boxes=self.drop_boxes,
                           callback=self._step_callback(len(clips)))
        timing = dict(getattr(self.pipe, "last_timings", {}) or {})
        timing["wall_s"] = time.perf_counter() - t
        timing["clips"] = len(clips)
        self.timings.append(timing)
        return frames
