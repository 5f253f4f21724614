"""Procedurally rendered videos of moving shapes, with exact tracklets.

The shapes domain is a tiny, fully controlled world for testing the generator end to end: every
pixel comes from a known scene, so a classical detector (``tdgen.evaluate``) can measure how well
generated videos follow their boxes, without a learned detector in the loop.

One video is a fixed background (a plain colour or a low-contrast texture) with 2-10 shape
instances (1-6 visible at a time). An instance keeps its category and its saturated colour for
its whole life; colours inside a video are well apart from each other and from the background,
so identity is measurable from colour alone. Instances move with a velocity that drifts under
small random accelerations, grow and shrink, rotate, bounce off the borders or leave through
them, and enter later through a border. They are drawn in a depth order fixed per video, so
they occlude each other.

Annotations (per frame and instance):

* ``bbox`` is the tight box of the instance's drawn pixels inside the frame (its full extent,
  clipped to the frame, occluded parts included), in COCO pixel convention: ``x`` is the first
  column, ``w = last column - first column + 1``.
* A box is dropped (the instance is absent in that frame) when less than 20 % of the shape's
  area lies inside the frame, or when the clipped box is narrower or lower than 4 pixels.
* ``visibility`` is the fraction of the instance's in-frame pixels that no shape in front of it
  covers (1.0 = unoccluded). Truncation by the frame border is not counted: the box already
  describes the in-frame part.

Every video has its own random generator seeded from ``(seed, video index)``, so video ``k`` is
the same whatever the number of videos asked for.
"""

from __future__ import annotations

import colorsys
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..atomic import atomic_directory, check_output_free
from ..errors import OutputError, UsageError
from ..imageops import opencv
from ..tracks.trackset import Boxes, Frames, TrackSet, Videos

__all__ = [
    "CATEGORIES", "SHAPES", "ShapeVideo", "check_render_args", "color_name", "render_shapes", "render_video",
    "shape_mask", "video_name",
]

SHAPES = ("circle", "square", "triangle", "star", "hexagon")
CATEGORIES = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPES)]

MIN_INFRAME_FRACTION = 0.2  # drop a box when less of the shape than this is inside the frame
MIN_BOX_SIDE = 4  # ... or when its clipped box is smaller than this (pixels)
TRACK_STRIDE = 1000  # track id = video index * TRACK_STRIDE + instance index + 1 (stable per video)
_SUBPIXEL_BITS = 4  # fixed-point bits of the polygon coordinates given to OpenCV
_MIN_COLOR_DISTANCE = 70.0  # RGB distance between two instances of one video
_MIN_BG_CONTRAST = 80.0  # max-channel difference between an instance and every background pixel


def _cv2():
    return opencv("the shapes domain")


def video_name(index: int) -> str:
    """Name of video ``index``: ``shapes_0000``, ``shapes_0001``, ..."""
    return f"shapes_{index:04d}"


# --------------------------------------------------------------------------- colours
def _hsv(h: float, s: float, v: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb((h % 360.0) / 360.0, s, v)
    return np.array([round(r * 255), round(g * 255), round(b * 255)], dtype=np.int64)


def color_name(rgb: Any) -> str:
    """A plain English name for a saturated RGB colour (used in captions)."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    h, s, v = colorsys.rgb_to_hsv(r, g, b)
    h *= 360.0
    if s < 0.2:
        return "white" if v > 0.8 else ("black" if v < 0.2 else "gray")
    for upper, name in ((12, "red"), (40, "orange"), (68, "yellow"), (100, "lime"), (155, "green"),
                        (190, "cyan"), (250, "blue"), (280, "purple"), (325, "magenta"), (345, "pink"),
                        (361, "red")):
        if h < upper:
            return name
    return "red"  # pragma: no cover


def _background_color_name(h: float, s: float, v: float) -> str:
    shade = "dark " if v < 0.45 else ("light " if v > 0.68 else "")
    if s < 0.1:
        return f"{shade}gray"
    for upper, name in ((40, "brown" if v < 0.55 else "beige"), (75, "khaki" if v > 0.55 else "olive"),
                        (165, "sage"), (200, "teal"), (255, "slate"), (290, "lavender" if v > 0.55 else "plum"),
                        (340, "mauve"), (361, "rose" if v > 0.55 else "brown")):
        if h < upper:
            return name
    return "gray"  # pragma: no cover


# --------------------------------------------------------------------------- geometry
def _polygon(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray | None:
    """Vertices (n, 2) of ``shape`` centred at (cx, cy) with circumradius ~r; None for a circle."""
    if shape == "circle":
        return None
    if shape == "star":
        k = np.arange(10)
        rad = np.where(k % 2 == 0, r * 1.15, r * 0.5)
        theta = angle + k * (np.pi / 5)
    else:
        n, scale = {"square": (4, 1.1), "triangle": (3, 1.2), "hexagon": (6, 1.0)}[shape]
        rad = np.full(n, r * scale)
        theta = angle + np.arange(n) * (2 * np.pi / n)
    return np.stack([cx + rad * np.cos(theta), cy + rad * np.sin(theta)], 1)


def shape_mask(shape: str, cx: float, cy: float, r: float, angle: float = 0.0) -> tuple[np.ndarray, int, int]:
    """The shape's full (unclipped) pixel mask and the frame position of its top-left corner.

    Returns ``(mask, x0, y0)``: ``mask`` is a bool array; pixel ``mask[i, j]`` is frame pixel
    ``(x0 + j, y0 + i)``. Pixel ``(x, y)`` covers ``[x, x + 1) x [y, y + 1)``, centre at
    ``(x + 0.5, y + 0.5)``; drawing uses no antialiasing, so the mask is exactly what is drawn.
    """
    cv2 = _cv2()
    reach = r * 1.25 + 2.0
    x0 = int(math.floor(cx - reach))
    y0 = int(math.floor(cy - reach))
    size = int(math.ceil(2 * reach)) + 2
    canvas = np.zeros((size, size), np.uint8)
    one = 1 << _SUBPIXEL_BITS
    poly = _polygon(shape, cx, cy, r, angle)
    if poly is None:
        centre = (int(round((cx - 0.5 - x0) * one)), int(round((cy - 0.5 - y0) * one)))
        cv2.circle(canvas, centre, int(round(r * one)), 255, thickness=-1, lineType=cv2.LINE_8,
                   shift=_SUBPIXEL_BITS)
    else:
        pts = np.round((poly - 0.5 - np.array([x0, y0])) * one).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 255, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
    return canvas > 0, x0, y0


# --------------------------------------------------------------------------- scene
@dataclass
class _Instance:
    index: int
    shape: str
    color: np.ndarray  # (3,) RGB int
    depth: int
    spawn: int  # frame it is planned to appear at
    r0: float
    cx: float = 0.0
    cy: float = 0.0
    vx: float = 0.0
    vy: float = 0.0
    log_scale: float = 0.0
    log_scale_vel: float = 0.0
    angle: float = 0.0
    omega: float = 0.0
    exit_at: int | None = None  # from this frame on it heads out through a border
    exit_dir: tuple[float, float] = (0.0, 0.0)
    state: str = "pending"  # pending -> alive -> gone
    seen: bool = False

    @property
    def r(self) -> float:
        return self.r0 * math.exp(self.log_scale)


@dataclass
class ShapeVideo:
    """One rendered video: frames (T, H, W, 3) RGB uint8, its background and its annotations."""

    name: str
    frames: np.ndarray
    background: np.ndarray
    caption: str
    # one row per box: frame index, instance index, category id, x, y, w, h, visibility and
    # the number of the instance's pixels inside the frame (occluded ones included)
    frame_index: np.ndarray
    instance: np.ndarray
    category: np.ndarray
    bbox: np.ndarray
    visibility: np.ndarray
    pixels: np.ndarray
    colors: dict[int, tuple[int, int, int]] = field(default_factory=dict)  # instance -> RGB
    shapes: dict[int, str] = field(default_factory=dict)  # instance -> shape name


def _background(rng: np.random.Generator, width: int, height: int, unit: float) -> tuple[np.ndarray, str]:
    """A plain or low-contrast textured background (RGB uint8) and its description."""
    cv2 = _cv2()
    h = float(rng.uniform(0, 360))
    s = float(rng.uniform(0.0, 0.25)) if rng.random() < 0.6 else 0.0
    v = float(rng.uniform(0.3, 0.8))
    base = _hsv(h, s, v).astype(np.float64)
    name = _background_color_name(h, s, v)
    kind = rng.choice(["plain", "gradient", "stripes", "mottled"], p=[0.35, 0.25, 0.2, 0.2])
    amp = float(rng.uniform(8, 18))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    if kind == "plain":
        tex = np.zeros((height, width))
        desc = f"a {name} background"
    elif kind == "gradient":
        a = rng.uniform(0, 2 * np.pi)
        proj = xx * math.cos(a) + yy * math.sin(a)
        tex = (proj - proj.min()) / max(np.ptp(proj), 1e-9) * 2 - 1
        desc = f"a {name} gradient background"
    elif kind == "stripes":
        a = rng.uniform(0, np.pi)
        period = rng.uniform(10, 28) * unit
        proj = xx * math.cos(a) + yy * math.sin(a)
        tex = np.tanh(2.5 * np.sin(2 * np.pi * proj / period)) * 0.8
        desc = f"a striped {name} background"
    else:
        cells = max(2, int(round(min(width, height) / (18 * unit))))
        small = rng.normal(0, 1, (cells + 1, cells + 1))
        tex = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
        tex = np.clip(tex / max(np.abs(tex).max(), 1e-9), -1, 1)
        desc = f"a mottled {name} background"
    img = base[None, None, :] + amp * tex[..., None]
    return np.clip(np.round(img), 0, 255).astype(np.uint8), desc


def _pick_colors(rng: np.random.Generator, n: int, background: np.ndarray) -> list[np.ndarray]:
    """``n`` saturated colours, well apart from each other and from every background pixel."""
    lo = background.reshape(-1, 3).min(0).astype(np.float64)
    hi = background.reshape(-1, 3).max(0).astype(np.float64)
    slots = rng.permutation(12)
    offset = rng.uniform(0, 30)
    colors: list[np.ndarray] = []
    for i in range(n):
        best, best_score = None, -1.0
        for attempt in range(60):
            slot = slots[(i + attempt) % 12] if attempt < 24 else rng.integers(12)
            hue = slot * 30 + offset + rng.uniform(-4, 4)
            c = _hsv(hue, float(rng.uniform(0.75, 1.0)), float(rng.uniform(0.8, 1.0))).astype(np.float64)
            # Smallest max-channel difference to any background pixel (per channel range).
            bg_gap = float(np.max(np.maximum(lo - c, c - hi)))
            other = min((float(np.linalg.norm(c - o)) for o in colors), default=1e9)
            score = min(bg_gap / _MIN_BG_CONTRAST, other / _MIN_COLOR_DISTANCE)
            if score > best_score:
                best, best_score = c, score
            if score >= 1.0:
                break
        colors.append(best.astype(np.int64))
    return colors


def _place_inside(rng: np.random.Generator, inst: _Instance, others: list[_Instance], width: int,
                  height: int) -> None:
    r = inst.r
    best, best_gap = (width / 2, height / 2), -1e9
    for _ in range(20):
        cx = rng.uniform(min(r, width / 2), max(width - r, width / 2))
        cy = rng.uniform(min(r, height / 2), max(height - r, height / 2))
        gap = min((math.hypot(cx - o.cx, cy - o.cy) - 0.9 * (r + o.r) for o in others), default=1e9)
        if gap > best_gap:
            best, best_gap = (cx, cy), gap
        if gap >= 0:
            break
    inst.cx, inst.cy = best


def _place_entering(rng: np.random.Generator, inst: _Instance, width: int, height: int, unit: float) -> None:
    r = inst.r
    side = int(rng.integers(4))
    depth_out = rng.uniform(-0.2, 0.5) * r  # how far the centre starts outside the border
    speed = rng.uniform(1.5, 3.0) * unit
    tangential = rng.uniform(-1.0, 1.0) * unit
    if side == 0:  # left
        inst.cx, inst.cy = -depth_out, rng.uniform(r, max(r, height - r))
        inst.vx, inst.vy = speed, tangential
    elif side == 1:  # right
        inst.cx, inst.cy = width + depth_out, rng.uniform(r, max(r, height - r))
        inst.vx, inst.vy = -speed, tangential
    elif side == 2:  # top
        inst.cx, inst.cy = rng.uniform(r, max(r, width - r)), -depth_out
        inst.vx, inst.vy = tangential, speed
    else:  # bottom
        inst.cx, inst.cy = rng.uniform(r, max(r, width - r)), height + depth_out
        inst.vx, inst.vy = tangential, -speed


def _step(rng: np.random.Generator, inst: _Instance, t: int, width: int, height: int, unit: float) -> None:
    """Advance one frame: accelerate, bounce or head out, move, rescale, rotate."""
    ax, ay = rng.normal(0, 0.25 * unit, 2)
    leaving = inst.exit_at is not None and t >= inst.exit_at
    if leaving and inst.exit_dir == (0.0, 0.0):
        # head for the nearest border, unless already moving out through another one
        gaps = {(-1.0, 0.0): inst.cx, (1.0, 0.0): width - inst.cx, (0.0, -1.0): inst.cy, (0.0, 1.0): height - inst.cy}
        inst.exit_dir = min(gaps, key=lambda d: gaps[d] - 8.0 * unit * (d[0] * inst.vx + d[1] * inst.vy))
    if leaving:
        ax += inst.exit_dir[0] * 0.5 * unit
        ay += inst.exit_dir[1] * 0.5 * unit
    inst.vx += ax
    inst.vy += ay
    speed = math.hypot(inst.vx, inst.vy)
    lo, hi = 0.6 * unit, (4.5 if leaving else 3.2) * unit
    if speed < lo or speed > hi:
        if speed < 1e-9:
            a = rng.uniform(0, 2 * np.pi)
            inst.vx, inst.vy = math.cos(a), math.sin(a)
            speed = 1.0
        target = min(max(speed, lo), hi)
        inst.vx *= target / speed
        inst.vy *= target / speed
    if not leaving:
        r = inst.r * 0.9
        if (inst.cx < r and inst.vx < 0) or (inst.cx > width - r and inst.vx > 0):
            inst.vx = -inst.vx
        if (inst.cy < r and inst.vy < 0) or (inst.cy > height - r and inst.vy > 0):
            inst.vy = -inst.vy
    inst.cx += inst.vx
    inst.cy += inst.vy
    inst.log_scale_vel = float(np.clip(inst.log_scale_vel + rng.normal(0, 0.008), -0.03, 0.03))
    inst.log_scale += inst.log_scale_vel
    if not (math.log(0.65) <= inst.log_scale <= math.log(1.5)):
        inst.log_scale = float(np.clip(inst.log_scale, math.log(0.65), math.log(1.5)))
        inst.log_scale_vel = -inst.log_scale_vel
    inst.angle += inst.omega


def _outside(inst: _Instance, width: int, height: int) -> bool:
    reach = inst.r * 1.25
    return (inst.cx + reach < 0 or inst.cy + reach < 0 or inst.cx - reach > width or inst.cy - reach > height)


def render_video(index: int, *, seed: int = 0, frames: int = 32, size: tuple[int, int] = (128, 128),
                 max_visible: int = 6, instances: tuple[int, int] = (2, 10)) -> ShapeVideo:
    """Render video ``index`` of the set made with ``seed`` (independent of any other video)."""
    width, height = size
    rng = np.random.default_rng([int(seed), int(index)])
    unit = min(width, height) / 128.0
    background, bg_desc = _background(rng, width, height, unit)
    n_total = int(rng.integers(instances[0], instances[1] + 1))
    n_first = int(rng.integers(1, min(4, n_total, max_visible) + 1))
    depths = rng.permutation(n_total)
    colors = _pick_colors(rng, n_total, background)
    insts: list[_Instance] = []
    late = np.sort(rng.integers(1, max(frames - 3, 2), n_total - n_first)) if frames > 1 else np.zeros(
        n_total - n_first, np.int64)
    for i in range(n_total):
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        inst = _Instance(
            index=i, shape=shape, color=colors[i], depth=int(depths[i]),
            spawn=0 if i < n_first else int(late[i - n_first]),
            # never so small that the smallest scale falls under the 4-pixel box limit
            r0=max(float(rng.uniform(7.0, 17.0)) * unit, 5.5),
            log_scale=float(rng.uniform(-0.15, 0.15)),
            angle=float(rng.uniform(0, 2 * np.pi)),
            omega=0.0 if shape == "circle" else float(rng.uniform(-0.08, 0.08)),
        )
        a = rng.uniform(0, 2 * np.pi)
        speed = rng.uniform(0.8, 2.8) * unit
        inst.vx, inst.vy = speed * math.cos(a), speed * math.sin(a)
        if rng.random() < 0.6:
            inst.exit_at = int(inst.spawn + rng.integers(3, max(int(0.7 * frames), 5)))
        insts.append(inst)

    out = np.empty((frames, height, width, 3), np.uint8)
    rows: list[tuple[int, int, int, int, int, int, int, int, float]] = []
    label = np.empty((height, width), np.int16)
    for t in range(frames):
        # spawn what is due, while fewer than max_visible are alive; never leave the frame empty
        # while instances are still waiting
        if not any(o.state == "alive" for o in insts):
            waiting = [o for o in insts if o.state == "pending"]
            if waiting:
                waiting[0].spawn = min(waiting[0].spawn, t)
        for inst in insts:
            if inst.state != "pending" or inst.spawn > t:
                continue
            if sum(1 for o in insts if o.state == "alive") >= max_visible:
                break
            if t == 0:
                _place_inside(rng, inst, [o for o in insts if o.state == "alive"], width, height)
            else:
                _place_entering(rng, inst, width, height, unit)
            inst.state = "alive"
        frame = background.copy()
        label.fill(-1)
        drawn: list[tuple[_Instance, tuple[int, int, int, int] | None, int]] = []
        for inst in sorted((o for o in insts if o.state == "alive"), key=lambda o: o.depth):
            mask, x0, y0 = shape_mask(inst.shape, inst.cx, inst.cy, inst.r, inst.angle)
            full = int(mask.sum())
            mh, mw = mask.shape
            cx0, cy0 = max(x0, 0), max(y0, 0)
            cx1, cy1 = min(x0 + mw, width), min(y0 + mh, height)
            box = None
            inframe = 0
            if cx1 > cx0 and cy1 > cy0:
                sub = mask[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
                inframe = int(sub.sum())
                if inframe:
                    frame[cy0:cy1, cx0:cx1][sub] = inst.color.astype(np.uint8)
                    label[cy0:cy1, cx0:cx1][sub] = inst.index
                    cols = np.flatnonzero(sub.any(0))
                    rws = np.flatnonzero(sub.any(1))
                    box = (cx0 + int(cols[0]), cy0 + int(rws[0]), int(cols[-1] - cols[0] + 1),
                           int(rws[-1] - rws[0] + 1))
                    if inframe < MIN_INFRAME_FRACTION * full or box[2] < MIN_BOX_SIDE or box[3] < MIN_BOX_SIDE:
                        box = None
            drawn.append((inst, box, inframe))
        for inst, box, inframe in drawn:
            if box is None:
                continue
            x, y, w, h = box
            visible = int(np.count_nonzero(label[y:y + h, x:x + w] == inst.index))
            rows.append((t, inst.index, SHAPES.index(inst.shape) + 1, x, y, w, h, inframe, visible / inframe))
            inst.seen = True
        out[t] = frame
        # move everything for the next frame
        for inst in insts:
            if inst.state == "alive":
                _step(rng, inst, t, width, height, unit)
                if _outside(inst, width, height) and (inst.seen or t > inst.spawn + 3):
                    inst.state = "gone"

    arr = np.array([r[:8] for r in rows], dtype=np.int64).reshape(-1, 8)
    vis = np.array([r[8] for r in rows], dtype=np.float64)
    seen = sorted({int(i) for i in arr[:, 1]}, key=lambda i: (int(arr[arr[:, 1] == i, 0].min()), i))
    parts = [f"{color_name(insts[i].color)} {insts[i].shape}" for i in seen]
    if not parts:
        objects = "nothing"
    elif len(parts) == 1:
        objects = parts[0]
    else:
        objects = ", ".join(parts[:-1]) + " and " + parts[-1]
    caption = f"{objects} on {bg_desc}"
    return ShapeVideo(
        name=video_name(index), frames=out, background=background, caption=caption,
        frame_index=arr[:, 0], instance=arr[:, 1], category=arr[:, 2], bbox=arr[:, 3:7].astype(np.float64),
        visibility=np.round(vis, 4), pixels=arr[:, 7],
        colors={i: tuple(int(c) for c in insts[i].color) for i in seen},
        shapes={i: insts[i].shape for i in seen},
    )


def _trackset(videos: list[ShapeVideo], indices: list[int], frames: int, size: tuple[int, int],
              info: dict) -> TrackSet:
    width, height = size
    nv = len(videos)
    f_video = np.repeat(np.arange(nv, dtype=np.int64), frames)
    f_index = np.tile(np.arange(frames, dtype=np.int64), nv)
    f_name = np.array([f"images/{v.name}/{i + 1:06d}.png" for v in videos for i in range(frames)], dtype=object)
    f_id = np.concatenate([k * frames + np.arange(frames, dtype=np.int64) + 1 for k in indices]) if nv else \
        np.zeros(0, np.int64)
    b_frame, b_bbox, b_track, b_cat, b_vis = [], [], [], [], []
    for v, (vid, k) in enumerate(zip(videos, indices)):
        b_frame.append(v * frames + vid.frame_index)
        b_bbox.append(vid.bbox)
        b_track.append(k * TRACK_STRIDE + vid.instance + 1)
        b_cat.append(vid.category)
        b_vis.append(vid.visibility)
    cat = (lambda p, dt, shape=(0,): np.concatenate(p).astype(dt) if p else np.zeros(shape, dt))
    frame = cat(b_frame, np.int64)
    order = np.argsort(frame, kind="stable")
    m = frame.size
    ts = TrackSet(
        videos=Videos(name=np.array([v.name for v in videos], dtype=object),
                      id=np.array(indices, np.int64) + 1,
                      width=np.full(nv, width, np.int64), height=np.full(nv, height, np.int64)),
        frames=Frames(video=f_video, index=f_index, file_name=f_name, id=f_id,
                      width=np.full(nv * frames, width, np.int64), height=np.full(nv * frames, height, np.int64),
                      number=(f_index + 1).astype(np.float64)),
        boxes=Boxes(frame=frame[order], bbox=cat(b_bbox, np.float64, (0, 4))[order],
                    track=cat(b_track, np.int64)[order], category=cat(b_cat, np.int64)[order],
                    id=np.arange(1, m + 1, dtype=np.int64), iscrowd=np.zeros(m, np.int8),
                    visibility=cat(b_vis, np.float64)[order], conf=np.ones(m, np.float64)),
        categories=[dict(c) for c in CATEGORIES],
        meta={"info": info},
        source="shapes",
        source_format="shapes",
        style={"flavor": "mmdet", "video_name": True, "ann_video_id": True, "mot_frame_id": False,
               "num_instances": False},
    )
    ts.check()
    return ts


def _png(cv2, rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:  # pragma: no cover
        raise OutputError("could not encode a PNG frame")
    return buf.tobytes()


def check_render_args(out_dir: str | Path, *, videos: int, frames: int, size: tuple[int, int], seed: int,
                      overwrite: bool = False, max_visible: int = 6,
                      instances: tuple[int, int] = (2, 10)) -> tuple[int, int]:
    """Validate :func:`render_shapes` arguments (UsageError / OutputError); return ``(width, height)``."""
    out_dir = Path(out_dir)
    width, height = (int(size[0]), int(size[1]))
    if videos < 1:
        raise UsageError(f"--videos must be at least 1, got {videos}")
    if frames < 1:
        raise UsageError(f"--frames must be at least 1, got {frames}")
    if width < 32 or height < 32:
        raise UsageError(f"--size {width}x{height}: each side must be at least 32 pixels")
    if width > 4096 or height > 4096:
        raise UsageError(f"--size {width}x{height}: each side must be at most 4096 pixels")
    if seed < 0:
        raise UsageError(f"--seed must be non-negative, got {seed}")
    if not 1 <= max_visible:
        raise UsageError(f"max_visible must be at least 1, got {max_visible}")
    if not 1 <= instances[0] <= instances[1] or instances[1] >= TRACK_STRIDE:
        raise UsageError(f"instances must be a range 1 <= lo <= hi < {TRACK_STRIDE}, got {instances}")
    check_output_free(out_dir, overwrite)
    return width, height


def render_shapes(out_dir: str | Path, videos: int = 20, frames: int = 32, size: tuple[int, int] = (128, 128),
                  seed: int = 0, *, overwrite: bool = False, max_visible: int = 6,
                  instances: tuple[int, int] = (2, 10),
                  progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Render ``videos`` shape videos into ``out_dir`` and return a summary.

    Writes ``images/<video>/000001.png ...``, ``annotations.json`` (COCO-VID, mmdet flavour,
    with ``visibility``; file names are relative to ``out_dir``), ``captions.json``
    (video name -> caption) and ``backgrounds/<video>.png`` (the clean background). The
    directory appears whole or not at all. ``progress(done, total)`` is called after each video.
    """
    out_dir = Path(out_dir)
    width, height = check_render_args(out_dir, videos=videos, frames=frames, size=size, seed=seed,
                                      overwrite=overwrite, max_visible=max_visible, instances=instances)
    cv2 = _cv2()
    import orjson

    from ..tracks.cocovid import write_cocovid

    t0 = time.perf_counter()
    rendered: list[ShapeVideo] = []
    captions: dict[str, str] = {}
    info = {"description": "procedurally rendered moving shapes (tdgen shapes)", "version": __version__,
            "seed": int(seed), "frames_per_video": int(frames), "width": width, "height": height}
    with atomic_directory(out_dir, overwrite=overwrite) as tmp:
        (tmp / "backgrounds").mkdir()
        for k in range(videos):
            vid = render_video(k, seed=seed, frames=frames, size=(width, height), max_visible=max_visible,
                               instances=instances)
            vdir = tmp / "images" / vid.name
            vdir.mkdir(parents=True)
            for i in range(frames):
                (vdir / f"{i + 1:06d}.png").write_bytes(_png(cv2, vid.frames[i]))
            (tmp / "backgrounds" / f"{vid.name}.png").write_bytes(_png(cv2, vid.background))
            captions[vid.name] = vid.caption
            vid.frames = vid.frames[:0]  # keep the annotations, free the pixels
            rendered.append(vid)
            if progress is not None:
                progress(k + 1, videos)
        ts = _trackset(rendered, list(range(videos)), frames, (width, height), info)
        write_cocovid(ts, tmp / "annotations.json", "mmdet")
        (tmp / "captions.json").write_bytes(orjson.dumps(captions, option=orjson.OPT_INDENT_2) + b"\n")
    return {
        "output": str(out_dir),
        "videos": int(videos),
        "frames": int(videos * frames),
        "boxes": int(ts.num_boxes),
        "tracks": int(ts.num_tracks),
        "size": [width, height],
        "seed": int(seed),
        "seconds": round(time.perf_counter() - t0, 3),
        "annotations": str(out_dir / "annotations.json"),
        "captions": str(out_dir / "captions.json"),
    }
