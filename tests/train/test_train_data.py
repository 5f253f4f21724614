"""ClipDataset: frames, boxes, prompts, flips, seeded order, latent cache, frame sources."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from tdgen.errors import AnnotationError, UsageError
from tdgen.train.data import (
    ClipDataset,
    ClipOrder,
    LatentCache,
    collate_items,
    derive_seed,
    encode_pixels,
    flip_boxes,
    latent_cache_key,
    load_captions,
    precompute_latents,
)


def _dataset(rects, **kw):
    args = dict(captions=rects["captions"], frames=4, slots=3, resolution=(32, 24))
    args.update(kw)
    return ClipDataset(rects["ann"], **args)


def test_items_have_model_resolution_and_normalised_boxes(rects):
    ds = _dataset(rects)
    assert len(ds) == 2 and ds.num_videos == 2  # one 4-frame window per 6-frame video
    item = ds[0]
    assert item["pixels"].shape == (4, 3, 24, 32) and item["pixels"].dtype == torch.float32
    assert -1.0 <= float(item["pixels"].min()) and float(item["pixels"].max()) <= 1.0
    assert item["boxes"].shape == (4, 3, 4) and item["mask"].shape == (4, 3)
    present = item["mask"] > 0
    b = item["boxes"][present]
    assert float(b.min()) >= 0.0 and float(b.max()) <= 1.0
    assert bool((b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all())
    assert item["boxes"][~present].abs().sum() == 0
    assert item["category_names"] == ["red box", "blue box", ""]


def test_box_region_holds_its_colour_after_resize(rects):
    ds = _dataset(rects)
    frames = ds.frames(0)  # (F, H, W, 3) uint8 RGB
    boxes, mask, names = ds.conditioning(0)
    H, W = frames.shape[1:3]
    x1, y1, x2, y2 = boxes[0, 0]
    cx, cy = int((x1 + x2) / 2 * W), int((y1 + y2) / 2 * H)
    # the centre of slot 0's box shows a rectangle colour (red, or blue drawn over it), not the grey background
    pix = frames[0, cy, cx].astype(int)
    colors = [np.array(c) for c in rects["colors"].values()]
    assert min(np.abs(pix - c).max() for c in colors) < 40


def test_prompts_from_captions_else_template(rects):
    ds = _dataset(rects, prompt_template="clip of {categories} in {video}")
    by_video = {c.video_name: p for c, p in zip(ds.clips, ds.prompts)}
    assert by_video["rects_00"] == "two rectangles drifting"
    assert by_video["rects_01"] == "clip of red box, blue box in rects_01"
    with pytest.raises(UsageError, match="prompt template"):
        _dataset(rects, captions=None, prompt_template="{nope}")


def test_horizontal_flip_mirrors_pixels_and_boxes(rects):
    ds = _dataset(rects)
    a, b = ds[(0, False)], ds[(0, True)]
    assert b["flip"] and not a["flip"]
    assert torch.equal(b["pixels"], a["pixels"].flip(-1))
    m = a["mask"] > 0
    assert torch.allclose(b["boxes"][..., 0][m], 1 - a["boxes"][..., 2][m])
    assert torch.allclose(b["boxes"][..., 2][m], 1 - a["boxes"][..., 0][m])
    assert torch.equal(b["boxes"][..., 1], a["boxes"][..., 1])
    assert b["boxes"][~m].abs().sum() == 0
    boxes = np.array([[[0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0]]], np.float32)
    assert flip_boxes(boxes, np.array([[1.0, 0.0]]))[0, 1].tolist() == [0, 0, 0, 0]


def test_collate_stacks_tensors_and_lists(rects):
    ds = _dataset(rects)
    batch = collate_items([ds[0], ds[1]])
    assert batch["pixels"].shape == (2, 4, 3, 24, 32)
    assert batch["boxes"].shape == (2, 4, 3, 4)
    assert batch["prompt"] == ds.prompts[:2]
    assert len(batch["category_names"]) == 2 and batch["flip"] == [False, False]


def test_clip_order_is_seeded_and_covers_each_epoch():
    order = ClipOrder(5, seed=3, hflip=True)
    first = [order(p) for p in range(10)]
    assert first == [ClipOrder(5, seed=3, hflip=True)(p) for p in range(10)]
    assert sorted(i for i, _ in first[:5]) == list(range(5))
    assert sorted(i for i, _ in first[5:]) == list(range(5))
    assert {f for _, f in [order(p) for p in range(64)]} == {True, False}
    assert [order(p) for p in range(10)] != [ClipOrder(5, seed=4, hflip=True)(p) for p in range(10)]
    assert all(not f for _, f in (ClipOrder(5, seed=3)(p) for p in range(20)))
    assert derive_seed(0, "a", 1) == derive_seed(0, "a", 1) != derive_seed(0, "a", 2)


def test_latent_cache_serves_the_encoded_latents(rects, tmp_path):
    from tdgen.model.autoencoder import SpaceToDepthAutoencoder

    vae = SpaceToDepthAutoencoder(factor=8)
    ds = _dataset(rects, resolution=(32, 16))
    key = latent_cache_key(vae, ann=rects["ann"], images_root=ds.images_root, resolution=ds.resolution, spec=ds.spec)
    cache = LatentCache(tmp_path / key)
    assert precompute_latents(ds, vae, cache, flips=True) == 4
    assert precompute_latents(ds, vae, cache, flips=True) == 0  # nothing left to do
    direct = encode_pixels(vae, ds.pixels(1, True)[None])[0]
    cached = ClipDataset(rects["ann"], captions=rects["captions"], frames=4, slots=3, resolution=(32, 16),
                         latent_cache=cache)[(1, True)]
    assert "pixels" not in cached and torch.equal(cached["latents"], direct)
    assert cached["latents"].shape == (192, 4, 2, 4)
    other = latent_cache_key(vae, ann=rects["ann"], images_root=ds.images_root, resolution=(32, 24), spec=ds.spec)
    assert other != key


def test_images_root_and_missing_frames(rects, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.copytree(rects["root"] / "images", moved / "images")
    ann = tmp_path / "ann.json"
    shutil.copy(rects["ann"], ann)
    with pytest.raises(AnnotationError, match="does not exist.*--images"):
        ClipDataset(ann, frames=4, slots=3, resolution=(32, 24))[0]
    ds = ClipDataset(ann, images=moved, frames=4, slots=3, resolution=(32, 24))
    assert torch.equal(ds[0]["pixels"], _dataset(rects)[0]["pixels"])
    with pytest.raises(UsageError, match="no such directory"):
        ClipDataset(ann, images=tmp_path / "nope", frames=4)


def test_no_clip_long_enough(rects):
    with pytest.raises(UsageError, match="no clip of 50 frames"):
        _dataset(rects, frames=50)


def test_captions_file_errors(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text("[1, 2]")
    with pytest.raises(AnnotationError, match="JSON object"):
        load_captions(bad)
    bad.write_text('{"v": 3}')
    with pytest.raises(AnnotationError, match="must be a string"):
        load_captions(bad)
    with pytest.raises(AnnotationError, match="no such captions file"):
        load_captions(tmp_path / "missing.json")


def test_frames_from_a_video_file(rects, tmp_path):
    """A video whose name is a video file is decoded with decord when its frame images are absent."""
    cv2 = pytest.importorskip("cv2")
    pytest.importorskip("decord")
    import json

    from tdgen.tracks.io import read_tracks

    ts = read_tracks(rects["ann"])
    doc = json.loads(rects["ann"].read_text())
    for v in doc["videos"]:
        v["name"] = v["name"] + ".avi"
    (tmp_path / "ann.json").write_text(json.dumps(doc))
    for v in range(2):
        name = str(ts.videos.name[v])
        writer = cv2.VideoWriter(str(tmp_path / f"{name}.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5, (64, 48))
        if not writer.isOpened():
            pytest.skip("OpenCV cannot write MJPG here")
        for f in range(6):
            img = cv2.imread(str(rects["root"] / f"images/{name}/{f + 1:06d}.png"))
            writer.write(cv2.resize(img, (64, 48), interpolation=cv2.INTER_NEAREST))  # (decord: width % 32)
        writer.release()
    ds = ClipDataset(tmp_path / "ann.json", frames=4, slots=3, resolution=(32, 24))
    got = ds.frames(1)
    want = _dataset(rects).frames(1)
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).mean() < 12  # MJPG is lossy
