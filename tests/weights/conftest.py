"""Tiny source checkpoints (built once per session) and the model directories made from them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "synth"))

import weight_sources as ws  # noqa: E402


@pytest.fixture(scope="session")
def wroot(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="session")
def sd_base(wroot) -> Path:
    return ws.write_sd_base(wroot / "sd-base")


@pytest.fixture(scope="session")
def pub_cfg() -> dict:
    return ws.tiny_published_config()


@pytest.fixture(scope="session")
def pub_state(pub_cfg) -> dict:
    return ws.published_state(pub_cfg)


@pytest.fixture(scope="session")
def pub_unet(wroot, pub_state, pub_cfg) -> Path:
    return ws.write_published_unet(wroot / "TrackDiffusion" / "modelscope_ft" / "unet", pub_state,
                                   ws.published_config(pub_cfg))


@pytest.fixture(scope="session")
def official_model(wroot, pub_unet, sd_base):
    from tdgen.weights import import_official

    out = wroot / "models" / "official"
    return out, import_official(pub_unet, sd_base, out, resolution=(64, 64), frames=4)


@pytest.fixture(scope="session")
def gligen_dir(wroot, sd_base) -> Path:
    return ws.write_gligen(wroot / "gligen-text-box", sd_base)


@pytest.fixture(scope="session")
def modelscope_dir(wroot) -> Path:
    return ws.write_modelscope(wroot / "text-to-video-ms")


@pytest.fixture(scope="session")
def gligen_model(wroot, gligen_dir, modelscope_dir):
    from tdgen.weights import init_from_gligen

    out = wroot / "models" / "init"
    return out, init_from_gligen(gligen_dir, modelscope_dir, out, frames=4)


@pytest.fixture(scope="session")
def mot(wroot) -> Path:
    from make_mot import write_mot_split

    return write_mot_split(wroot / "mot" / "train", lengths=(8, 6), tracks=(2, 2))
