"""Lazy readers and the streaming safetensors writer."""

from __future__ import annotations

import json
import os
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from tdgen.modeldir import ModelError
from tdgen.weights.safetensors_stream import (
    SafetensorsWriter,
    file_sha256,
    find_weights_file,
    open_weights,
    safetensors_order,
    write_safetensors,
)


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "a.f32": torch.randn(3, 5, generator=g),
        "b.f16": torch.randn(7, generator=g).half(),
        "c.bf16": torch.randn(2, 3, 4, generator=g).bfloat16(),
        "d.i64": torch.randint(-9, 9, (4,), generator=g),
        "e.bool": torch.rand(5, generator=g) > 0.5,
        "f.u8": torch.randint(0, 255, (3, 3), generator=g, dtype=torch.uint8),
        "g.scalar": torch.tensor(0.25),
        "h.empty": torch.zeros(0, 4),
        "i.f64": torch.randn(2, generator=g, dtype=torch.float64),
    }


def _write(path, tensors, metadata=None):
    specs = safetensors_order((k, v.dtype, v.shape) for k, v in tensors.items())
    return write_safetensors(path, specs, lambda k: tensors[k], metadata=metadata)


def test_writer_output_loads_bit_exact_with_safetensors(tmp_path):
    tensors = _tensors()
    path = tmp_path / "w.safetensors"
    digest = _write(path, tensors, metadata={"format": "pt", "note": "x"})
    assert digest == file_sha256(path)
    loaded = load_file(str(path))
    assert set(loaded) == set(tensors)
    for k, v in tensors.items():
        assert loaded[k].dtype == v.dtype and loaded[k].shape == v.shape
        assert torch.equal(loaded[k].view(-1).view(torch.uint8) if v.numel() else loaded[k],
                           v.view(-1).view(torch.uint8) if v.numel() else v), k
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    assert n % 8 == 0
    header = json.loads(raw[8:8 + n])
    assert header["__metadata__"] == {"format": "pt", "note": "x"}
    for k, v in tensors.items():  # wider dtypes first: every tensor starts aligned to its item size
        assert header[k]["data_offsets"][0] % v.element_size() == 0
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        assert f.metadata() == {"format": "pt", "note": "x"}


def test_writer_refuses_bad_order_or_shape_and_leaves_nothing(tmp_path):
    t = {"x": torch.ones(2), "y": torch.ones(3)}
    specs = [("x", torch.float32, (2,)), ("y", torch.float32, (3,))]
    path = tmp_path / "o.safetensors"
    with pytest.raises(ValueError, match="header order"):
        with SafetensorsWriter(path, specs) as w:
            w.write("y", t["y"])
    with pytest.raises(ValueError, match=r"expected torch.float32 \[2\]"):
        with SafetensorsWriter(path, specs) as w:
            w.write("x", torch.ones(3))
    with pytest.raises(ValueError, match="never written"):
        with SafetensorsWriter(path, specs) as w:
            w.write("x", t["x"])
    assert list(tmp_path.iterdir()) == []


def test_safetensors_reader_is_lazy_and_bit_exact(tmp_path):
    tensors = _tensors()
    path = tmp_path / "s.safetensors"
    save_file(tensors, str(path))
    with open_weights(path) as src:
        assert set(src.keys()) == set(tensors)
        assert src.info("c.bf16").shape == (2, 3, 4) and src.info("c.bf16").dtype == torch.bfloat16
        for k, v in tensors.items():
            got = src.read(k)
            assert got.dtype == v.dtype and got.shape == v.shape
            assert torch.equal(got, v), k


def test_reading_a_file_keeps_resident_memory_near_one_tensor(tmp_path):
    """Reading every tensor of a 96 MB file must not leave the file's pages in the resident set."""
    path = tmp_path / "big.safetensors"
    save_file({f"t{i}": torch.full((4 << 20,), float(i)) for i in range(6)}, str(path))  # 6 x 16 MB

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    if not os.path.exists("/proc/self/statm"):
        pytest.skip("needs /proc")
    before = rss_mb()
    peak = before
    with open_weights(path) as src:
        for k in src.keys():
            t = src.read(k)
            assert float(t[-1]) == float(k[1:])
            del t
            peak = max(peak, rss_mb())
    assert peak - before < 48, f"resident memory grew by {peak - before:.0f} MB reading a 96 MB file"


def test_bin_reader_bit_exact(tmp_path):
    tensors = {k: v for k, v in _tensors().items()}
    path = tmp_path / "pytorch_model.bin"
    torch.save(tensors, path)
    with open_weights(path) as src:
        assert set(src.keys()) == set(tensors)
        for _ in range(2):  # pages handed back to the kernel are read again from the file
            for k, v in tensors.items():
                assert torch.equal(src.read(k), v), k


def test_sharded_reader_and_its_errors(tmp_path):
    tensors = _tensors()
    keys = sorted(tensors)
    save_file({k: tensors[k] for k in keys[:4]}, str(tmp_path / "m-00001-of-00002.safetensors"))
    save_file({k: tensors[k] for k in keys[4:]}, str(tmp_path / "m-00002-of-00002.safetensors"))
    wmap = {k: f"m-0000{1 if i < 4 else 2}-of-00002.safetensors" for i, k in enumerate(keys)}
    index = tmp_path / "m.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": wmap}))
    with open_weights(index) as src:
        assert sorted(src.keys()) == keys and len(src.files) == 3
        for k in keys:
            assert torch.equal(src.read(k), tensors[k])
    wmap[keys[0]] = "m-00002-of-00002.safetensors"
    index.write_text(json.dumps({"weight_map": wmap}))
    with pytest.raises(ModelError, match=f"m-00002-of-00002.safetensors: {keys[0]} is not in this shard"):
        open_weights(index)
    wmap[keys[0]] = "m-00009-of-00002.safetensors"
    index.write_text(json.dumps({"weight_map": wmap}))
    with pytest.raises(ModelError, match="m-00009-of-00002.safetensors: shard listed in m.safetensors.index.json"):
        open_weights(index)


def test_corrupt_safetensors_are_refused_naming_the_file(tmp_path):
    path = tmp_path / "x.safetensors"
    save_file({"w": torch.randn(64, 64)}, str(path))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(ModelError, match=rf"{path}: truncated: the header describes 16384 bytes"):
        open_weights(path)
    path.write_bytes(data[:5])
    with pytest.raises(ModelError, match=rf"{path}: truncated"):
        open_weights(path)
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(ModelError, match=rf"{path}: not a safetensors file"):
        open_weights(path)
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    with pytest.raises(ModelError, match=rf"{path}: truncated, or not a safetensors file"):
        open_weights(path)
    bad = tmp_path / "y.bin"
    bad.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ModelError, match=rf"{bad}: cannot read"):
        open_weights(bad)
    with pytest.raises(ModelError, match="no such file"):
        open_weights(tmp_path / "nope.safetensors")


def test_find_weights_file_prefers_plain_safetensors_then_says_what_it_chose(tmp_path):
    save_file({"w": torch.ones(1)}, str(tmp_path / "diffusion_pytorch_model.fp16.safetensors"))
    path, note = find_weights_file(tmp_path, ["diffusion_pytorch_model"])
    assert path.name == "diffusion_pytorch_model.fp16.safetensors" and "variant" in note
    torch.save({"w": torch.ones(1)}, tmp_path / "diffusion_pytorch_model.bin")
    assert find_weights_file(tmp_path, ["diffusion_pytorch_model"]) == (tmp_path / "diffusion_pytorch_model.bin", None)
    save_file({"w": torch.ones(1)}, str(tmp_path / "diffusion_pytorch_model.safetensors"))
    assert find_weights_file(tmp_path, ["diffusion_pytorch_model"])[0].name == "diffusion_pytorch_model.safetensors"
    with pytest.raises(ModelError, match=rf"{tmp_path / 'sub'}: no weights file"):
        (tmp_path / "sub").mkdir()
        find_weights_file(tmp_path / "sub", ["model"])
