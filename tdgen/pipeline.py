"""TrackDiffusionPipeline: clips (boxes, masks, category names) + prompts + seeds -> video frames.

A diffusers :class:`~diffusers.DiffusionPipeline` made of ``unet`` (:class:`TrackDiffusionUNet`),
``vae`` (:class:`~diffusers.AutoencoderKL`), ``text_encoder`` (CLIP text model), ``tokenizer``
and ``scheduler`` (default: DPM-Solver++ 2M, deterministic). ``save_pretrained(dir)`` /
``from_pretrained(dir)`` use the diffusers directory layout; ``tdgen.json`` (resolution, frames,
slots, prompt template, ...) travels with them as :attr:`TrackDiffusionPipeline.tdgen_config`.
:func:`tdgen.modeldir.load_pipeline` is the checked way in (typed errors, presets).

Sampling (DESIGN §5, research/official.md §5):

* Each clip's initial noise is drawn on the CPU from ``torch.Generator("cpu").manual_seed(seed)``
  and moved to the device, so it depends on nothing but the clip's seed.
* Classifier-free guidance: the unconditional branch is the empty prompt **and** every box mask 0
  (boxes and category embeddings are still passed, as published); both branches go through the
  UNet in one batched forward (``2B`` rows: unconditional first). ``guidance_scale == 1`` skips the
  unconditional branch. ``guidance="rescaled"`` is the published demo's norm-rescaled guidance,
  ``w = (g - 1) / (||e_c - e_u|| / ||e_c||)``, ``e = e_u + w (e_c - e_u)``, with the norms taken
  **per clip** (the published code takes them over the whole batch tensor; per clip keeps a clip's
  result independent of its batch-mates, and equals the published formula for batch size 1).
* Category names are encoded once each by the text encoder's pooled output (``pooler_output``:
  the final-LayerNorm EOS state, no projection) and cached on the pipeline; ``""`` (unused slot)
  is a zero vector. Prompt token embeddings are cached per prompt string (bounded LRU).
* The VAE decodes each clip's frames in chunks of ``decode_chunk_size``.

Batch invariance: noise, scheduler arithmetic, guidance and VAE decoding are per clip, so a clip's
result depends on its batch-mates only through the UNet's batched kernels. CPU (oneDNN conv,
small-M GEMM) and GPU kernels may round differently for different batch sizes, which changes a
few output pixels by a level or so. ``clips_per_forward=1`` runs the UNet on one clip at a time
(its two guidance branches still in one forward): then a clip's frames are bit-identical
whatever the batch it is sampled in (same machine, threads and library versions).

Timings of the last call are in :attr:`TrackDiffusionPipeline.last_timings`.
"""

from __future__ import annotations

import inspect
import math
import time
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from tdgen.model.unet import TrackDiffusionUNet
from tdgen.tracks.clips import Clip, collate
from .errors import UsageError
from .schedulers import sampling_scheduler

__all__ = [
    "TrackDiffusionPipeline",
    "PipelineInputError",
    "GUIDANCE_MODES",
    "OUTPUT_TYPES",
    "TDGEN_CONFIG_NAME",
    "default_scheduler",
]

GUIDANCE_MODES = ("cfg", "rescaled")
OUTPUT_TYPES = ("np", "pt", "latent")
TDGEN_CONFIG_NAME = "tdgen.json"


class PipelineInputError(UsageError, ValueError):
    """Bad arguments to the pipeline (a size not a multiple of 8, mismatched lengths, ...).

    A :class:`~tdgen.errors.UsageError` (exit 2 in the CLI) and a ``ValueError``.
    """


def default_scheduler(config: Mapping[str, Any] | None = None) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ 2M (deterministic multistep) on the noise schedule of ``config`` (another
    scheduler's config; :func:`tdgen.schedulers.noise_schedule` says which keys and defaults)."""
    return sampling_scheduler(config)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class TrackDiffusionPipeline(DiffusionPipeline):
    r"""Tracklet-conditioned text-to-video sampling (see the module docstring).

    Attributes:
        tdgen_config: the model's ``tdgen.json`` (``{}`` when built by hand).
        last_timings: seconds of the last call: ``total_s``, ``unet_s`` (UNet forwards only),
            ``text_s`` (text encoder, cache misses only), ``vae_s`` (decoding), ``other_s``
            (the rest: noise, scheduler, guidance arithmetic, copies), plus ``steps``,
            ``unet_calls``, ``clips``, ``frames``.
        text_cache_size: how many prompt embeddings the LRU cache keeps.
    """

    model_cpu_offload_seq = "text_encoder->unet->vae"
    _optional_components = ["scheduler"]

    def __init__(
        self,
        unet: TrackDiffusionUNet,
        vae: AutoencoderKL,
        text_encoder: Any,
        tokenizer: Any,
        scheduler: SchedulerMixin | None = None,
    ) -> None:
        super().__init__()
        if scheduler is None:
            scheduler = default_scheduler()
        self.register_modules(
            unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler
        )
        self.tdgen_config: dict[str, Any] = {}
        self.last_timings: dict[str, float] = {}
        self.text_cache_size = 4096
        self._prompt_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._category_cache: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ save / load

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, torch_dtype=None, device: str = "cpu",
                        **kwargs):  # type: ignore[override]
        """Load a local tdgen model directory (checked; see :func:`tdgen.modeldir.load_pipeline`).

        Components are loaded from their subfolders by their known classes rather than through
        diffusers' dynamic class lookup; nothing is downloaded.
        """
        from tdgen.modeldir import load_pipeline

        if kwargs:
            raise PipelineInputError(f"unsupported from_pretrained arguments: {', '.join(sorted(kwargs))}")
        return load_pipeline(pretrained_model_name_or_path, device=device, dtype=torch_dtype)

    def save_pretrained(self, save_directory, *, overwrite: bool = False) -> None:  # type: ignore[override]
        """Write a tdgen model directory (DESIGN §6): every component in safetensors, the scheduler
        config, ``model_index.json`` and :attr:`tdgen_config` as ``tdgen.json``; atomically."""
        from tdgen.atomic import atomic_directory
        from tdgen.modeldir import write_model_index, write_tdgen_json

        with atomic_directory(save_directory, overwrite=overwrite) as tmp:
            for name in ("unet", "vae", "text_encoder"):
                getattr(self, name).save_pretrained(tmp / name, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            self.scheduler.save_config(tmp / "scheduler")
            write_model_index(tmp)
            write_tdgen_json(tmp, self.tdgen_config or {})

    # ------------------------------------------------------------------ properties

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell (8 for SD VAEs and the space-to-depth autoencoder)."""
        from tdgen.model.autoencoder import downscale_factor

        return downscale_factor(self.vae)

    def default_size(self) -> tuple[int, int]:
        """``(height, width)`` used when the call gives none: ``tdgen.json``'s resolution
        (``[W, H]``), else the UNet's ``sample_size`` times the VAE factor."""
        res = self.tdgen_config.get("resolution") if self.tdgen_config else None
        if res:
            return int(res[1]), int(res[0])
        size = self.unet.config.get("sample_size")
        if size:
            hw = (size, size) if isinstance(size, int) else tuple(size)
            return int(hw[0]) * self.vae_scale_factor, int(hw[1]) * self.vae_scale_factor
        raise PipelineInputError(
            "no height/width given and the model records no resolution (tdgen.json 'resolution' or "
            "unet sample_size); pass height= and width="
        )

    def clear_text_cache(self) -> None:
        """Forget cached prompt and category embeddings (after changing the text encoder)."""
        self._prompt_cache.clear()
        self._category_cache.clear()

    # ------------------------------------------------------------------ text

    def _max_length(self) -> int:
        limit = int(self.text_encoder.config.max_position_embeddings)
        tok = getattr(self.tokenizer, "model_max_length", None)
        return min(limit, int(tok)) if tok and tok < 1_000_000 else limit

    def _run_text_encoder(self, texts: list[str]):
        ids = self.tokenizer(
            texts, padding="max_length", max_length=self._max_length(), truncation=True, return_tensors="pt"
        ).input_ids
        # No attention mask, as SD-1.x and the published pipeline: CLIP's causal mask keeps the
        # EOS state (pooled output) independent of the padding after it.
        return self.text_encoder(ids.to(self.text_encoder.device))

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        """Token embeddings ``(len(prompts), L, X)`` (last hidden state), cached per string."""
        prompts = [str(p) for p in prompts]
        missing = list(dict.fromkeys(p for p in prompts if p not in self._prompt_cache))
        if missing:
            hidden = self._run_text_encoder(missing).last_hidden_state
            for p, h in zip(missing, hidden):
                self._prompt_cache[p] = h
        out = []
        for p in prompts:
            self._prompt_cache.move_to_end(p)
            out.append(self._prompt_cache[p])
        while len(self._prompt_cache) > max(self.text_cache_size, len(set(prompts))):
            self._prompt_cache.popitem(last=False)
        return torch.stack(out)

    @torch.no_grad()
    def encode_categories(self, names: Sequence[str]) -> torch.Tensor:
        """Pooled category embeddings ``(len(names), X)``; ``""`` gives zeros. Each distinct name
        goes through the text encoder once per pipeline (cached in a name -> tensor dict)."""
        names = [str(n) for n in names]
        missing = list(dict.fromkeys(n for n in names if n and n not in self._category_cache))
        if missing:
            pooled = self._run_text_encoder(missing).pooler_output
            for n, v in zip(missing, pooled):
                self._category_cache[n] = v
        width = int(self.text_encoder.config.hidden_size)
        zero = None
        out = []
        for n in names:
            if n:
                out.append(self._category_cache[n])
            else:
                if zero is None:
                    zero = torch.zeros(width, device=self.text_encoder.device, dtype=self.text_encoder.dtype)
                out.append(zero)
        if not out:
            return torch.zeros(0, width, device=self.text_encoder.device, dtype=self.text_encoder.dtype)
        return torch.stack(out)

    # ------------------------------------------------------------------ inputs

    @staticmethod
    def _batch_arrays(clips: Sequence[Clip] | Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if isinstance(clips, Mapping):
            batch = clips
        else:
            clips = list(clips)
            if not clips:
                raise PipelineInputError("no clips to generate")
            if not all(isinstance(c, Clip) for c in clips):
                raise PipelineInputError("clips must be a sequence of Clip or a batch dict from collate()")
            try:
                batch = collate(clips)
            except ValueError as exc:
                raise PipelineInputError(str(exc)) from exc
        for key in ("boxes", "mask", "category_names"):
            if key not in batch:
                raise PipelineInputError(f"batch dict lacks {key!r} (expected the output of collate())")

        def as_np(x):
            return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)

        boxes = as_np(batch["boxes"]).astype(np.float32, copy=False)
        mask = as_np(batch["mask"]).astype(np.float32, copy=False)
        names = np.asarray(batch["category_names"], dtype=object)
        if boxes.ndim != 4 or boxes.shape[-1] != 4 or boxes.shape[0] == 0:
            raise PipelineInputError(f"boxes must be (B, F, N, 4) with B >= 1, got {boxes.shape}")
        B, F, N, _ = boxes.shape
        if mask.shape != (B, F, N):
            raise PipelineInputError(f"mask must be {(B, F, N)} to match boxes, got {mask.shape}")
        if names.shape != (B, N):
            raise PipelineInputError(f"category_names must be {(B, N)} to match boxes, got {names.shape}")
        return boxes, mask, names

    def _check_call(self, B: int, F: int, N: int, prompts, seeds, height: int, width: int,
                    steps: int, guidance_scale: float, guidance: str, output_type: str,
                    decode_chunk_size: int, clips_per_forward: int | None) -> None:
        if isinstance(prompts, str) or len(prompts) != B:
            raise PipelineInputError(f"need one prompt per clip: {B} clips, got "
                                     f"{'a string' if isinstance(prompts, str) else len(prompts)}")
        if len(seeds) != B:
            raise PipelineInputError(f"need one seed per clip: {B} clips, got {len(seeds)} seeds")
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, (int, np.integer)) or not 0 <= int(s) < 2**64:
                raise PipelineInputError(f"seeds must be integers in [0, 2**64), got {s!r}")
        f = self.vae_scale_factor
        for name, v in (("height", height), ("width", width)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0 or v % f:
                raise PipelineInputError(f"{name} must be a positive multiple of {f} (the VAE factor), got {v!r}")
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise PipelineInputError(f"num_inference_steps must be a positive integer, got {steps!r}")
        if not math.isfinite(float(guidance_scale)) or guidance_scale < 1.0:
            raise PipelineInputError(f"guidance_scale must be >= 1 (1 = no guidance), got {guidance_scale!r}")
        if guidance not in GUIDANCE_MODES:
            raise PipelineInputError(f"guidance must be one of {', '.join(GUIDANCE_MODES)}, got {guidance!r}")
        if output_type not in OUTPUT_TYPES:
            raise PipelineInputError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {output_type!r}")
        if not isinstance(decode_chunk_size, (int, np.integer)) or decode_chunk_size < 1:
            raise PipelineInputError(f"decode_chunk_size must be a positive integer, got {decode_chunk_size!r}")
        if clips_per_forward is not None and (not isinstance(clips_per_forward, (int, np.integer))
                                              or clips_per_forward < 1):
            raise PipelineInputError(f"clips_per_forward must be a positive integer or None, got {clips_per_forward!r}")
        cfg = self.unet.config
        if cfg.get("frame_embedding") == "learnable" and F > int(cfg.max_frames):
            raise PipelineInputError(f"clips have {F} frames; this model takes at most {cfg.max_frames}")
        if N > int(cfg.max_slots):
            raise PipelineInputError(f"clips have {N} track slots; this model takes at most {cfg.max_slots}")

    # ------------------------------------------------------------------ sampling

    @torch.no_grad()
    def __call__(
        self,
        clips: Sequence[Clip] | Mapping[str, Any],
        prompts: Sequence[str],
        seeds: Sequence[int],
        *,
        num_inference_steps: int = 50,
        guidance_scale: float = 5.0,
        guidance: str = "cfg",
        height: int | None = None,
        width: int | None = None,
        output_type: str = "np",
        decode_chunk_size: int = 8,
        clips_per_forward: int | None = None,
        drop_boxes: bool = False,
        callback: Callable[[int, Any, torch.Tensor], Any] | None = None,
    ):
        """Generate one video per clip.

        Args:
            clips: B :class:`~tdgen.tracks.clips.Clip` with the same F, or a batch dict from
                :func:`~tdgen.tracks.clips.collate` (``boxes`` (B,F,N,4), ``mask`` (B,F,N),
                ``category_names`` (B,N)).
            prompts: B prompt strings.
            seeds: B integer seeds, one per clip (see :func:`~tdgen.tracks.clips.clip_seed`).
            num_inference_steps: scheduler steps.
            guidance_scale: ``g``; 1 runs the conditional branch only.
            guidance: ``"cfg"`` (``e_u + g (e_c - e_u)``) or ``"rescaled"`` (published demo).
            height, width: output size in pixels, multiples of the VAE factor (8); default
                :meth:`default_size`.
            output_type: ``"np"`` uint8 ``(B, F, H, W, 3)``; ``"pt"`` float in [0, 1]
                ``(B, F, 3, H, W)`` on the pipeline's device; ``"latent"`` the final latents
                ``(B, C, F, h, w)`` (not divided by the VAE scaling factor).
            decode_chunk_size: frames per VAE decode call (per clip).
            clips_per_forward: clips per UNet forward (``None``: all of them, one forward of
                ``2B`` rows with guidance). ``1`` makes results bit-identical across batchings.
            drop_boxes: condition on no boxes at all (every slot null, as in training's box
                dropout): the layout ablation that shows what the boxes contribute.
            callback: ``callback(step_index, timestep, latents)`` after every scheduler step.

        Returns:
            The frames (or latents) as described for ``output_type``.

        Raises:
            PipelineInputError: inconsistent or invalid arguments.
        """
        t_start = time.perf_counter()
        device = self._execution_device
        boxes_np, mask_np, names_np = self._batch_arrays(clips)
        B, F, N, _ = boxes_np.shape
        if height is None or width is None:
            dh, dw = self.default_size()
            height = dh if height is None else height
            width = dw if width is None else width
        self._check_call(B, F, N, list(prompts), list(seeds), height, width, num_inference_steps,
                         guidance_scale, guidance, output_type, decode_chunk_size, clips_per_forward)
        prompts = [str(p) for p in prompts]
        seeds = [int(s) for s in seeds]
        do_cfg = float(guidance_scale) != 1.0
        unet_dtype = self.unet.dtype
        timings = {"text_s": 0.0, "unet_s": 0.0, "vae_s": 0.0}

        # ---- conditioning, built once per call
        _sync(device)
        t0 = time.perf_counter()
        texts = prompts + ([""] if do_cfg else [])
        text_emb = self.encode_prompts(texts).to(device=device, dtype=unet_dtype)
        flat_names = [str(n) if n is not None else "" for n in names_np.reshape(-1)]
        distinct = list(dict.fromkeys(flat_names))
        table = self.encode_categories(distinct).to(device=device, dtype=unet_dtype)
        _sync(device)
        timings["text_s"] = time.perf_counter() - t0

        row = {n: i for i, n in enumerate(distinct)}
        index = torch.tensor([row[n] for n in flat_names], dtype=torch.long, device=device).view(B, 1, N)
        box_emb = table[index.expand(B, F, N)]  # (B, F, N, X)
        boxes = torch.from_numpy(np.ascontiguousarray(boxes_np)).to(device)
        masks = torch.from_numpy(np.ascontiguousarray(mask_np)).to(device)
        if drop_boxes:
            masks = torch.zeros_like(masks)
        cond_text = text_emb[:B]

        step = B if clips_per_forward is None else int(clips_per_forward)
        chunks = []
        for a in range(0, B, step):
            b = min(a + step, B)
            if do_cfg:
                k = b - a
                kw = {
                    "encoder_hidden_states": torch.cat([text_emb[B:].expand(k, -1, -1), cond_text[a:b]]),
                    "boxes": torch.cat([boxes[a:b], boxes[a:b]]),
                    "box_masks": torch.cat([torch.zeros_like(masks[a:b]), masks[a:b]]),
                    "box_embeddings": torch.cat([box_emb[a:b], box_emb[a:b]]),
                }
            else:
                kw = {
                    "encoder_hidden_states": cond_text[a:b],
                    "boxes": boxes[a:b],
                    "box_masks": masks[a:b],
                    "box_embeddings": box_emb[a:b],
                }
            chunks.append((a, b, kw))

        # ---- initial noise: per clip, on the CPU, from the clip's own generator
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        lat_shape = (int(self.unet.config.in_channels), F, height // self.vae_scale_factor,
                     width // self.vae_scale_factor)
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        latents = torch.stack([torch.randn(lat_shape, generator=g, dtype=torch.float32) for g in generators])
        latents = latents.to(device) * float(self.scheduler.init_noise_sigma)
        step_kwargs: dict[str, Any] = {"return_dict": False}
        if "generator" in inspect.signature(self.scheduler.step).parameters:
            step_kwargs["generator"] = generators  # per-clip noise for stochastic schedulers

        # ---- denoising loop
        g = float(guidance_scale)
        unet_calls = 0
        for i, t in enumerate(timesteps):
            model_input = self.scheduler.scale_model_input(latents, t)
            preds = []
            for a, b, kw in chunks:
                x = model_input[a:b]
                if do_cfg:
                    x = torch.cat([x, x])
                _sync(device)
                t0 = time.perf_counter()
                eps = self.unet(x.to(unet_dtype), t, return_dict=False, **kw)[0]
                _sync(device)
                timings["unet_s"] += time.perf_counter() - t0
                unet_calls += 1
                eps = eps.float()
                if do_cfg:
                    e_u, e_c = eps.chunk(2)
                    diff = e_c - e_u
                    if guidance == "cfg":
                        eps = torch.add(e_u, diff, alpha=g)
                    else:
                        eps = e_u + self._rescaled_weights(e_c, diff, g) * diff
                preds.append(eps)
            noise_pred = preds[0] if len(preds) == 1 else torch.cat(preds)
            latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs)[0]
            if callback is not None:
                callback(i, t, latents)

        # ---- decode
        if output_type == "latent":
            result: Any = latents
        else:
            _sync(device)
            t0 = time.perf_counter()
            result = self._decode(latents, decode_chunk_size, output_type)
            _sync(device)
            timings["vae_s"] = time.perf_counter() - t0

        _sync(device)
        total = time.perf_counter() - t_start
        self.last_timings = {
            "total_s": total,
            "unet_s": timings["unet_s"],
            "text_s": timings["text_s"],
            "vae_s": timings["vae_s"],
            "other_s": total - timings["unet_s"] - timings["text_s"] - timings["vae_s"],
            "steps": len(timesteps),
            "unet_calls": unet_calls,
            "clips": B,
            "frames": F,
        }
        return result

    @staticmethod
    def _rescaled_weights(e_c: torch.Tensor, diff: torch.Tensor, g: float) -> torch.Tensor:
        """Per-clip ``w = (g - 1) * ||e_c|| / ||e_c - e_u||`` shaped to broadcast over a clip.

        One norm per clip, each computed on its own (a separate reduction per clip), so the
        value does not depend on how many clips share the batch.
        """
        shape = (-1,) + (1,) * (diff.dim() - 1)
        ws = []
        for k in range(diff.shape[0]):
            n_c = torch.linalg.vector_norm(e_c[k])
            n_d = torch.linalg.vector_norm(diff[k])
            ws.append(torch.where(n_d > 0, (g - 1.0) * n_c / n_d.clamp_min(torch.finfo(n_d.dtype).tiny),
                                  torch.zeros_like(n_d)))
        return torch.stack(ws).view(shape)

    def _decode(self, latents: torch.Tensor, chunk: int, output_type: str):
        """Decode ``(B, C, F, h, w)`` latents clip by clip, ``chunk`` frames per VAE call."""
        vae = self.vae
        scale = float(vae.config.scaling_factor)
        shift = vae.config.get("shift_factor", None)
        B, _, F, h, w = latents.shape
        H, W = h * self.vae_scale_factor, w * self.vae_scale_factor
        if output_type == "np":
            out_np = np.empty((B, F, H, W, 3), dtype=np.uint8)
        else:
            out_pt = torch.empty((B, F, 3, H, W), dtype=torch.float32, device=latents.device)
        for b in range(B):
            z = latents[b].permute(1, 0, 2, 3)  # (F, C, h, w)
            z = z / scale + (float(shift) if shift is not None else 0.0)
            for f0 in range(0, F, chunk):
                f1 = min(f0 + chunk, F)
                img = vae.decode(z[f0:f1].to(vae.dtype), return_dict=False)[0].float()
                img = (img / 2 + 0.5).clamp_(0, 1)
                if output_type == "np":
                    u8 = (img * 255).round_().to(torch.uint8).permute(0, 2, 3, 1)
                    out_np[b, f0:f1] = u8.cpu().numpy()
                else:
                    out_pt[b, f0:f1] = img
        return out_np if output_type == "np" else out_pt
