"""One training run on accelerate: :class:`Trainer` sets it up, :meth:`Trainer.run` trains.

The overview (the objective, determinism, the ``OUT`` layout) is in :mod:`tdgen.train.loop`;
the objective's pieces are in :mod:`tdgen.train.objective`, checkpoints in
:mod:`tdgen.train.checkpoints`, the exported model in :mod:`tdgen.train.export`.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np
import torch

from ..errors import UsageError
from ..launch import current_launch
from ..model.autoencoder import SpaceToDepthAutoencoder
from ..schedulers import sampling_scheduler
from .batches import MicroBatches, micro_batch_loader
from .checkpoints import (
    check_resumable,
    checkpoint_name,
    latest_checkpoint,
    read_checkpoint_state,
    restore_checkpoint,
    save_checkpoint,
    truncate_log,
)
from .config import TrainConfig, TrainingError, TrainResult
from .data import ClipDataset, ClipOrder, DataSummary, LatentCache, derive_seed, encode_pixels, latent_cache_key, \
    precompute_latents
from .ema import EMA
from .export import export_info, save_model
from .objective import (
    apply_condition_dropout,
    choose_prediction_type,
    draw_sample_noise,
    foreground_weights,
    lr_at,
    noise_scheduler_from,
    predict,
    prediction_target,
    set_gates,
    weighted_mse,
)
from .stages import set_trainable
from .starting_point import build_starting_point

__all__ = ["Progress", "Trainer", "train"]

Progress = Callable[[dict[str, Any]], None]
"""Receives the progress events of :func:`train` (main process only)."""


def _ignore(_: dict[str, Any]) -> None:
    pass


def _reset_single_process_accelerate_state() -> None:
    """Let several :func:`train` calls in one (non-distributed) process use different settings:
    accelerate keeps its state in process-wide singletons that refuse a second ``mixed_precision``."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if distributed or current_launch().launched:
        return
    try:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()
    except (ImportError, AttributeError):  # pragma: no cover - other accelerate versions
        pass


class Trainer:
    """A training run, set up and ready: the model on its device, the data, the optimizer and,
    with ``config.resume``, the state of the newest checkpoint in ``config.out``.

    Construction checks the configuration and raises :class:`UsageError` before anything is
    written when it is bad or when ``OUT`` already holds a run and ``resume`` is off.
    """

    def __init__(self, config: TrainConfig, progress: Progress | None = None) -> None:
        config.check()
        self.config = config
        self.out = config.out
        self.log_file = self.out / "train_log.jsonl"
        self.resume_from = latest_checkpoint(self.out) if config.resume else None
        if not config.resume and (self.log_file.exists() or latest_checkpoint(self.out) is not None):
            raise UsageError(f"{self.out} already holds a training run; pass --resume to continue it, or choose "
                             "another --out")
        self._start_accelerator(progress)
        self.report({"event": "setup", "message": "loading the model"})
        self._load_model()
        self._load_data()
        self._make_optimizer()
        self._restore()

    # ------------------------------------------------------------------ set-up

    def _start_accelerator(self, progress: Progress | None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        config = self.config
        if config.mixed_precision == "fp16" and (config.cpu or not torch.cuda.is_available()):
            raise UsageError("--mixed-precision fp16 needs a GPU; on the CPU use no (bf16 runs but is much slower)")
        _reset_single_process_accelerate_state()
        # accelerate only sets up multi-process CPU training (gloo) when told cpu=True.
        launched = current_launch().launched
        self.accelerator = Accelerator(mixed_precision=config.mixed_precision,
                                       gradient_accumulation_steps=config.grad_accum,
                                       cpu=config.cpu or (launched and not torch.cuda.is_available()))
        self.main: bool = self.accelerator.is_main_process
        self.report: Progress = progress if (progress is not None and self.main) else _ignore
        self.world: int = self.accelerator.num_processes
        self.rank: int = self.accelerator.process_index
        self.device: torch.device = self.accelerator.device
        if self.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.accelerator.wait_for_everyone()
        set_seed(derive_seed(config.seed, "setup") % (2 ** 31))

    def _load_model(self) -> None:
        config, device = self.config, self.device
        self.start = build_starting_point(config, self.main)
        pipe = self.pipe = self.start.pipe
        unet, vae, text_encoder = pipe.unet, pipe.vae, pipe.text_encoder
        # The frozen parts run in the mixed-precision dtype on a GPU; the CPU stays in float32.
        mixed = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.mixed_precision, torch.float32)
        self.frozen_dtype = mixed if device.type == "cuda" else torch.float32
        # The space-to-depth autoencoder is a reshape: keep it exact in float32.
        self.vae_dtype = torch.float32 if isinstance(vae, SpaceToDepthAutoencoder) else self.frozen_dtype
        vae.requires_grad_(False).eval().to(device, self.vae_dtype)
        text_encoder.requires_grad_(False).eval().to(device, self.frozen_dtype)
        pipe.clear_text_cache()
        unet.to(device, torch.float32)
        self.trainable = set_trainable(unet, config.stage)
        unet.train()
        if config.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        gate = config.gate_init if config.gate_init is not None else (1.0 if config.init is not None else None)
        if gate is not None:
            n_gates = set_gates(unet, gate)
            self.report({"event": "setup",
                         "message": f"{n_gates} layout gates set to {gate:g} (tanh = {math.tanh(gate):.2f})"})
        current = pipe.scheduler.config.prediction_type
        wanted = choose_prediction_type(config.prediction_type, current, int(unet.config.in_channels),
                                        int(unet.config.block_out_channels[0]), fresh=config.init is not None)
        if wanted != current:
            pipe.scheduler = sampling_scheduler({**pipe.scheduler.config, "prediction_type": wanted})
            self.report({"event": "setup",
                         "message": f"training with prediction type {wanted} (the model had {current})"})
        self.scheduler = noise_scheduler_from(pipe.scheduler.config)
        self.num_timesteps = int(self.scheduler.config.num_train_timesteps)
        self.prediction: str = self.scheduler.config.prediction_type
        self.scale = float(vae.config.scaling_factor)
        shift = vae.config.get("shift_factor", None)
        self.shift = float(shift) if shift is not None else None
        self.unet, self.vae, self.text_encoder = unet, vae, text_encoder

    def _load_data(self) -> None:
        config, start = self.config, self.start
        self.report({"event": "setup", "message": "planning clips"})
        ds = ClipDataset(config.ann, images=config.images, captions=config.captions, frames=start.frames,
                         slots=start.slots, resolution=start.resolution, stride=config.stride, step=config.step,
                         min_tracks=config.min_tracks, prompt_template=start.prompt_template)
        if config.cache_latents:
            key = latent_cache_key(self.vae, ann=config.ann, images_root=ds.images_root, resolution=start.resolution,
                                   spec=ds.spec)
            cache = LatentCache(self.out / "latent_cache" / key)
            encoded = precompute_latents(
                ds, self.vae, cache, flips=config.hflip, shard=(self.rank, self.world),
                progress=lambda d, t: self.report({"event": "latents", "done": d, "total": t}))
            self.accelerator.wait_for_everyone()
            if encoded and self.main:
                self.report({"event": "setup", "message": f"encoded {encoded} clip latents into {cache.root}"})
            ds.latent_cache = cache
        self.dataset = ds
        self.summary = DataSummary.of(ds, config.captions)
        self.order = ClipOrder(len(ds), config.seed, config.hflip)

    def _make_optimizer(self) -> None:
        config = self.config
        self.params = [p for n, p in self.unet.named_parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(self.params, lr=config.lr, betas=(config.adam_beta1, config.adam_beta2),
                                      eps=config.adam_epsilon, weight_decay=config.weight_decay)
        self.warmup = config.warmup_steps if config.warmup_steps is not None else min(1000, config.steps // 20)
        self.unet, self.optimizer = self.accelerator.prepare(self.unet, optimizer)
        self.raw_unet = self.accelerator.unwrap_model(self.unet)
        self.named_trainable = [(n, p) for n, p in self.raw_unet.named_parameters() if p.requires_grad]
        self.ema = EMA(self.named_trainable, config.ema_decay) if config.ema_decay > 0 else None

    def _restore(self) -> None:
        """Counters of a fresh run, or those of the checkpoint to resume (with its model, optimizer,
        EMA and RNG states); the log keeps only the lines up to where the run continues."""
        self.start_step, self.step, self.seconds, self.samples = 0, 0, 0.0, 0
        self.recent: deque[float] = deque(maxlen=100)  # the last losses: final_loss is their mean
        self.checkpoints: list[Path] = []
        if self.resume_from is not None:
            state = read_checkpoint_state(self.resume_from)
            check_resumable(self.resume_from, state, self.config.resume_fields(), self.world)
            restore_checkpoint(self.accelerator, self.resume_from, state, self.ema)
            self.start_step = self.step = int(state["step"])
            self.seconds = float(state.get("seconds", 0.0))
            self.samples = int(state.get("samples", 0))
            self.recent.extend(float(x) for x in state.get("recent_losses", []))
            if self.main:
                truncate_log(self.log_file, self.start_step)
        elif self.main and self.log_file.exists():
            self.log_file.unlink()
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ one step

    @property
    def trainable_parameters(self) -> int:
        """How many scalars the run trains."""
        return sum(p.numel() for _, p in self.named_trainable)

    def lr(self, step: int) -> float:
        """The learning rate of optimizer step ``step`` (0-based)."""
        config = self.config
        return lr_at(step, config.lr, self.warmup, int(config.steps), config.lr_schedule)

    def _loss_weights(self, boxes: torch.Tensor, masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """The foreground weights of a micro-batch, divided by their mean over the *global*
        micro-batch (every process's part), so that ``world`` processes of ``b`` clips train like
        one process of ``world * b``."""
        if self.world == 1:
            return foreground_weights(boxes, masks, size, self.config.fg_weight)
        weights = foreground_weights(boxes, masks, size, self.config.fg_weight, normalize=False)
        # Every process holds the same number of cells, so the mean of the local means is the global mean.
        return weights / self.accelerator.reduce(weights.mean(), reduction="mean")

    def micro_loss(self, batch: dict[str, Any], step: int, micro: int) -> torch.Tensor:
        """The loss of one micro-batch (``micro`` of optimizer step ``step``), before backward."""
        config, device = self.config, self.device
        positions = batch["positions"]
        B = len(positions)
        if "latents" in batch:
            z = batch["latents"].to(device, torch.float32)
        else:
            z = encode_pixels(self.vae, batch["pixels"].to(device))
        latents = ((z - self.shift) if self.shift is not None else z) * self.scale
        F, h, w = latents.shape[2:]
        noise, timesteps, drop_t, drop_b = draw_sample_noise(config.seed, positions, latents.shape[1:],
                                                             self.num_timesteps, config.text_dropout,
                                                             config.box_dropout)
        noise, timesteps = noise.to(device), timesteps.to(device)
        boxes = batch["boxes"].to(device)
        masks = batch["mask"].to(device)
        weights = self._loss_weights(boxes, masks, (h, w))
        prompts, masks = apply_condition_dropout(batch["prompt"], masks, drop_t, drop_b)
        names = [n for row in batch["category_names"] for n in row]
        N = boxes.shape[2]
        text = self.pipe.encode_prompts(prompts).to(device)
        categories = self.pipe.encode_categories(names).to(device).view(B, 1, N, -1).expand(B, F, N, -1)
        noisy = self.scheduler.add_noise(latents, noise, timesteps)
        target = prediction_target(self.scheduler, self.prediction, latents, noise, timesteps)
        # Dropout inside the UNet draws from the global RNG: seed it per (step, micro-step, process).
        # (Its masks are drawn per batch tensor, so with dropout n processes of b clips are a
        # different, equally valid draw than one process of n * b; without dropout nothing draws.)
        torch.manual_seed(derive_seed(config.seed, "forward", step, micro, self.rank) % (2 ** 63))
        pred = predict(self.unet, noisy, timesteps, text, boxes, masks, categories,
                       frames_apart=config.stage == "1")
        return weighted_mse(pred, target, weights)

    def _micro_step(self, batch: dict[str, Any], step: int, micro: int) -> tuple[torch.Tensor, Any]:
        """Forward and backward of one micro-batch; the optimizer steps on the last one of a step.
        Returns the loss and, when gradients were clipped, their norm before clipping."""
        accelerator = self.accelerator
        with accelerator.accumulate(self.unet):
            loss = self.micro_loss(batch, step, micro)
            accelerator.backward(loss)
            grad_norm = None
            if accelerator.sync_gradients and self.config.max_grad_norm > 0:
                grad_norm = accelerator.clip_grad_norm_(self.params, self.config.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return loss, grad_norm

    def _step_loss(self, micro_losses: list[torch.Tensor], step: int) -> float:
        """Update the EMA and return the loss of optimizer step ``step`` (0-based): the mean over its
        micro-batches and the processes."""
        if self.ema is not None:
            self.ema.update(self.named_trainable)
        step_loss = torch.stack(micro_losses).mean()
        if self.world > 1:
            step_loss = self.accelerator.gather(step_loss[None]).mean()
        value = float(step_loss)
        if not math.isfinite(value):
            raise TrainingError(f"training diverged: loss {value} at step {step + 1} (resume from the last "
                                "checkpoint with a lower --lr, or use --mixed-precision no)")
        return value

    def _log_step(self, log: IO[str], lr: float, dt: float, grad_norm: Any, window: list[float]) -> None:
        """Append the JSON line of the steps in ``window`` (ending at :attr:`step`) to the log."""
        rec = {"step": self.step, "loss": float(np.mean(window)), "lr": lr, "seconds": round(dt, 4),
               "elapsed": round(self.seconds, 3),
               "samples_per_s": round(self.global_batch / dt, 4) if dt else None,
               "epoch": round(self.samples / len(self.dataset), 4)}
        if len(window) > 1:
            rec["steps_averaged"] = len(window)
        if grad_norm is not None:
            rec["grad_norm"] = float(grad_norm)
        log.write(json.dumps(rec) + "\n")
        log.flush()

    # ------------------------------------------------------------------ checkpoints and exports

    def save_checkpoint(self) -> Path:
        """Checkpoint the run at :attr:`step` (every process together) and report it."""
        config, step = self.config, self.step
        state = {"step": step, "seconds": self.seconds, "samples": self.samples, "world_size": self.world,
                 "ema_updates": self.ema.updates if self.ema is not None else 0, "recent_losses": list(self.recent),
                 "lr": self.lr(step - 1) if step else config.lr, "config": config.resume_fields()}
        path = save_checkpoint(self.accelerator, self.out / "checkpoints", step, state, self.ema,
                               config.keep_checkpoints)
        self.checkpoints.append(path)
        self.report({"event": "checkpoint", "path": str(path)})
        return path

    def export(self, final_loss: float | None) -> Path:
        """Write ``OUT/model`` (EMA weights) as of :attr:`step` and report it."""
        target = self.out / "model"
        if self.main:
            info = export_info(self.config, self.start, self.summary, step=self.step, seconds=self.seconds,
                               samples=self.samples, final_loss=final_loss, trainable_tensors=len(self.trainable),
                               used_ema=self.ema is not None)
            # saved in float32, then back to the dtypes they train in
            save_model(target, unet=self.raw_unet, vae=self.vae.to(torch.float32),
                       text_encoder=self.text_encoder.to(torch.float32), tokenizer=self.pipe.tokenizer,
                       scheduler=self.pipe.scheduler, ema=self.ema, info=info)
            self.vae.to(self.vae_dtype)
            self.text_encoder.to(self.frozen_dtype)
        self.accelerator.wait_for_everyone()
        self.report({"event": "export", "path": str(target)})
        return target

    # ------------------------------------------------------------------ the loop

    def run(self) -> TrainResult:
        """Train from :attr:`start_step` to ``config.steps`` (or for ``stop_after`` steps), then export
        the model (or, stopped early, leave a checkpoint). Call it once per :class:`Trainer`."""
        config = self.config
        total = int(config.steps)
        end_step = total if config.stop_after is None else min(total, self.start_step + int(config.stop_after))
        accum = int(config.grad_accum)
        self.global_batch = int(config.batch_size) * self.world * accum
        batches = MicroBatches(self.dataset, self.order, int(config.batch_size), self.world, self.rank)
        loader = micro_batch_loader(batches, self.start_step * accum, end_step * accum,
                                    num_workers=config.num_workers, pin_memory=self.device.type == "cuda")
        self.report({"event": "start", "step": self.start_step, "total": total, "clips": len(self.dataset),
                     "trainable": self.trainable_parameters})
        losses: list[tuple[int, float]] = []
        window: list[float] = []  # losses of the steps since the last log line
        micro_losses: list[torch.Tensor] = []
        model_dir: Path | None = None
        t_step = time.perf_counter()
        log = open(self.log_file, "a", encoding="utf-8") if self.main else None
        try:
            for g, batch in enumerate(loader, start=self.start_step * accum):
                step, micro = divmod(g, accum)
                lr = self.lr(step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                loss, grad_norm = self._micro_step(batch, step, micro)
                micro_losses.append(loss.detach())
                if micro != accum - 1:
                    continue
                value = self._step_loss(micro_losses, step)
                micro_losses = []
                now = time.perf_counter()
                dt, t_step = now - t_step, now
                self.seconds += dt
                self.samples += self.global_batch
                self.step = step + 1
                losses.append((self.step, value))
                self.recent.append(value)
                window.append(value)
                if log is not None and (self.step % config.log_every == 0 or self.step == end_step):
                    self._log_step(log, lr, dt, grad_norm, window)
                    window = []
                self.report({"event": "step", "step": self.step, "total": total, "loss": value, "lr": lr,
                             "samples_per_s": self.global_batch / dt if dt else None})
                if config.checkpoint_every and self.step % config.checkpoint_every == 0:
                    self.save_checkpoint()
                if config.export_every and self.step % config.export_every == 0 and self.step < total:
                    model_dir = self.export(float(np.mean(self.recent)) if self.recent else None)
                # the time of checkpoints and exports does not count as training time
                t_step = time.perf_counter()
        finally:
            if log is not None:
                log.close()

        final_loss = float(np.mean(self.recent)) if self.recent else None
        if self.step < total:
            # Stopped early on purpose (stop_after): leave a checkpoint to resume from.
            done = self.checkpoints and self.checkpoints[-1].name == checkpoint_name(self.step)
            if not done and self.step > self.start_step:
                self.save_checkpoint()
        else:
            model_dir = self.export(final_loss)
        self.accelerator.end_training()
        return TrainResult(out=self.out, model_dir=model_dir, steps=self.step, start_step=self.start_step,
                           final_loss=final_loss, losses=losses, seconds=self.seconds, samples=self.samples,
                           checkpoints=self.checkpoints, resumed_from=self.resume_from,
                           trainable_parameters=self.trainable_parameters, log_file=self.log_file,
                           main_process=self.main)


def train(config: TrainConfig, progress: Progress | None = None) -> TrainResult:
    """Train (or fine-tune) a TrackDiffusion UNet; see :mod:`tdgen.train.loop`.

    ``progress`` (main process only) receives dicts: ``{"event": "setup", "message": ...}``,
    ``{"event": "latents", "done": i, "total": n}``,
    ``{"event": "start", "step": s0, "total": T, "clips": n, "trainable": p}``,
    ``{"event": "step", "step": s, "total": T, "loss": ..., "lr": ..., "samples_per_s": ...}``,
    ``{"event": "checkpoint" | "export", "path": ...}``.

    Raises:
        UsageError: bad configuration, or ``OUT`` already holds a run and ``resume`` is off.
        TrainingError: the loss became NaN or infinite.
    """
    return Trainer(config, progress).run()
