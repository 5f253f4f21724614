"""A classical detector for the shapes domain: background difference + colour segmentation.

Shapes are flat, saturated colours on a low-contrast background, so no learned model is needed:

1. foreground = pixels whose largest per-channel difference to the background exceeds
   ``threshold`` (the background is given, or estimated from the clip: the per-pixel median
   over its frames, or the most common border colour for a single frame);
2. a small closing joins pieces split by pinholes or one-pixel gaps (for connectivity only);
3. the foreground colours are clustered (leader clustering of a 16-level colour histogram of
   the flat pixels, then one refinement step), so two touching shapes of different colours
   fall apart; edge pixels, whose colours blend two neighbours, join the nearest cluster;
4. one detection per (foreground component, colour cluster): the pieces of a shape cut in two
   by a shape in front stay one detection, because the occluder joins them into one component.

Frames and backgrounds are RGB ``uint8`` arrays ``(H, W, 3)``; boxes are ``x, y, w, h`` in the
COCO pixel convention (``w = last column - first column + 1``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..imageops import opencv

__all__ = ["Detections", "detect_shapes", "detect_clip", "estimate_background", "foreground_mask"]


def _cv2():
    return opencv("the shapes detector")


@dataclass
class Detections:
    """Detections of one frame: ``boxes`` (K, 4) xywh, ``scores`` (K,), ``colors`` (K, 3) mean RGB,
    ``areas`` (K,) pixel counts."""

    boxes: np.ndarray
    scores: np.ndarray
    colors: np.ndarray
    areas: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @staticmethod
    def empty() -> "Detections":
        return Detections(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 3)), np.zeros(0, np.int64))


def _check_frame(frame: np.ndarray, what: str = "frame") -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"{what} must be an (H, W, 3) uint8 array, got {frame.shape} {frame.dtype}")
    return frame


def _mode_color(pixels: np.ndarray) -> np.ndarray:
    """Mean colour of the most common bin of a 16-level colour histogram of ``pixels`` (N, 3)."""
    pixels = pixels.astype(np.int64)
    q = pixels >> 4
    bins = (q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2]
    top = np.bincount(bins, minlength=4096).argmax()
    return pixels[bins == top].mean(0)


def estimate_background(frames: np.ndarray, threshold: float = 40.0) -> np.ndarray:
    """The background of a clip ``(T, H, W, 3)`` (or one frame ``(H, W, 3)``).

    Three or more frames: the per-pixel median over time, so moving shapes drop out. Where a
    shape stays on a pixel for more than half the clip the median keeps its colour (a "ghost");
    such pixels, when they differ from the clip's dominant colour by more than ``threshold``
    but show a colour near it in at least 10 % of the frames (and two), take the mean of those
    frames instead, and are filled in from their surroundings (inpainting) when they never do.
    This assumes the shapes domain's low-contrast backgrounds. Fewer than three frames: a
    plain image of the dominant border colour.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[3] != 3:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    t = frames.shape[0]
    if t < 3:
        border = np.concatenate([f.reshape(-1, 3) for fr in frames for f in (fr[0], fr[-1], fr[:, 0], fr[:, -1])])
        colour = _mode_color(border).round().astype(np.uint8)
        return np.broadcast_to(colour, frames.shape[1:]).copy()
    med = np.median(frames, axis=0)
    step = max(1, frames[0].size // 3 // 65536)  # a subsample is enough for the dominant colour
    dominant = _mode_color(frames.reshape(-1, 3)[::step])
    far = np.abs(med - dominant).max(axis=2) > threshold
    if far.any():
        ys, xs = np.nonzero(far)
        samples = frames[:, ys, xs].astype(np.float64)  # (T, n, 3)
        near = np.abs(samples - dominant).max(axis=2) <= threshold
        count = near.sum(0)
        ok = count >= max(2, int(np.ceil(0.1 * t)))
        if ok.any():
            mean = (samples * near[..., None]).sum(0)[ok] / count[ok, None]
            med[ys[ok], xs[ok]] = mean
        if not ok.all():
            # Covered in (nearly) every frame: nothing shows the background there. Shapes-domain
            # backgrounds are low contrast, so fill the hole from its surroundings.
            cv2 = _cv2()
            hole = np.zeros(far.shape, np.uint8)
            hole[ys[~ok], xs[~ok]] = 255
            filled = cv2.inpaint(med.round().astype(np.uint8), hole, 3, cv2.INPAINT_TELEA)
            med[hole > 0] = filled[hole > 0]
    return med.round().astype(np.uint8)


def foreground_mask(frame: np.ndarray, background: np.ndarray, threshold: float = 40.0) -> np.ndarray:
    """Pixels whose largest per-channel difference to the background exceeds ``threshold``."""
    diff = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    return diff > threshold


def _color_centres(colors: np.ndarray, tol: float, min_count: int, max_clusters: int = 32) -> np.ndarray:
    """Leader clustering of a 16-level colour histogram: the most common bins become centres
    unless they lie within ``tol`` of an existing centre."""
    q = colors >> 4
    bins = (q[:, 0] << 8) | (q[:, 1] << 4) | q[:, 2]
    counts = np.bincount(bins, minlength=4096)
    sums = np.stack([np.bincount(bins, weights=colors[:, c], minlength=4096) for c in range(3)], 1)
    centres: list[np.ndarray] = []
    for b in np.argsort(-counts, kind="stable"):
        n = counts[b]
        if n < min_count or len(centres) >= max_clusters:
            break
        c = sums[b] / n
        if all(np.linalg.norm(c - o) > tol for o in centres):
            centres.append(c)
    if not centres:
        centres.append(colors.mean(0))
    return np.array(centres, dtype=np.float64)


def _flatness(frame: np.ndarray) -> np.ndarray:
    """Per pixel, the largest per-channel difference to its 4 neighbours (0 on flat colour)."""
    f = frame.astype(np.int16)
    out = np.zeros(frame.shape[:2], np.int16)
    dx = np.abs(f[:, 1:] - f[:, :-1]).max(axis=2)
    dy = np.abs(f[1:] - f[:-1]).max(axis=2)
    out[:, 1:] = np.maximum(out[:, 1:], dx)
    out[:, :-1] = np.maximum(out[:, :-1], dx)
    out[1:] = np.maximum(out[1:], dy)
    out[:-1] = np.maximum(out[:-1], dy)
    return out


def _assign(colors: np.ndarray, centres: np.ndarray) -> np.ndarray:
    d = ((colors[:, None, :] - centres[None, :, :]) ** 2).sum(2)
    return d.argmin(1)


_YCC = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def _blend_distance(c: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """How far colour ``c`` is from any blend of colours ``a`` and ``b``.

    Blends are taken in YCbCr with separate mixing weights for luma and chroma: an edge pixel
    of a JPEG frame (chroma subsampled) or of a blurred frame mixes its neighbours, but luma
    and chroma by different amounts.
    """
    cy, ay, by = _YCC @ c, _YCC @ a, _YCC @ b
    lo, hi = min(ay[0], by[0]), max(ay[0], by[0])
    d_luma = max(lo - cy[0], cy[0] - hi, 0.0)
    ab = by[1:] - ay[1:]
    t = float(np.clip(np.dot(cy[1:] - ay[1:], ab) / max(float(np.dot(ab, ab)), 1e-9), 0.0, 1.0))
    d_chroma = float(np.linalg.norm(cy[1:] - (ay[1:] + t * ab)))
    return float(np.hypot(d_luma, d_chroma))


def _segment(frame: np.ndarray, background: np.ndarray, fg: np.ndarray, comp: np.ndarray, n_comp: int, *,
             min_area: int, color_tol: float, flat_tol: float, spatial_weight: float):
    """Label every foreground pixel with a colour cluster; return ``(ys, xs, colors, key)`` of the
    kept pixels, ``key`` = component * K + cluster, or None when nothing is left."""
    cv2 = _cv2()
    ys, xs = np.nonzero(fg)
    cid = comp[ys, xs].astype(np.int64)
    colors = frame[ys, xs].astype(np.float64)
    # 1. Main colours from flat pixels, one pixel or more away from any colour edge: edges blend
    #    neighbouring colours (antialiasing, JPEG chroma subsampling) and must not make
    #    clusters of their own.
    rough = cv2.dilate(np.minimum(_flatness(frame), 255).astype(np.uint8), np.ones((3, 3), np.uint8))
    flat = rough[ys, xs] <= flat_tol
    if np.count_nonzero(flat) < min_area:  # nothing flat (tiny or noisy shapes): use every pixel
        flat = np.ones_like(flat)
    centres = _color_centres(colors[flat].astype(np.int64), color_tol, max(2, min_area // 2))
    label = _assign(colors[flat], centres)  # one refinement step: centres = mean of their pixels
    counts = np.bincount(label, minlength=centres.shape[0])
    sums = np.stack([np.bincount(label, weights=colors[flat][:, c], minlength=centres.shape[0])
                     for c in range(3)], 1)
    centres = sums[counts > 0] / counts[counts > 0, None]
    # 2. Extra colours of thin shapes (a star whose body is hidden has no flat pixel): common
    #    colours far from every main colour that are not a blend of two known colours (main
    #    colours and the background under them; see _blend_distance).
    mind = np.sqrt(((colors[:, None, :] - centres[None, :, :]) ** 2).sum(2)).min(1)
    cand = mind > color_tol
    if np.count_nonzero(cand) >= min_area:
        bg_cols = background[ys, xs].astype(np.float64)
        extra = _color_centres(colors[cand].astype(np.int64), color_tol, min_area)
        owner = _assign(colors[cand], extra)
        added = []
        for j, e in enumerate(extra):
            mine = owner == j
            if np.count_nonzero(mine) < min_area:
                continue
            anchors = list(centres) + added + [bg_cols[cand][mine].mean(0)]
            blend = any(_blend_distance(e, anchors[a], anchors[b]) < color_tol / 2
                        for a in range(len(anchors)) for b in range(a + 1, len(anchors)))
            if not blend:
                added.append(colors[cand][mine].mean(0))
        if added:
            centres = np.concatenate([centres, np.array(added)])
    k = centres.shape[0]
    dist = np.sqrt(((colors[:, None, :] - centres[None, :, :]) ** 2).sum(2))  # (N, K) colour distance
    # 3. Confident pixels (flat, or close to a cluster colour) take their nearest colour. The
    #    others (edge blends) go to a colour that is also near in space: the cost adds
    #    ``spatial_weight`` per pixel of distance to the nearest confident pixel of that colour,
    #    so the blend between an orange square and a grey background stays with the square even
    #    when its colour is nearer to a red star elsewhere.
    label = dist.argmin(1)
    sure = flat | (dist.min(1) <= color_tol / 2)
    if not sure.all():
        seeds = np.ones((k,) + fg.shape, np.uint8)
        seeds[label[sure], ys[sure], xs[sure]] = 0
        unsure = np.flatnonzero(~sure)
        cost = dist[unsure].copy()
        for c in range(k):
            far = np.minimum(cv2.distanceTransform(seeds[c], cv2.DIST_L2, 3)[ys[unsure], xs[unsure]], 1e4)
            cost[:, c] += spatial_weight * far
        label[unsure] = cost.argmin(1)
        dist[unsure] = cost
    # 4. A (component, cluster) pair is an object when it has enough pixels and enough confident
    #    ones; the other pixels of the component join the cheapest object colour present in
    #    their component, or are dropped when there is none.
    min_sure = max(2, min_area // 3)
    key = cid * k + label
    area = np.bincount(key, minlength=n_comp * k)
    sure_area = np.bincount(key[sure], minlength=n_comp * k)
    ok = ((area >= min_area) & (sure_area >= min_sure)).reshape(n_comp, k)
    if not ok.any():
        return None
    bad = ~ok[cid, label]
    if bad.any():
        d = np.where(ok[cid[bad]], dist[bad], np.inf)
        label[bad] = d.argmin(1)
        keep_px = np.ones(label.size, bool)
        keep_px[np.flatnonzero(bad)[~np.isfinite(d.min(1))]] = False
        ys, xs, cid, colors, label = ys[keep_px], xs[keep_px], cid[keep_px], colors[keep_px], label[keep_px]
        key = cid * k + label
    return ys, xs, colors, key


def detect_shapes(frame: np.ndarray, background: np.ndarray | None = None, *, threshold: float = 40.0,
                  min_area: int = 10, color_tol: float = 48.0, flat_tol: float = 24.0,
                  spatial_weight: float = 12.0, min_fill: float = 0.1, close: bool = True) -> Detections:
    """Detect the shapes in one RGB frame; see the module docstring for the method.

    ``background`` defaults to the most common border colour of the frame (good for plain
    backgrounds; pass the clip's background or use :func:`detect_clip` otherwise).

    Tuning: ``threshold`` is the per-channel difference to the background that makes a pixel
    foreground; objects need ``min_area`` pixels and must fill ``min_fill`` of their box;
    colours closer than ``color_tol`` (RGB distance) are one cluster; pixels whose 3x3
    neighbourhood varies by more than ``flat_tol`` are edge pixels, assigned by colour plus
    ``spatial_weight`` per pixel of distance; ``close`` joins pieces split by one-pixel gaps.
    """
    cv2 = _cv2()
    frame = _check_frame(frame)
    if background is None:
        background = estimate_background(frame)
    background = _check_frame(background, "background")
    if background.shape != frame.shape:
        raise ValueError(f"background {background.shape} and frame {frame.shape} differ in size")
    diff = np.abs(frame.astype(np.int16) - background.astype(np.int16)).max(axis=2)
    fg = (diff > threshold).astype(np.uint8)
    # Closing only joins pieces for connectivity; the pixels it adds carry background colours
    # and take no part in colours or boxes.
    joined = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)) if close else fg
    n_comp, comp = cv2.connectedComponents(joined, connectivity=8)
    if n_comp <= 1:
        return Detections.empty()
    seg = _segment(frame, background, fg.astype(bool), comp, n_comp, min_area=min_area, color_tol=color_tol,
                   flat_tol=flat_tol, spatial_weight=spatial_weight)
    if seg is None:
        return Detections.empty()
    ys, xs, colors, key = seg

    uniq, inv, area = np.unique(key, return_inverse=True, return_counts=True)
    n = uniq.size
    x0 = np.full(n, np.iinfo(np.int64).max)
    y0 = np.full(n, np.iinfo(np.int64).max)
    x1 = np.full(n, -1)
    y1 = np.full(n, -1)
    np.minimum.at(x0, inv, xs)
    np.minimum.at(y0, inv, ys)
    np.maximum.at(x1, inv, xs)
    np.maximum.at(y1, inv, ys)
    mean_col = np.stack([np.bincount(inv, weights=colors[:, c], minlength=n) for c in range(3)], 1) / area[:, None]
    contrast = np.bincount(inv, weights=diff[ys, xs].astype(np.float64), minlength=n) / area
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], 1).astype(np.float64)
    fill = area / (boxes[:, 2] * boxes[:, 3])
    score = np.clip(contrast / 128.0, 0, 1) * np.clip(fill / 0.3, 0, 1)
    # A shape fills a good part of its box (a star about 40 %); scattered pixels do not.
    order = np.flatnonzero(fill >= min_fill)
    order = order[np.argsort(-area[order], kind="stable")]
    return Detections(boxes=boxes[order], scores=score[order], colors=mean_col[order],
                      areas=area[order].astype(np.int64))


def detect_clip(frames: np.ndarray, background: np.ndarray | None = None, **kwargs) -> tuple[list[Detections],
                                                                                           np.ndarray]:
    """Detect shapes in every frame of a clip ``(T, H, W, 3)``; returns ``(detections, background)``.

    Without ``background``, it is estimated from the clip (:func:`estimate_background`).
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3), got {frames.shape}")
    bg = estimate_background(frames) if background is None else background
    return [detect_shapes(f, bg, **kwargs) for f in frames], bg
