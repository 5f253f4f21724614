"""The clips -> arrays adapter that synth and training share."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tdgen.conditioning import ClipBatch, clip_arrays, clip_batch, flip_boxes
from tdgen.tracks.clips import ClipSpec, collate, plan_clips
from tdgen.tracks.io import read_tracks

ANN = Path(__file__).resolve().parents[1] / "examples" / "mot_mini_cocovid.json"


@pytest.fixture(scope="module")
def clips():
    out = plan_clips(read_tracks(ANN), ClipSpec(frames=4, stride=4, max_slots=6))
    assert len(out) >= 3 and any(c.num_tracks < c.num_slots for c in out)
    return out


def test_a_batch_is_the_clips_boxes_masks_and_names(clips):
    batch = clip_batch(clips[:3])
    assert isinstance(batch, ClipBatch) and len(batch) == 3
    assert batch.boxes.shape == (3, 4, 6, 4) and batch.boxes.dtype == np.float32
    assert batch.masks.shape == (3, 4, 6) and batch.masks.dtype == np.float32
    assert batch.category_names.shape == (3, 6) and batch.category_names.dtype == object
    for i, c in enumerate(clips[:3]):
        assert np.array_equal(batch.boxes[i], c.boxes) and np.array_equal(batch.masks[i], c.mask)
        assert list(batch.category_names[i, :c.num_tracks]) == c.category_names
        assert set(batch.category_names[i, c.num_tracks:]) <= {""}
    assert set(batch.as_kwargs()) == {"boxes", "masks", "category_names"}


def test_the_batch_equals_the_tracks_collate(clips):
    """tracks.clips.collate stacks the same three arrays (with more fields); they must agree."""
    for num_slots in (None, 9):
        ours, theirs = clip_batch(clips[:3], num_slots=num_slots), collate(clips[:3], num_slots=num_slots)
        assert np.array_equal(ours.boxes, theirs["boxes"]) and np.array_equal(ours.masks, theirs["mask"])
        assert (ours.category_names == theirs["category_names"]).all()


def test_arrays_are_copies(clips):
    c = clips[0]
    boxes, mask, names = clip_arrays(c)
    before = c.boxes.copy()
    boxes[:] = 0.5
    mask[:] = 0
    assert np.array_equal(c.boxes, before) and c.mask.any()
    assert len(names) == c.num_slots


def test_flip_mirrors_present_boxes_only(clips):
    c = clips[0]
    boxes, mask, _ = clip_arrays(c)
    flipped, fmask, _ = clip_arrays(c, flip=True)
    assert np.array_equal(fmask, mask)
    on = mask > 0
    assert np.allclose(flipped[..., 0][on], 1 - boxes[..., 2][on])
    assert np.allclose(flipped[..., 2][on], 1 - boxes[..., 0][on])
    assert np.array_equal(flipped[..., 1], boxes[..., 1]) and not flipped[~on].any()
    assert np.array_equal(flip_boxes(boxes, mask), flipped)
    batch = clip_batch(clips[:2], flips=[True, False])
    assert np.array_equal(batch.boxes[0], flipped) and np.array_equal(batch.boxes[1], clips[1].boxes)


def test_what_cannot_be_stacked(clips):
    with pytest.raises(ValueError, match="no clips"):
        clip_batch([])
    short = plan_clips(read_tracks(ANN), ClipSpec(frames=2, max_slots=6))[0]
    with pytest.raises(ValueError, match="different frame counts"):
        clip_batch([clips[0], short])
    busy = max(clips, key=lambda c: c.num_tracks)
    with pytest.raises(ValueError, match="more than the batch's"):
        clip_batch([busy], num_slots=busy.num_tracks - 1)
    with pytest.raises(ValueError, match="flip flags"):
        clip_batch(clips[:2], flips=[True])


def test_training_items_condition_as_the_adapter_does(clips):
    """The training dataset's boxes, mask and names of a clip equal the adapter's."""
    pytest.importorskip("torch")
    from tdgen.train.data import ClipDataset

    ds = ClipDataset(ANN, frames=4, stride=4, slots=6, resolution=(64, 64))
    for i in range(min(3, len(ds))):
        for flip in (False, True):
            got = ds.conditioning(i, flip)
            want = clip_arrays(ds.clips[i], flip=flip)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2]
