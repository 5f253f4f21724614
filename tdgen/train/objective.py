"""The training objective: what the UNet is asked to predict, from what, and how it is scored.

One sample of one optimizer step:

1. Two independent condition-dropout draws (:func:`draw_condition_dropout`): with
   ``text_dropout`` the prompt becomes ``""``; with ``box_dropout`` **every** box mask of the clip
   becomes 0 (null grounding tokens, null ROI features, null motion inputs; the identity embedding
   remains). This is what classifier-free guidance's unconditional branch is at sampling time.
2. The DDPM forward process on the model's noise schedule (:func:`noise_scheduler_from`): ``t``
   uniform in ``[0, T)``, Gaussian noise, ``x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps``
   (:func:`draw_sample_noise` draws all of it from one generator per sample).
3. The UNet predicts ``eps``, ``v`` or the clean latents (:func:`prediction_target`,
   :func:`choose_prediction_type`); the loss is the foreground-reweighted MSE
   (:func:`foreground_weights`, :func:`weighted_mse`). The weights come from the data's boxes,
   before box dropout, as in the published trainer.
4. The learning rate follows :func:`lr_at` (linear warm-up, then cosine or constant).
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

from ..errors import UsageError
from ..schedulers import training_scheduler
from .data import derive_seed

__all__ = [
    "apply_condition_dropout",
    "choose_prediction_type",
    "draw_condition_dropout",
    "draw_sample_noise",
    "foreground_weights",
    "lr_at",
    "noise_scheduler_from",
    "predict",
    "prediction_target",
    "set_gates",
    "weighted_mse",
]


def foreground_weights(boxes: torch.Tensor, masks: torch.Tensor, size: tuple[int, int],
                       fg_weight: float = 2.0, normalize: bool = True) -> torch.Tensor:
    """Per-cell loss weights ``(B, 1, F, h, w)`` of the published foreground reweighting.

    For every present slot ``(b, f, k)`` with normalised box ``(x1, y1, x2, y2)``, latent rows
    ``int(y1 * h) .. int(y2 * h) - 1`` and columns ``int(x1 * w) .. int(x2 * w) - 1`` of frame
    ``f`` get weight ``fg_weight`` (overlaps do not add up); every other cell gets 1. With
    ``normalize`` the weights are divided by their mean over the whole tensor, as published
    (``W / W.mean()`` over the batch), so the loss keeps its scale. Vectorised: no Python loop
    over boxes.
    """
    h, w = int(size[0]), int(size[1])
    boxes = boxes.float()
    present = masks > 0.5 if masks.dtype != torch.bool else masks
    rows = torch.arange(h, device=boxes.device, dtype=torch.float32)
    cols = torch.arange(w, device=boxes.device, dtype=torch.float32)
    y0 = torch.floor(boxes[..., 1] * h)[..., None]
    y1 = torch.floor(boxes[..., 3] * h)[..., None]
    x0 = torch.floor(boxes[..., 0] * w)[..., None]
    x1 = torch.floor(boxes[..., 2] * w)[..., None]
    in_y = (rows >= y0) & (rows < y1) & present[..., None]  # (B, F, N, h)
    in_x = (cols >= x0) & (cols < x1)  # (B, F, N, w)
    inside = torch.einsum("bfnh,bfnw->bfhw", in_y.float(), in_x.float()) > 0
    weights = torch.where(inside, torch.tensor(float(fg_weight), device=boxes.device), torch.tensor(1.0,
                          device=boxes.device))
    if normalize:
        weights = weights / weights.mean()
    return weights[:, None]


def draw_condition_dropout(batch: int, text_p: float, box_p: float,
                           generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Two independent Bernoulli draws per clip: ``(drop_text, drop_boxes)``, bool ``(batch,)``.

    The uniforms are drawn as ``torch.rand(batch, 2)`` from ``generator`` (column 0: text,
    column 1: boxes), so a seeded generator gives reproducible decisions.
    """
    u = torch.rand(batch, 2, generator=generator)
    return u[:, 0] < text_p, u[:, 1] < box_p


def apply_condition_dropout(prompts: Sequence[str], masks: torch.Tensor, drop_text: torch.Tensor,
                            drop_boxes: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """Prompts with dropped ones replaced by ``""`` and masks ``(B, F, N)`` with every mask of a
    dropped clip set to 0 (boxes and category embeddings are left as they are, as published)."""
    prompts = ["" if bool(d) else str(p) for p, d in zip(prompts, drop_text.tolist())]
    keep = (~drop_boxes.to(masks.device)).to(masks.dtype).view(-1, *([1] * (masks.dim() - 1)))
    return prompts, masks * keep


def draw_sample_noise(seed: int, positions: Sequence[int], shape: Sequence[int], num_timesteps: int,
                      text_p: float, box_p: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The random draws of a micro-batch: ``(noise, timesteps, drop_text, drop_boxes)`` on the CPU.

    Sample ``i`` (global sample position ``positions[i]``) gets its own generator seeded from
    ``(seed, "sample", position)`` and draws, in this order, its two dropout decisions, its
    timestep and its noise of ``shape`` (one sample's latent shape). The draws therefore depend on
    the position alone, not on the batch size or the process it lands on.
    """
    B = len(positions)
    noise = torch.empty((B, *shape))
    timesteps = torch.empty(B, dtype=torch.long)
    drop_t = torch.empty(B, dtype=torch.bool)
    drop_b = torch.empty(B, dtype=torch.bool)
    for i, p in enumerate(positions):
        g = torch.Generator().manual_seed(derive_seed(seed, "sample", p))
        dt, db = draw_condition_dropout(1, text_p, box_p, g)
        drop_t[i], drop_b[i] = dt[0], db[0]
        timesteps[i] = torch.randint(0, num_timesteps, (1,), generator=g)[0]
        noise[i] = torch.randn(tuple(shape), generator=g)
    return noise, timesteps, drop_t, drop_b


def noise_scheduler_from(config: Mapping[str, Any] | None):
    """A :class:`diffusers.DDPMScheduler` with the noise schedule of a scheduler config, the same
    one sampling uses (:func:`tdgen.schedulers.noise_schedule`)."""
    return training_scheduler(config)


def prediction_target(scheduler: Any, prediction: str, latents: torch.Tensor, noise: torch.Tensor,
                      timesteps: torch.Tensor) -> torch.Tensor:
    """What the UNet should output for ``latents`` noised with ``noise`` at ``timesteps``: the noise
    (``epsilon``), the velocity (``v_prediction``) or the clean latents (``sample``)."""
    if prediction == "epsilon":
        return noise
    if prediction == "v_prediction":
        return scheduler.get_velocity(latents, noise, timesteps)
    return latents


def predict(unet: torch.nn.Module, noisy: torch.Tensor, timesteps: torch.Tensor, text: torch.Tensor,
            boxes: torch.Tensor, masks: torch.Tensor, categories: torch.Tensor, *,
            frames_apart: bool = False) -> torch.Tensor:
    """The UNet's prediction ``(B, C, F, h, w)`` for noisy latents ``(B, C, F, h, w)``.

    ``boxes`` is ``(B, F, N, 4)``, ``masks`` ``(B, F, N)``, ``categories`` ``(B, F, N, D)``. With
    ``frames_apart`` (stage 1) each frame goes through the UNet as its own one-frame clip, with the
    clip's timestep and prompt.
    """
    if not frames_apart:
        return unet(noisy, timesteps, text, boxes=boxes, box_masks=masks, box_embeddings=categories,
                    return_dict=False)[0]
    B, C, F, h, w = noisy.shape
    N = boxes.shape[2]
    x = noisy.permute(0, 2, 1, 3, 4).reshape(B * F, C, 1, h, w)
    pred = unet(x, timesteps.repeat_interleave(F), text.repeat_interleave(F, 0),
                boxes=boxes.reshape(B * F, 1, N, 4), box_masks=masks.reshape(B * F, 1, N),
                box_embeddings=categories.reshape(B * F, 1, N, -1), return_dict=False)[0]
    return pred.reshape(B, F, C, h, w).permute(0, 2, 1, 3, 4)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The mean of ``weights * (pred - target)^2``, computed in float32."""
    return (weights * (pred.float() - target.float()) ** 2).mean()


def set_gates(unet: torch.nn.Module, value: float) -> int:
    """Set every gate of the layout modules (``alpha_attn``/``alpha_dense`` of the GLIGEN fusers
    and the instance enhancer) to ``value``; returns how many.

    The published gates start at 0 so that a pretrained UNet is unchanged at first. A fresh UNet
    has nothing to preserve, and closed gates there are a trap: a gate's gradient is the
    usefulness of its random module's output and the module's gradient is scaled by
    ``tanh(gate)``, so neither moves (measured: after 2,500 steps from scratch every
    ``alpha_attn`` was below 0.003 and the samples ignored their boxes). Fresh UNets (``--init``)
    therefore start with the gates open (1.0).
    """
    n = 0
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if name.endswith((".alpha_attn", ".alpha_dense")):
                param.fill_(float(value))
                n += 1
    return n


def choose_prediction_type(requested: str, current: str, latent_channels: int, width0: int,
                           fresh: bool) -> str:
    """What the UNet learns to predict: ``requested``, or for ``"auto"`` the model's own type,
    except that a fresh UNet whose first level is narrower than its latents predicts ``sample``.

    White noise in C latent channels cannot pass a first level narrower than C. Epsilon targets
    are that noise at every t (measured with 192 -> 64 channels: loss stuck at ~0.78, samples pure
    noise); v targets are that noise at small t (loss stuck at ~0.40, samples keep a fine grain of
    noise). The clean latents are low-rank, so such a UNet predicts them (``sample``).
    """
    narrow = latent_channels > width0
    if requested != "auto":
        return requested
    if not narrow:
        return current
    if fresh:
        return "sample"
    if current != "sample":
        raise UsageError(f"the model predicts {current} but its latents have {latent_channels} channels and its "
                         f"first UNet level only {width0}: it cannot learn to predict the noise; pass "
                         f"--prediction-type sample to retrain it to predict the clean latents")
    return current


def lr_at(step: int, base_lr: float, warmup: int, total: int, schedule: str = "cosine") -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up from ``base_lr / warmup``
    to ``base_lr`` over ``warmup`` steps, then constant or a half cosine down to 0 at ``total``."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "constant":
        return base_lr
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
