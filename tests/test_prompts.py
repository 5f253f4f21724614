"""tdgen.prompts: captions files (JSON or TSV) and prompt templates, strict and shared by synth and train."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from tdgen.prompts import PromptTemplate, category_text, load_captions, make_prompt, parse_template
from tdgen.tracks.clips import ClipSpec, plan_clips
from tdgen.errors import AnnotationError, UsageError
from tdgen.tracks.io import read_tracks


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.fixture()
def cocovid(tmp_path) -> Path:
    """Two 4-frame videos: vidA with car, traffic_light, car tracks (in that first-seen order), vidB one light."""
    doc = {"categories": [{"id": 1, "name": "traffic_light"}, {"id": 2, "name": "car"}],
           "videos": [{"id": 1, "name": "vidA"}, {"id": 2, "name": "vidB"}], "images": [], "annotations": []}
    image_id = box_id = 0
    for video, tracks in ((1, [(10, 2), (11, 1), (12, 2)]), (2, [(20, 1)])):
        for f in range(4):
            image_id += 1
            doc["images"].append({"id": image_id, "video_id": video, "frame_id": f, "width": 64, "height": 48,
                                  "file_name": f"v{video}/{f:06d}.jpg"})
            for k, (track, cat) in enumerate(tracks):
                box_id += 1
                doc["annotations"].append({"id": box_id, "image_id": image_id, "video_id": video,
                                           "instance_id": track, "category_id": cat, "bbox": [2 + 10 * k, 3, 8, 9],
                                           "area": 72, "iscrowd": 0})
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


@pytest.fixture()
def clips(cocovid):
    return {c.video_name: c for c in plan_clips(read_tracks(cocovid), ClipSpec(frames=4, max_slots=5))}


# --------------------------------------------------------------------------- templates

BAD_TEMPLATES = [
    ("a video of {", "a '{' that is never closed at character 12"),
    ("a video } of", "a lone '}' at character 9"),
    ("{video", "a '{' that is never closed at character 1"),
    ("{{video}", "a lone '}' at character 8"),
    ("a {vid}", "unknown placeholder {vid}"),
    ("a { video }", "unknown placeholder { video }"),
    ("a {video.x}", "{video.x}: attributes are not allowed"),
    ("a {video[0]}", "{video[0]}: indexes are not allowed"),
    ("a {video!r}", "{video!r}: conversions (!r) are not allowed"),
    ("a {categories:>10}", "{categories:>10}: format specs (:>10) are not allowed"),
    ("a {}", "{}: positional placeholders are not allowed"),
    ("a {0}", "{0}: positional placeholders are not allowed"),
    ("a {video!}", "malformed placeholder"),
]


@pytest.mark.parametrize("text,what", BAD_TEMPLATES, ids=[t for t, _ in BAD_TEMPLATES])
def test_bad_template_is_one_line_usage_error(text, what):
    with pytest.raises(UsageError) as exc:
        parse_template(text, source="--prompt template")
    msg = _one_line(exc)
    assert msg.startswith(f"--prompt template {text!r}: {what}")
    assert "use {categories} and {video}" in msg


def test_bad_template_with_newline_stays_on_one_line():
    with pytest.raises(UsageError) as exc:
        parse_template("first\n{nope}")
    assert _one_line(exc).startswith("prompt template 'first\\n{nope}': unknown placeholder {nope}")


def test_template_must_be_text():
    with pytest.raises(UsageError, match="prompt template must be text, got int"):
        parse_template(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["a video of {categories}", "{video}: {categories} and {categories}",
                                  "{{literal}} {video} }}{{", "no placeholders at all", "", "{video:}"])
def test_valid_template_fills_like_str_format(text):
    t = parse_template(text)
    assert isinstance(t, PromptTemplate) and t.text == str(t) == text
    assert t.fill(categories="car, traffic light", video="vid 1") == \
        text.format(categories="car, traffic light", video="vid 1")


def test_template_fields_and_reuse():
    t = parse_template("{{x}} {video} / {categories}")
    assert t.fields == {"video", "categories"}
    assert [t.fill(categories=c, video=v) for c, v in (("a", "1"), ("b", "2"))] == ["{x} 1 / a", "{x} 2 / b"]


def test_category_text():
    assert category_text(["car", "", "traffic light", "car"]) == "car, traffic light"
    assert category_text([]) == category_text(["", ""]) == "objects"


# --------------------------------------------------------------------------- make_prompt


def test_make_prompt_caption_wins_else_template(clips):
    template = parse_template("{video}: {categories}")
    captions = {"vidA": "three things moving"}
    assert make_prompt(clips["vidA"], template, captions) == "three things moving"
    # "_" -> " " and distinct names in first-seen order
    assert make_prompt(clips["vidA"], template, {}) == "vidA: car, traffic light"
    assert make_prompt(clips["vidB"], template, captions) == "vidB: traffic light"
    # a text template works the same and is checked too
    assert make_prompt(clips["vidB"], "a video of {categories}", {}) == "a video of traffic light"
    with pytest.raises(UsageError, match=r"unknown placeholder \{cats\}"):
        make_prompt(clips["vidB"], "{cats}", {})


def test_make_prompt_without_categories_says_objects(clips):
    from dataclasses import replace

    empty = replace(clips["vidB"], category_names=[])
    assert make_prompt(empty, "a video of {categories}", {}) == "a video of objects"


# --------------------------------------------------------------------------- captions: round trips

CAPTIONS = {"vidA": "a red car — überholt", "vid B": "two {braces} and a\ttab", "Ω": "x"}


def test_json_round_trip(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(CAPTIONS, ensure_ascii=False, indent=2), encoding="utf-8")
    assert load_captions(path) == CAPTIONS
    assert load_captions(str(path)) == CAPTIONS
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(CAPTIONS).encode())  # a byte-order mark is fine
    assert load_captions(path) == CAPTIONS
    path.write_text("{}", encoding="utf-8")
    assert load_captions(path) == {}


def test_tsv_round_trip(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("".join(f"{k}\t{v}\n" for k, v in CAPTIONS.items()), encoding="utf-8")
    assert load_captions(path) == CAPTIONS
    # comments, blank lines, CRLF, surrounding whitespace, no final newline; the suffix does not matter
    other = tmp_path / "captions.txt"
    other.write_bytes("# video\tcaption\r\n\r\n  vidA \t a red car — überholt \r\n   \nvid B\ttwo {braces} and a\ttab\r\n"
                      "Ω\tx".encode())
    assert load_captions(other) == CAPTIONS
    comments_only = tmp_path / "none.tsv"
    comments_only.write_text("# nothing yet\n", encoding="utf-8")
    assert load_captions(comments_only) == {}
    assert load_captions(None) == {}


# --------------------------------------------------------------------------- captions: malformed


def _error(path) -> str:
    with pytest.raises(AnnotationError) as exc:
        load_captions(path)
    return _one_line(exc)


def test_latin1_tsv_names_file_line_and_byte_offset(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_bytes("vidA\tok\nvidB\tfine\nvidC\tcaf\xe9\n".encode("latin-1"))
    msg = _error(path)
    assert msg.startswith(f"{path}: line 3: not valid UTF-8 at byte offset 26 (byte 0xe9)")
    assert "UTF-8" in msg.split("hint:")[1]


def test_latin1_json_names_byte_offset(tmp_path):
    path = tmp_path / "c.json"
    path.write_bytes('{"vidA": "na\xefve"}'.encode("latin-1"))
    assert _error(path).startswith(f"{path}: line 1: not valid UTF-8 at byte offset 12 (byte 0xef)")


@pytest.mark.parametrize("value,kind", [(3, "a number"), (None, "null"), (True, "a boolean"), ([1], "an array"),
                                        ({"x": "y"}, "an object")])
def test_json_caption_not_a_string(tmp_path, value, kind):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"vidA": "ok", "vid\n2": value}), encoding="utf-8")
    assert _error(path) == f'{path}: key "vid\\n2": caption must be a string, got {kind}'


@pytest.mark.parametrize("text,kind", [("[1, 2]", "an array"), ('"caption"', "a string"), ("7", "a number"),
                                       ("null", "null")])
def test_json_not_an_object(tmp_path, text, kind):
    path = tmp_path / "c.json"
    path.write_text(text, encoding="utf-8")
    assert _error(path) == f"{path}: expected a JSON object mapping video names to captions, got {kind}"


def test_json_syntax_error_is_located(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"vidA": "a",\n "vidB": }\n', encoding="utf-8")
    assert _error(path) == f"{path}: line 2, column 10: invalid JSON (Expecting value)"


def test_json_duplicate_name(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"vidA": "a", "vidB": "b", "vidA": "c"}', encoding="utf-8")
    assert _error(path) == f'{path}: key "vidA": video named twice'


def test_tsv_line_without_tab(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("# header\nvidA\ta\nvidB  spaces, not a tab\n", encoding="utf-8")
    assert _error(path) == f"{path}: line 3: expected '<video name><TAB><caption>' (no tab)"


def test_json_in_a_tsv_named_file_gets_a_hint(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_text('{"vidA": "a"}', encoding="utf-8")
    msg = _error(path)
    assert msg.startswith(f"{path}: line 1: expected '<video name><TAB><caption>'") and "*.json" in msg


def test_tsv_duplicate_name(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("vidA\ta\nvidB\tb\n vidA \tc\n", encoding="utf-8")
    assert _error(path) == f'{path}: line 3: video "vidA" already has a caption on line 1'


@pytest.mark.parametrize("name", ["c.json", "c.tsv"])
@pytest.mark.parametrize("content", [b"", b" \n\t\n"])
def test_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    assert _error(path).startswith(f"{path}: empty captions file")


def test_empty_caption_or_name(tmp_path):
    path = tmp_path / "c.tsv"
    path.write_text("vidA\ta\nvidB\t  \n", encoding="utf-8")
    assert _error(path).startswith(f'{path}: line 2: empty caption for video "vidB"')
    path.write_text("vidA\ta\n\tb\n", encoding="utf-8")
    assert _error(path) == f"{path}: line 2: empty video name"
    js = tmp_path / "c.json"
    js.write_text('{"vidA": ""}', encoding="utf-8")
    assert _error(js).startswith(f'{js}: key "vidA": empty caption for video "vidA"')
    js.write_text('{" ": "x"}', encoding="utf-8")
    assert _error(js) == f'{js}: key " ": empty video name'


def test_missing_file(tmp_path):
    path = tmp_path / "nope.json"
    assert _error(path) == f"{path}: no such captions file"


def test_directory_and_device_refused(tmp_path):
    assert _error(tmp_path) == f"{tmp_path}: is a directory, not a regular file"
    if os.path.exists("/dev/null"):
        assert _error("/dev/null") == "/dev/null: is a character device, not a regular file"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_refused_without_hanging(tmp_path):
    fifo = tmp_path / "captions.tsv"
    os.mkfifo(fifo)
    result: list[BaseException | object] = []

    def attempt() -> None:
        try:
            result.append(load_captions(fifo))
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            result.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), "load_captions blocked on a FIFO"
    assert isinstance(result[0], AnnotationError)
    assert str(result[0]) == f"{fifo}: is a FIFO, not a regular file"


# --------------------------------------------------------------------------- synth and train agree


def test_synth_and_train_build_the_same_prompts(cocovid, tmp_path):
    pytest.importorskip("torch")
    from tdgen.synth.runner import SynthOptions, plan_synth
    from tdgen.train.data import ClipDataset

    captions = tmp_path / "c.tsv"
    captions.write_text("vidB\ta traffic light at dusk\n", encoding="utf-8")
    template = "{video} with {categories}"
    plan = plan_synth(SynthOptions(ann=cocovid, out=tmp_path / "synth", frames=4, slots=5,
                                   prompt_template=template, captions=captions))
    ds = ClipDataset(cocovid, captions=captions, frames=4, slots=5, prompt_template=template)
    train = {c.clip_id: p for c, p in zip(ds.clips, ds.prompts)}
    assert plan.prompts == train == {"vidA_000000": "vidA with car, traffic light",
                                     "vidB_000000": "a traffic light at dusk"}
    assert not (tmp_path / "synth").exists()


def test_bad_template_fails_before_any_output(cocovid, tmp_path):
    pytest.importorskip("torch")
    from tdgen.synth.runner import SynthOptions, run_synth
    from tdgen.train.data import ClipDataset

    called = []
    with pytest.raises(UsageError, match=r"unknown placeholder \{cats\}"):
        run_synth(SynthOptions(ann=cocovid, out=tmp_path / "synth", frames=4, prompt_template="{cats}"),
                  lambda: called.append(1))  # type: ignore[arg-type,return-value]
    assert not called and not (tmp_path / "synth").exists()
    # the dataset checks the template (and captions) before reading the annotations
    with pytest.raises(UsageError, match=r"\{video\.name\}: attributes are not allowed"):
        ClipDataset(tmp_path / "missing.json", prompt_template="{video.name}")
    bad = tmp_path / "c.json"
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(AnnotationError, match="expected a JSON object"):
        ClipDataset(tmp_path / "missing.json", captions=bad)
