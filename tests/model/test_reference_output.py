"""The tiny UNet's output against one stored before the single-frame change.

``tests/data/model/tiny_unet_reference.npz`` was written by ``python tests/model/test_reference_output.py
OUT.npz`` on the code that ran every temporal module at every clip length (commit d3a752a). It holds:

* ``out16`` ``(1, 4, 16, 8, 8)``: a 16-frame forward, which the single-frame change must not touch;
* ``out1_before`` ``(1, 4, 1, 8, 8)``: a 1-frame forward of the old code (temporal convs and
  temporal attentions of every block ran), which the new code must differ from;
* ``description``: how the model and inputs below were built.

The single-frame tests check the published rule: at one frame the UNet equals itself with every
down/up temporal conv and temporal transformer, and the mid block's but its first temporal conv,
replaced by the identity.

The model and inputs are built here, not from ``conftest``, so that editing shared fixtures cannot
silently change what the stored numbers mean. Do not regenerate the file to make a test pass.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from tdgen.model import TrackDiffusionUNet, tiny_config
from tdgen.model.attention import TemporalTransformer
from tdgen.model.blocks import TemporalConvLayer

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "model" / "tiny_unet_reference.npz"

DESCRIPTION = (
    "TrackDiffusionUNet(**tiny_config()) built after torch.manual_seed(0), eval mode, fp32, CPU; "
    "every parameter except the fuser/injector gates gets N(0, 0.05^2) noise from "
    "torch.Generator().manual_seed(1) in named_parameters() order, gates set to 0.5. "
    "Inputs from torch.Generator().manual_seed(2 + frames), drawn in this order: sample (1, 4, F, 8, 8) "
    "randn; text (1, 7, 32) randn; xy (1, F, 6, 2) rand*0.6; wh 0.1 + rand*0.3; boxes = xy || xy+wh; "
    "masks rand > 0.4 with slot 0 present and slot 5 absent; box_embeddings (1, F, 6, 32) randn; "
    "timestep 500."
)


def build_model() -> TrackDiffusionUNet:
    """The tiny UNet with every parameter (zero-initialised ones included) made non-trivial."""
    torch.manual_seed(0)
    model = TrackDiffusionUNet(**tiny_config()).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("alpha_attn", "alpha_dense")):
                p.fill_(0.5)  # open gates so fusers and injectors contribute
            else:
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    return model


def build_inputs(frames: int, slots: int = 6) -> dict[str, torch.Tensor]:
    """Seeded latents, text tokens and tracks for a ``frames``-frame clip of ``slots`` slots."""
    g = torch.Generator().manual_seed(2 + frames)
    sample = torch.randn(1, 4, frames, 8, 8, generator=g)
    text = torch.randn(1, 7, 32, generator=g)
    xy = torch.rand(1, frames, slots, 2, generator=g) * 0.6
    wh = 0.1 + torch.rand(1, frames, slots, 2, generator=g) * 0.3
    masks = torch.rand(1, frames, slots, generator=g) > 0.4
    masks[:, :, 0] = True
    masks[:, :, -1] = False
    emb = torch.randn(1, frames, slots, 32, generator=g)
    return dict(
        sample=sample,
        timestep=torch.tensor([500]),
        encoder_hidden_states=text,
        boxes=torch.cat([xy, xy + wh], dim=-1),
        box_masks=masks,
        box_embeddings=emb,
    )


def run(model: TrackDiffusionUNet, frames: int) -> np.ndarray:
    with torch.no_grad():
        return model(**build_inputs(frames)).sample.numpy().astype(np.float32)


def stored() -> dict[str, np.ndarray]:
    with np.load(REFERENCE) as data:
        return {k: data[k] for k in data.files}


def test_reference_file_is_what_it_says():
    ref = stored()
    assert str(ref["description"]) == DESCRIPTION
    assert ref["out16"].shape == (1, 4, 16, 8, 8) and ref["out16"].dtype == np.float32
    assert ref["out1_before"].shape == (1, 4, 1, 8, 8)
    assert np.isfinite(ref["out16"]).all() and ref["out16"].std() > 0.1


def test_sixteen_frames_match_stored_reference():
    out = run(build_model(), 16)
    np.testing.assert_allclose(out, stored()["out16"], atol=1e-5, rtol=1e-5)


class _Skipped(nn.Module):
    """Stands in for a temporal module: returns its input."""

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        return x


def _skip_temporal(model: TrackDiffusionUNet, keep_mid_first_conv: bool = True) -> TrackDiffusionUNet:
    """Replace every down/up temporal conv and temporal transformer, and the mid block's (but its
    first temporal conv, unless told), with :class:`_Skipped`."""
    for block in [*model.down_blocks, *model.up_blocks, model.mid_block]:
        convs = block.temp_convs
        first = 1 if block is model.mid_block and keep_mid_first_conv else 0
        for i in range(first, len(convs)):
            convs[i] = _Skipped()
        attns = getattr(block, "temp_attentions", None)
        for i in range(len(attns) if attns is not None else 0):
            attns[i] = _Skipped()
    return model


def test_single_frame_skips_temporal_modules_as_published():
    model = build_model()
    out1 = run(model, 1)
    skipped = _skip_temporal(build_model())
    left = [n for n, m in skipped.named_modules() if isinstance(m, (TemporalConvLayer, TemporalTransformer))]
    assert left == ["transformer_in", "mid_block.temp_convs.0"]
    assert sum(isinstance(m, _Skipped) for m in skipped.modules()) == 11  # tiny: 3 down, 6 up, 2 mid
    np.testing.assert_allclose(out1, run(skipped, 1), atol=1e-6, rtol=0)
    # The old code ran the temporal modules at one frame: a different function.
    assert np.abs(out1 - stored()["out1_before"]).max() > 1e-2
    # The mid block's first temporal conv still runs (removing it too changes the output).
    assert np.abs(out1 - run(_skip_temporal(build_model(), keep_mid_first_conv=False), 1)).max() > 1e-3


def test_single_frame_rule_holds_with_gradient_checkpointing():
    model = build_model()
    inputs = build_inputs(1)
    ref = model(**inputs).sample
    model.enable_gradient_checkpointing()
    torch.testing.assert_close(model(**inputs).sample, ref)


if __name__ == "__main__":
    # How the file was made. The current code cannot reproduce ``out1_before`` (that is the point),
    # so a rewrite carries it over from the stored file.
    model = build_model()
    before = stored()["out1_before"] if REFERENCE.exists() else run(model, 1)
    np.savez_compressed(sys.argv[1], out16=run(model, 16), out1_before=before, description=np.array(DESCRIPTION))
