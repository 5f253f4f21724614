"""TrackDiffusionPipeline: box and mask arrays, category names, prompts and seeds -> video frames.

A diffusers :class:`~diffusers.DiffusionPipeline` made of ``unet`` (:class:`TrackDiffusionUNet`),
``vae`` (:class:`~diffusers.AutoencoderKL`), ``text_encoder`` (CLIP text model), ``tokenizer``
and ``scheduler`` (default: DPM-Solver++ 2M, deterministic). ``save_pretrained(dir)`` /
``from_pretrained(dir)`` use the diffusers directory layout of :mod:`tdgen.modelinfo`;
``tdgen.json`` travels with them as :attr:`TrackDiffusionPipeline.model_info`.
:func:`tdgen.modeldir.load_pipeline` is the way in from ``--model`` (presets, the cache).

The pipeline takes arrays, as diffusers pipelines take tensors: ``boxes`` (B, F, N, 4)
normalised xyxy, ``masks`` (B, F, N), ``category_names`` (B, N). It knows nothing of annotation
files or clips; :func:`tdgen.conditioning.clip_batch` turns planned clips into these arrays (the
data flow and layers are in docs/architecture.md).

Sampling:

* Each clip's initial noise is drawn on the CPU from ``torch.Generator("cpu").manual_seed(seed)``
  and moved to the device, so it depends on nothing but the clip's seed.
* Classifier-free guidance: the unconditional branch is the empty prompt **and** every box mask 0
  (boxes and category embeddings are still passed, as the published TrackDiffusion pipeline
  does); both branches go through the UNet in one batched forward (``2B`` rows: unconditional
  first). ``guidance_scale == 1`` skips the unconditional branch. ``guidance="rescaled"`` is the
  published demo's norm-rescaled guidance, ``w = (g - 1) / (||e_c - e_u|| / ||e_c||)``,
  ``e = e_u + w (e_c - e_u)``, with the norms taken **per clip** (the published code takes them
  over the whole batch tensor; per clip keeps a clip's result independent of its batch-mates,
  and equals the published formula for batch size 1).
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

Host syncs: the denoising loop never waits for the device (no ``.item()``, ``bool(tensor)``,
copies to the host, data-dependent shapes or ``torch.cuda.synchronize``), so on a GPU the host
queues the next steps while the current one runs. The scheduler is given its begin index, so its
first step does not look the timestep up in the schedule (``nonzero`` + ``.item()``); its sigma
arithmetic runs on CPU scalars, which the kernels take as arguments. UNet time is taken with CUDA
events, read after the loop. :func:`tdgen.model.syncguard.forbid_host_sync` checks all this in the
tests, on the CPU too.

Timings of the last call are in :attr:`TrackDiffusionPipeline.last_timings`.
"""

from __future__ import annotations

import inspect
import json
import math
import time
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin

from .atomic import atomic_directory, give_plain_modes
from .errors import UsageError
from .model.autoencoder import downscale_factor, load_autoencoder
from .model.unet import TrackDiffusionUNet
from .modelinfo import TDGEN_JSON, ModelError, ModelInfo, ModelWarning, check_model_dir, write_model_index
from .schedulers import sampling_scheduler

__all__ = [
    "TrackDiffusionPipeline",
    "PipelineInputError",
    "GUIDANCE_MODES",
    "OUTPUT_TYPES",
    "TDGEN_CONFIG_NAME",
    "default_scheduler",
    "quiet_libraries",
]

GUIDANCE_MODES = ("cfg", "rescaled")
OUTPUT_TYPES = ("np", "pt", "latent")
TDGEN_CONFIG_NAME = TDGEN_JSON


class PipelineInputError(UsageError, ValueError):
    """Bad arguments to the pipeline (a size not a multiple of 8, mismatched lengths, ...).

    A :class:`~tdgen.errors.UsageError` (exit 2 in the CLI) and a ``ValueError``.
    """


def default_scheduler(config: Mapping[str, Any] | None = None) -> DPMSolverMultistepScheduler:
    """DPM-Solver++ 2M (deterministic multistep) on the noise schedule of ``config`` (another
    scheduler's config; :func:`tdgen.schedulers.noise_schedule` says which keys and defaults)."""
    return sampling_scheduler(config)


def quiet_libraries() -> None:
    """Silence diffusers' and transformers' own progress bars and info logs (tdgen shows its own)."""
    try:
        import diffusers.utils.logging as dlog

        dlog.disable_progress_bar()
        dlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass
    try:
        import transformers.utils.logging as tlog

        tlog.disable_progress_bar()
        tlog.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def _transformers_major() -> int:
    import transformers

    return int(transformers.__version__.split(".")[0])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _UNetTimer:
    """Time spent in UNet forwards without making the host wait for them.

    On CUDA each forward is bracketed by a pair of events, read once after the loop's final
    synchronize; elsewhere the host clock (CPU kernels run synchronously anyway).
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.calls = 0
        self._host_s = 0.0
        self._events: list[tuple[Any, Any]] = []
        self._t0 = 0.0

    def __enter__(self) -> "_UNetTimer":
        self.calls += 1
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            self._events.append((start, end))
        else:
            self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            self._events[-1][1].record()
        else:
            self._host_s += time.perf_counter() - self._t0

    def seconds(self) -> float:
        """Total seconds; on CUDA call it only after the device has been synchronized."""
        return self._host_s + sum(a.elapsed_time(b) for a, b in self._events) / 1000.0


class TrackDiffusionPipeline(DiffusionPipeline):
    r"""Tracklet-conditioned text-to-video sampling (see the module docstring).

    Attributes:
        model_info: the model's ``tdgen.json`` (:class:`~tdgen.modelinfo.ModelInfo`; empty when
            built by hand). :attr:`tdgen_config` is the same record as a plain dict.
        last_timings: seconds of the last call: ``total_s``, ``unet_s`` (UNet forwards only; on
            CUDA their device time, from events), ``text_s`` (text encoder, cache misses only), ``vae_s`` (decoding), ``other_s``
            (the rest: noise, scheduler, guidance arithmetic, copies), plus ``steps``,
            ``unet_calls``, ``clips``, ``frames``.
        text_cache_size: how many prompt embeddings the LRU cache keeps.
        tdgen_unused_weights: UNet tensors of the loaded files that its config has no place for.
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
        self.model_info = ModelInfo()
        self.tdgen_unused_weights: list[str] = []
        self.last_timings: dict[str, float] = {}
        self.text_cache_size = 4096
        self._prompt_cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self._category_cache: dict[str, torch.Tensor] = {}

    @property
    def tdgen_config(self) -> dict[str, Any]:
        """:attr:`model_info` as the JSON object of ``tdgen.json`` (a fresh copy: assign, don't edit)."""
        return self.model_info.to_dict()

    @tdgen_config.setter
    def tdgen_config(self, value: ModelInfo | Mapping[str, Any]) -> None:
        self.model_info = value if isinstance(value, ModelInfo) else ModelInfo.from_dict(value,
                                                                                         source="tdgen_config")

    # ------------------------------------------------------------------ save / load

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *, torch_dtype=None, device: str = "cpu",
                        **kwargs):  # type: ignore[override]
        """Load a local tdgen model directory, checked (:func:`tdgen.modelinfo.check_model_dir`).

        Components are loaded from their subfolders by their known classes rather than through
        diffusers' dynamic class lookup, the UNet in eval mode; nothing is downloaded. The saved
        scheduler supplies the training noise schedule and sampling uses DPM-Solver++.
        ``torch_dtype`` (default float32) applies to UNet, VAE and text encoder. Errors are
        :class:`~tdgen.modelinfo.ModelError` naming the directory and component; UNet weights
        its config leaves unused are dropped with a :class:`~tdgen.modelinfo.ModelWarning`.
        """
        from transformers import CLIPTextModel, CLIPTokenizer  # only to load; an installed extra

        if kwargs:
            raise PipelineInputError(f"unsupported from_pretrained arguments: {', '.join(sorted(kwargs))}")
        quiet_libraries()
        root = Path(pretrained_model_name_or_path)
        check_model_dir(root)
        info = ModelInfo.read(root)
        dtype = torch_dtype or torch.float32

        def load(comp: str, fn):
            try:
                return fn(str(root / comp))
            except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ModelError(f"{root / comp}: cannot load {comp}: {first}") from None

        unet, unet_info = load("unet", lambda p: TrackDiffusionUNet.from_pretrained(p, torch_dtype=dtype,
                                                                                   output_loading_info=True))
        unused = sorted(unet_info["unexpected_keys"])
        if unused:
            warnings.warn(f"{root / 'unet'}: {len(unused)} weight tensors are not used by its config.json and were "
                          f"dropped (first: {unused[0]}); switched-off modules such as use_enhancer do this",
                          ModelWarning, stacklevel=2)
        vae = load("vae", lambda p: load_autoencoder(p, torch_dtype=dtype))
        text_encoder = load("text_encoder", lambda p: CLIPTextModel.from_pretrained(p, dtype=dtype)
                            if _transformers_major() >= 5 else CLIPTextModel.from_pretrained(p, torch_dtype=dtype))
        tokenizer = load("tokenizer", CLIPTokenizer.from_pretrained)
        sched_file = root / "scheduler" / "scheduler_config.json"
        try:
            sched_cfg = json.loads(sched_file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ModelError(f"{sched_file}: cannot read: {exc}") from None
        for m in (unet, vae, text_encoder):
            m.eval()
            m.requires_grad_(False)
        pipe = cls(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                   scheduler=default_scheduler(sched_cfg))
        pipe.model_info = info
        pipe.tdgen_unused_weights = unused
        try:
            pipe.to(device)
        except (RuntimeError, AssertionError) as exc:
            raise ModelError(f"cannot move the model to {device!r}: {str(exc).splitlines()[0]}") from None
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def save_pretrained(self, save_directory, *, overwrite: bool = False) -> None:  # type: ignore[override]
        """Write a model directory (the layout of :mod:`tdgen.modelinfo`): every component in
        safetensors, the scheduler config, ``model_index.json`` and :attr:`model_info` as
        ``tdgen.json``; atomically (a crash leaves no directory)."""
        with atomic_directory(save_directory, overwrite=overwrite) as tmp:
            for name in ("unet", "vae", "text_encoder"):
                getattr(self, name).save_pretrained(tmp / name, safe_serialization=True)
            self.tokenizer.save_pretrained(tmp / "tokenizer")
            self.scheduler.save_config(tmp / "scheduler")
            write_model_index(tmp)
            self.model_info.write(tmp)
            give_plain_modes(tmp)  # safetensors writes its files 0600

    # ------------------------------------------------------------------ properties

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent cell (8 for SD VAEs and the space-to-depth autoencoder)."""
        return downscale_factor(self.vae)

    def default_size(self) -> tuple[int, int]:
        """``(height, width)`` used when the call gives none: ``tdgen.json``'s resolution
        (``[W, H]``), else the UNet's ``sample_size`` times the VAE factor."""
        res = self.model_info.resolution
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
    def _input_arrays(boxes: Any, masks: Any, category_names: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three conditioning inputs as numpy arrays, their shapes checked against each other."""

        def as_np(name: str, x: Any) -> np.ndarray:
            arr = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
            if arr.dtype.kind not in "fiub":
                raise PipelineInputError(
                    f"{name} must be a numeric array, got {type(x).__name__}"
                    + (f" of {arr.dtype}" if isinstance(x, np.ndarray) else "")
                    + "; to sample planned clips, pass tdgen.conditioning.clip_batch(clips).as_kwargs()")
            return arr.astype(np.float32, copy=False)

        boxes_np = as_np("boxes", boxes)
        mask_np = as_np("masks", masks)
        if boxes_np.ndim != 4 or boxes_np.shape[-1] != 4 or boxes_np.shape[0] == 0:
            raise PipelineInputError(f"boxes must be (B, F, N, 4) with B >= 1, got {boxes_np.shape}")
        B, F, N, _ = boxes_np.shape
        if mask_np.shape != (B, F, N):
            raise PipelineInputError(f"masks must be {(B, F, N)} to match boxes, got {mask_np.shape}")
        names = None if isinstance(category_names, str) else np.asarray(category_names, dtype=object)
        if names is None or names.shape != (B, N):
            raise PipelineInputError(f"category_names must be {(B, N)} (one name per slot, \"\" where unused) to "
                                     f"match boxes, got {'a string' if names is None else names.shape}")
        return boxes_np, mask_np, names

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
        boxes: np.ndarray | torch.Tensor,
        masks: np.ndarray | torch.Tensor,
        category_names: Sequence[Sequence[str]] | np.ndarray,
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
        """Generate one video per row of the batch.

        Args:
            boxes: ``(B, F, N, 4)`` float boxes, normalised ``x0, y0, x1, y1`` in [0, 1], slot
                ``n`` one track across the F frames (numpy or torch).
            masks: ``(B, F, N)``: 1 where slot ``n`` is present in frame ``f``, else 0.
            category_names: ``(B, N)`` category name per slot, ``""`` for unused slots.
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
        boxes_np, mask_np, names_np = self._input_arrays(boxes, masks, category_names)
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
        timings = {"text_s": 0.0, "unet_s": 0.0, "vae_s": 0.0}

        _sync(device)
        t0 = time.perf_counter()
        chunks = self._unet_inputs(boxes_np, mask_np, names_np, prompts, do_cfg=do_cfg, drop_boxes=drop_boxes,
                                   clips_per_forward=clips_per_forward)
        _sync(device)
        timings["text_s"] = time.perf_counter() - t0

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        if hasattr(self.scheduler, "set_begin_index"):
            # else the first step looks its timestep up in the schedule (nonzero + .item(): a host sync)
            self.scheduler.set_begin_index(0)
        timesteps = self.scheduler.timesteps
        latents, generators = self._initial_noise(seeds, F, height, width)
        step_kwargs: dict[str, Any] = {"return_dict": False}
        if "generator" in inspect.signature(self.scheduler.step).parameters:
            step_kwargs["generator"] = generators  # per-clip noise for stochastic schedulers

        # ---- denoising loop: nothing in it waits for the device (see _denoise_step)
        timer = _UNetTimer(device)
        for i, t in enumerate(timesteps):
            latents = self._denoise_step(i, t, latents, chunks, do_cfg=do_cfg, guidance=guidance,
                                         guidance_scale=float(guidance_scale), step_kwargs=step_kwargs, timer=timer,
                                         callback=callback)
        unet_calls = timer.calls
        _sync(device)
        timings["unet_s"] = timer.seconds()

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

    def _unet_inputs(self, boxes_np: np.ndarray, mask_np: np.ndarray, names_np: np.ndarray, prompts: list[str],
                     *, do_cfg: bool, drop_boxes: bool,
                     clips_per_forward: int | None) -> list[tuple[int, int, dict[str, torch.Tensor]]]:
        """The UNet's conditioning keywords per forward, ``(first clip, end clip, keywords)``, built
        once per call: text and category embeddings, boxes and masks, with the unconditional
        rows (empty prompt, every mask 0) first when guiding."""
        device = self._execution_device
        unet_dtype = self.unet.dtype
        B, F, N, _ = boxes_np.shape
        texts = prompts + ([""] if do_cfg else [])
        text_emb = self.encode_prompts(texts).to(device=device, dtype=unet_dtype)
        flat_names = [str(n) if n is not None else "" for n in names_np.reshape(-1)]
        distinct = list(dict.fromkeys(flat_names))
        table = self.encode_categories(distinct).to(device=device, dtype=unet_dtype)

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
        return chunks

    def _initial_noise(self, seeds: list[int], frames: int, height: int,
                       width: int) -> tuple[torch.Tensor, list[torch.Generator]]:
        """Initial latents ``(B, C, F, h, w)``: per clip, on the CPU, from the clip's own generator."""
        lat_shape = (int(self.unet.config.in_channels), frames, height // self.vae_scale_factor,
                     width // self.vae_scale_factor)
        generators = [torch.Generator("cpu").manual_seed(s) for s in seeds]
        latents = torch.stack([torch.randn(lat_shape, generator=g, dtype=torch.float32) for g in generators])
        return latents.to(self._execution_device) * float(self.scheduler.init_noise_sigma), generators

    def _denoise_step(self, index: int, t: torch.Tensor, latents: torch.Tensor,
                      chunks: Sequence[tuple[int, int, Mapping[str, torch.Tensor]]], *, do_cfg: bool, guidance: str,
                      guidance_scale: float, step_kwargs: Mapping[str, Any], timer: "_UNetTimer",
                      callback: Callable[[int, Any, torch.Tensor], Any] | None) -> torch.Tensor:
        """One sampler step: the UNet on every chunk, guidance, the scheduler update, the callback.

        Host-sync free (``tests/test_pipeline_sync.py`` runs it under
        :func:`tdgen.model.syncguard.forbid_host_sync`): the host only queues work, so on a GPU
        it runs ahead of the kernels instead of waiting for each step.
        """
        model_input = self.scheduler.scale_model_input(latents, t)
        preds = [self._guided_noise(model_input[a:b], t, kw, do_cfg, guidance, guidance_scale, timer)
                 for a, b, kw in chunks]
        noise_pred = preds[0] if len(preds) == 1 else torch.cat(preds)
        latents = self.scheduler.step(noise_pred, t, latents, **step_kwargs)[0]
        if callback is not None:
            callback(index, t, latents)
        return latents

    def _guided_noise(self, x: torch.Tensor, t: Any, kw: Mapping[str, torch.Tensor], do_cfg: bool, guidance: str,
                      g: float, timer: "_UNetTimer") -> torch.Tensor:
        """One UNet forward of a chunk of clips (both guidance branches at once), guided and timed."""
        if do_cfg:
            x = torch.cat([x, x])
        with timer:
            eps = self.unet(x.to(self.unet.dtype), t, return_dict=False, **kw)[0]
        eps = eps.float()
        if not do_cfg:
            return eps
        e_u, e_c = eps.chunk(2)
        diff = e_c - e_u
        if guidance == "cfg":
            return torch.add(e_u, diff, alpha=g)
        return e_u + self._rescaled_weights(e_c, diff, g) * diff

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
