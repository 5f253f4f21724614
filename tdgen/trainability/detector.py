"""A small CenterNet-style detector, trained from scratch in torch for the trainability benchmark.

The network is a four-level encoder (stride 16) with two upsampling steps and skip connections
back to stride 4, then three 1x1 heads on the stride-4 grid: a heatmap of object centres (one
class: the benchmark scores class-agnostic tracking), the box size and the sub-cell offset of the
centre, both in grid cells. Training targets follow CenterNet (Zhou et al., "Objects as Points",
2019): a Gaussian peak at each box centre on the grid, the penalty-reduced focal loss on the
heatmap, L1 on size and offset at the centre cells only. Decoding keeps the local maxima of the
heatmap (a 3x3 max-pool equals the value) as detections.

Boxes are ``x, y, w, h`` in pixels, as everywhere in tdgen. Determinism: :func:`train_detector`
seeds torch from its ``seed`` and draws every batch from its own generator, so the same frames,
steps, batch size, seed and thread count give the same weights.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["STRIDE", "CenterNet", "TrainConfig", "Targets", "encode_targets", "decode", "focal_loss",
           "detector_loss", "train_detector", "detect_frames"]

STRIDE = 4  # input pixels per heatmap cell


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True))


class CenterNet(nn.Module):
    """Frames ``(B, 3, H, W)`` in 0..1 -> ``(heatmap logits (B, 1, H/4, W/4), size (B, 2, ..), offset (B, 2, ..))``.

    H and W must be multiples of 16.
    """

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        c1, c2, c3, c4 = width, 2 * width, 4 * width, 4 * width
        self.enc1 = _block(3, c1, 2)    # /2
        self.enc2 = _block(c1, c2, 2)   # /4
        self.enc3 = _block(c2, c3, 2)   # /8
        self.enc4 = _block(c3, c4, 2)   # /16: receptive field enough for the largest shapes
        self.up3 = _block(c4 + c3, c3, 1)
        self.up2 = _block(c3 + c2, c2, 1)
        self.heat = nn.Sequential(nn.Conv2d(c2, c2, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(c2, 1, 1))
        self.size = nn.Sequential(nn.Conv2d(c2, c2, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(c2, 2, 1))
        self.offset = nn.Sequential(nn.Conv2d(c2, c2, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(c2, 2, 1))
        # CenterNet's prior: start with every cell a near-certain background, so the focal loss
        # of the first steps is not swamped by the thousands of empty cells
        nn.init.constant_(self.heat[-1].bias, -2.19)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d3 = self.up3(torch.cat([F.interpolate(e4, scale_factor=2.0, mode="nearest"), e3], 1))
        d2 = self.up2(torch.cat([F.interpolate(d3, scale_factor=2.0, mode="nearest"), e2], 1))
        return self.heat(d2), self.size(d2), self.offset(d2)


@dataclass(frozen=True)
class Targets:
    """Training targets of a stack of frames on the stride-4 grid.

    ``heatmap`` (N, 1, h, w) Gaussian peaks in 0..1; ``weight`` (N, 1, h, w) 0 inside ignore
    regions (the loss skips those cells), else 1; ``size`` and ``offset`` (N, 2, h, w) at the centre
    cells; ``centre`` (N, 1, h, w) 1 at the centre cells.
    """

    heatmap: torch.Tensor
    weight: torch.Tensor
    size: torch.Tensor
    offset: torch.Tensor
    centre: torch.Tensor

    def take(self, idx: torch.Tensor) -> "Targets":
        return Targets(self.heatmap[idx], self.weight[idx], self.size[idx], self.offset[idx], self.centre[idx])


def _gaussian_sigma(w_cells: float, h_cells: float) -> float:
    # a peak about a third of the box wide: small boxes get sharp peaks, large ones soft
    return max(min(w_cells, h_cells) / 6.0, 0.5)


def encode_targets(boxes: Sequence[np.ndarray], ignore: Sequence[np.ndarray] | None, size: tuple[int, int]
                   ) -> Targets:
    """CenterNet targets for frames of ``size`` (width, height): ``boxes[i]`` (n, 4) xywh pixels of frame i;
    ``ignore[i]`` (k, 4) its ignore regions (no loss inside them)."""
    width, height = size
    gw, gh = width // STRIDE, height // STRIDE
    n = len(boxes)
    heat = np.zeros((n, 1, gh, gw), np.float32)
    weight = np.ones((n, 1, gh, gw), np.float32)
    wh = np.zeros((n, 2, gh, gw), np.float32)
    off = np.zeros((n, 2, gh, gw), np.float32)
    cen = np.zeros((n, 1, gh, gw), np.float32)
    ys, xs = np.mgrid[0:gh, 0:gw].astype(np.float32)
    for i in range(n):
        if ignore is not None:
            for x, y, w, h in np.asarray(ignore[i], np.float64).reshape(-1, 4):
                x0, y0 = int(math.floor(x / STRIDE)), int(math.floor(y / STRIDE))
                x1, y1 = int(math.ceil((x + w) / STRIDE)), int(math.ceil((y + h) / STRIDE))
                weight[i, 0, max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = 0.0
        for x, y, w, h in np.asarray(boxes[i], np.float64).reshape(-1, 4):
            if w <= 0 or h <= 0:
                continue
            cx, cy = (x + w / 2) / STRIDE, (y + h / 2) / STRIDE
            ix, iy = min(max(int(cx), 0), gw - 1), min(max(int(cy), 0), gh - 1)
            sigma = _gaussian_sigma(w / STRIDE, h / STRIDE)
            peak = np.exp(-((xs - ix) ** 2 + (ys - iy) ** 2) / (2 * sigma * sigma))
            np.maximum(heat[i, 0], peak, out=heat[i, 0])
            heat[i, 0, iy, ix] = 1.0
            weight[i, 0, iy, ix] = 1.0  # a real object inside another's ignore region still counts
            wh[i, :, iy, ix] = (w / STRIDE, h / STRIDE)
            off[i, :, iy, ix] = (cx - ix, cy - iy)
            cen[i, 0, iy, ix] = 1.0
    t = torch.from_numpy
    return Targets(t(heat), t(weight), t(wh), t(off), t(cen))


def focal_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss (alpha 2, beta 4), summed and divided by the number of peaks."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1.0).float()
    neg = (1.0 - pos) * weight
    pos_loss = -torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = -torch.log(1 - p) * p ** 2 * (1 - target) ** 4 * neg
    return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1.0)


def detector_loss(out: tuple[torch.Tensor, torch.Tensor, torch.Tensor], t: Targets) -> torch.Tensor:
    """Focal loss on the heatmap + 0.1 x L1 on size + L1 on offset (CenterNet's weights)."""
    heat, wh, off = out
    n = t.centre.sum().clamp(min=1.0)
    size_l1 = (F.l1_loss(wh, t.size, reduction="none") * t.centre).sum() / n
    off_l1 = (F.l1_loss(off, t.offset, reduction="none") * t.centre).sum() / n
    return focal_loss(heat, t.heatmap, t.weight) + 0.1 * size_l1 + off_l1


def decode(heat: torch.Tensor, size: torch.Tensor, offset: torch.Tensor, *, k: int = 50, min_score: float = 0.05,
           frame_size: tuple[int, int] | None = None, logits: bool = True) -> list[tuple[np.ndarray, np.ndarray]]:
    """Detections ``(boxes (n, 4) xywh pixels, scores (n,))`` per image from the network's outputs.

    A cell is a detection when it is the maximum of its 3x3 neighbourhood (max-pool peak
    extraction, CenterNet's NMS) and its score is at least ``min_score``; at most ``k`` per image,
    by decreasing score. ``logits=False`` reads ``heat`` as probabilities already (a target heatmap).
    Boxes are clipped to ``frame_size`` (width, height) when given.
    """
    p = torch.sigmoid(heat) if logits else heat
    peaks = p * (F.max_pool2d(p, 3, stride=1, padding=1) == p).to(p.dtype)
    b, _, gh, gw = p.shape
    flat = peaks.reshape(b, -1)
    k = min(k, flat.shape[1])
    scores, idx = flat.topk(k, dim=1)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(b):
        keep = scores[i] >= min_score
        s, j = scores[i][keep], idx[i][keep]
        iy, ix = torch.div(j, gw, rounding_mode="floor"), j % gw
        cx = (ix.to(torch.float64) + offset[i, 0, iy, ix].to(torch.float64)) * STRIDE
        cy = (iy.to(torch.float64) + offset[i, 1, iy, ix].to(torch.float64)) * STRIDE
        w = size[i, 0, iy, ix].to(torch.float64).clamp(min=0) * STRIDE
        h = size[i, 1, iy, ix].to(torch.float64).clamp(min=0) * STRIDE
        boxes = torch.stack([cx - w / 2, cy - h / 2, w, h], 1).detach().numpy()
        sc = s.detach().to(torch.float64).numpy()
        if frame_size is not None and len(boxes):
            x0 = np.clip(boxes[:, 0], 0, frame_size[0])
            y0 = np.clip(boxes[:, 1], 0, frame_size[1])
            x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, frame_size[0])
            y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, frame_size[1])
            boxes = np.stack([x0, y0, x1 - x0, y1 - y0], 1)
            ok = (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
            boxes, sc = boxes[ok], sc[ok]
        out.append((boxes.astype(np.float64), sc))
    return out


@dataclass(frozen=True)
class TrainConfig:
    """What a training run is: the same for every arm of the benchmark."""

    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    width: int = 16
    seed: int = 0
    flip: bool = True  # horizontal flips (targets recomputed from the flipped boxes)


def _flip_targets(t: Targets) -> Targets:
    # Flipping the grid maps cell ix to gw-1-ix; a centre at cx cells goes to gw-cx, that is
    # cell gw-1-ix with offset 1-off. Exact because the grid divides the frame.
    heat = t.heatmap.flip(-1)
    off = t.offset.flip(-1).clone()
    cen = t.centre.flip(-1)
    off[:, 0] = torch.where(cen[:, 0] > 0, 1.0 - off[:, 0], off[:, 0])
    return Targets(heat, t.weight.flip(-1), t.size.flip(-1), off, cen)


def train_detector(frames: torch.Tensor, targets: Targets, cfg: TrainConfig,
                   progress: Callable[[int, float], None] | None = None) -> tuple[CenterNet, dict]:
    """Train a fresh :class:`CenterNet` for exactly ``cfg.steps`` steps of ``cfg.batch_size`` frames.

    ``frames`` (N, 3, H, W) uint8. Batches are drawn uniformly with replacement from all N frames
    by a generator seeded with ``cfg.seed`` (so a frame's chance is the same whatever set it came
    from). Returns the model (in eval mode) and a record: steps, batch size, seconds, the mean loss
    of the last 10% of steps. ``progress(step, loss)`` every 100 steps.
    """
    if len(frames) == 0:
        raise ValueError("no training frames")
    if frames.shape[-1] % 16 or frames.shape[-2] % 16:
        raise ValueError(f"frame size {frames.shape[-1]}x{frames.shape[-2]}: sides must be multiples of 16")
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    # an op without a deterministic kernel raises instead of silently varying between runs
    torch.use_deterministic_algorithms(True)
    try:
        return _train(frames, targets, cfg, progress)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def _train(frames: torch.Tensor, targets: Targets, cfg: TrainConfig,
           progress: Callable[[int, float], None] | None) -> tuple[CenterNet, dict]:
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = CenterNet(cfg.width)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # cosine decay to 5% of the rate: a fixed budget of steps gets its full schedule
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(s / max(cfg.steps, 1), 1.0))))
    t0 = time.perf_counter()
    tail: list[float] = []
    model.train()
    for step in range(cfg.steps):
        idx = torch.randint(0, len(frames), (cfg.batch_size,), generator=gen)
        x = frames[idx].float() / 255.0
        t = targets.take(idx)
        if cfg.flip:
            flip = torch.rand(cfg.batch_size, generator=gen) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
            ft = _flip_targets(t)
            t = Targets(*(torch.where(flip.view(-1, 1, 1, 1), b, a) for a, b in zip(
                (t.heatmap, t.weight, t.size, t.offset, t.centre),
                (ft.heatmap, ft.weight, ft.size, ft.offset, ft.centre))))
        loss = detector_loss(model(x), t)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step >= cfg.steps - max(cfg.steps // 10, 1):
            tail.append(float(loss.detach()))
        if progress and (step + 1) % 100 == 0:
            progress(step + 1, float(loss.detach()))
    model.eval()
    record = {"steps": cfg.steps, "batch_size": cfg.batch_size, "lr": cfg.lr, "seed": cfg.seed,
              "seconds": round(time.perf_counter() - t0, 2), "final_loss": round(sum(tail) / len(tail), 4)}
    return model, record


@torch.no_grad()
def detect_frames(model: CenterNet, frames: torch.Tensor, *, batch_size: int = 32, min_score: float = 0.05,
                  k: int = 50) -> list[tuple[np.ndarray, np.ndarray]]:
    """Detections per frame of ``frames`` (N, 3, H, W) uint8 (see :func:`decode`)."""
    model.eval()
    out: list[tuple[np.ndarray, np.ndarray]] = []
    size = (int(frames.shape[-1]), int(frames.shape[-2]))
    for s in range(0, len(frames), batch_size):
        heat, wh, off = model(frames[s:s + batch_size].float() / 255.0)
        out.extend(decode(heat, wh, off, k=k, min_score=min_score, frame_size=size))
    return out
