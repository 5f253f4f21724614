"""The trainability benchmark end to end in --tiny mode, with the stand-in generator."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")
pytest.importorskip("trackeval")

from tdgen.trainability.run import METRICS, main  # noqa: E402


@pytest.mark.slow  # about 13 s on this CPU: two tiny runs with every stage
def test_tiny_run_writes_every_arm_with_frame_counts_and_metrics(tmp_path, fake_model, capsys):
    work = tmp_path / "work"
    assert main(["--work", str(work), "--tiny", "--model", "fake"]) == 0
    result = json.loads((work / "result.json").read_text())
    names = [a["name"] for a in result["arms"]]
    assert names == ["real 10%", "real 50%", "real 10% + generated", "real 10% + gated", "generated only"]
    by = {a["name"]: a for a in result["arms"]}
    real_frames = result["sets"]["real"]["frames"]
    gen_frames = result["sets"]["generated"]["frames"]
    assert real_frames == 4 * 8 and gen_frames == 4 * 8  # one 8-frame clip per real video
    # tiny: 4 videos, so 10% rounds up to one video and 50% is two
    assert (by["real 10%"]["real_frames"], by["real 10%"]["generated_frames"]) == (8, 0)
    assert (by["real 50%"]["real_frames"], by["real 50%"]["generated_frames"]) == (16, 0)
    assert (by["real 10% + generated"]["real_frames"], by["real 10% + generated"]["generated_frames"]) == (8, 32)
    assert by["real 10% + gated"]["generated_frames"] == result["sets"]["gated"]["frames"]
    assert result["sets"]["gated"]["kept"] * 8 == result["sets"]["gated"]["frames"]
    assert (by["generated only"]["real_frames"], by["generated only"]["generated_frames"]) == (0, 32)
    for arm in result["arms"]:
        assert set(arm["summary"]) == {k for k, _ in METRICS}
        assert len(arm["runs"]) == 1 and arm["runs"][0]["train"]["steps"] == 4
        assert arm["runs"][0]["train"]["batch_size"] == 4
        for key in ("det_recall", "det_precision", "hota", "mota", "idf1"):
            assert key in arm["runs"][0]
        assert arm["summary"]["hota"]["n"] == 1
    assert result["seconds"] > 0 and "| real 10% |" in result["table"]
    assert "generated only" in capsys.readouterr().out

    # a rerun reuses the sets, the generated clips and every finished run
    assert main(["--work", str(work), "--tiny", "--model", "fake"]) == 0
    again = json.loads((work / "result.json").read_text())
    assert again["sets"]["generated"]["generated_now"] == 0 and again["sets"]["generated"]["skipped"] == 4
    assert [a["runs"] for a in again["arms"]] == [a["runs"] for a in result["arms"]]


@pytest.mark.parametrize("args,message", [
    (["--fractions", "0.1,1.5"], "fractions must be in (0, 1]"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--seeds", "1,1"], "repeated seed"),
])
def test_bad_flags_are_one_line_errors_and_create_nothing(tmp_path, capsys, args, message):
    work = tmp_path / "work"
    assert main(["--work", str(work), "--tiny", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not work.exists()
