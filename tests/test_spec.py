from __future__ import annotations

import hashlib
import json
import math
import os
import unicodedata
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import jobs, ops
from latentlab.errors import ArgumentError, SpecError
from latentlab.space import tag
from latentlab.spec import NEUTRAL_CAPTION, Spec, load_spec

from conftest import tiny_mini_decoder, write_fault


class HashEncoder:
    """Deterministic stand-in encoder: each text/image maps to a fixed random unit vector."""

    space = "hash-space"
    dim = 16

    def __init__(self):
        self.texts: list[str] = []

    def _vec(self, key: str) -> torch.Tensor:
        seed = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
        g = torch.Generator().manual_seed(seed)
        return torch.nn.functional.normalize(torch.randn(1, self.dim, generator=g), dim=-1)

    def encode_text(self, texts):
        self.texts.extend(texts)
        return tag(torch.cat([self._vec("t:" + t) for t in texts]), self.space)

    def encode_image(self, images):
        from pathlib import Path

        return tag(torch.cat([self._vec("i:" + Path(p).name) for p in images]), self.space)


class DoublingPrior:
    def __call__(self, z, *, seed=0):
        return tag(torch.nn.functional.normalize(z + 0.1 * seed, dim=-1), "hash-space")


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_toml_spec_with_relative_paths_and_defaults(tmp_path, images):
    (tmp_path / "sub").mkdir()
    img = images[0]
    spec_file = write(
        tmp_path / "sub",
        "s.toml",
        f"""
preset = "tiny"
seed = 3
[[keyframes]]
image = "../{img.name}"
[[keyframes]]
text_diff = {{ to = "a blue square", theta = 0.3 }}
frames = 10
easing = "ease-in-out"
""",
    )
    s = load_spec(spec_file)
    assert s.seed == 3 and s.frames == 48 and s.noise == "shared" and s.format == "mp4"
    assert s.resolve_path(s.keyframes[0]["image"]).resolve() == img.resolve()
    enc = HashEncoder()
    path = s.resolve(enc)
    assert len(path) == 11
    assert path.segments[0].easing == "ease-in-out"
    # the text diff uses the neutral caption when "from" is absent, exactly as the op does
    assert enc.texts == [NEUTRAL_CAPTION, "a blue square"]
    src, dst = enc.encode_text([NEUTRAL_CAPTION, "a blue square"]).split(1)
    expected_end = ops.text_diff(enc.encode_image([img]), src, dst, 0.3)
    assert torch.allclose(path.keyframes[1:2], expected_end, atol=1e-6)
    assert path.labels[1] == "a photo -> a blue square"


def test_mix_sum_and_text_keyframes(images):
    s = load_spec(
        {
            "base_dir": str(images[0].parent),
            "keyframes": [
                {"mix": [{"image": images[0].name, "weight": 1}, {"text": "x", "weight": 3}]},
                {"sum": [{"image": images[1].name}, {"text": "a", "weight": -1}, {"text": "b"}]},
                {"text": "a cat", "seed": 2},
            ],
        }
    )
    enc = HashEncoder()
    path = s.resolve(enc, prior=DoublingPrior())
    i0, i1 = enc.encode_image([images[0]]), enc.encode_image([images[1]])
    tx, ta, tb, cat = enc.encode_text(["x", "a", "b", "a cat"]).split(1)
    mix = ops.spherical_mean(torch.cat([i0, tx]), torch.tensor([1.0, 3.0]))
    assert torch.allclose(path.keyframes[0], mix.reshape(-1), atol=1e-5)
    arith = ops.arithmetic([(1.0, i1), (-1.0, ta), (1.0, tb)])
    assert torch.allclose(path.keyframes[1:2], arith, atol=1e-5)
    assert torch.allclose(path.keyframes[2:3], DoublingPrior()(cat, seed=2), atol=1e-6)


def test_text_keyframe_without_prior_is_refused(images):
    s = load_spec({"keyframes": [{"image": str(images[0])}, {"text": "a cat"}]})
    with pytest.raises(SpecError, match="needs a prior"):
        s.resolve(HashEncoder(), prior=None)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"keyframes": [{"text": "a"}]}, "at least two"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "fsp": 3}, "unknown spec field.*'fps'"),
        ({}, "needs 'keyframes'"),
        ({"keyframes": [{"text_diff": {"to": "x"}}, {"text": "b"}]}, "cannot come first"),
        ({"keyframes": [{"image": "/no/such/file.png"}, {"text": "b"}]}, "no such file"),
        ({"keyframes": [{"text": "a"}, {"text_diff": {"to": "x", "theta": 3}}]}, "theta"),
        ({"keyframes": [{"text": "a"}, {"text_diff": {"too": "x"}}]}, "'to' caption"),
        ({"keyframes": [{"text": "a", "image": "b"}, {"text": "b"}]}, "exactly one"),
        ({"keyframes": [{"text": "a"}, {"text": "b", "colour": 1}]}, "unknown field"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "format": "avi"}, "'format'"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "fps": 0}, "'fps'"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "seed": "x"}, "'seed'"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "noise": "fresh"}, "'noise'"),
        ({"keyframes": [{"text": "a"}, {"text": "b", "frames": 0}]}, "frames"),
        ({"keyframes": [{"text": "a"}, {"mix": [{"text": "b", "weight": -1}]}]}, "mix"),
        ({"keyframes": "a"}, "list of tables"),
        # found by an audit: each of these had passed, then failed late or as a bare TypeError
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "easing": ["linear"]}, "'easing' must be one of"),
        ({"keyframes": [{"text": "a"}, {"text": "b", "easing": {"a": 1}}]}, r"keyframes\[1\].easing must be one of"),
        ({"keyframes": [{"text": "a"}, {"text": "b", "method": ["slerp"]}]}, r"keyframes\[1\].method must be one of"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "guidance_scale": float("inf")}, "'guidance_scale' must be a finite number"),
        ({"keyframes": [{"text": "a"}, {"sum": [{"text": "b", "weight": float("nan")}]}]}, r"sum\[0\].weight must be a finite number"),
        ({"keyframes": [{"text": "a"}, {"mix": [{"text": "b", "weight": float("inf")}]}]}, r"mix\[0\].weight must be a finite number"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "seed": 2**64}, r"'seed' must be an integer in \[-2\*\*63"),
        ({"keyframes": [{"text": "a"}, {"text": "b", "seed": 2**63 - 1}]}, r"keyframes\[1\].seed must be an integer in"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "frames": 100_000_000}, r"'frames' must be an integer in \[1, 100000\]"),
        ({"keyframes": [{"text": "a"}, {"text": "b", "frames": 100_001}]}, r"keyframes\[1\].frames must be an integer in"),
        ({"keyframes": [{"text": "a", "label": None}, {"text": "b"}]}, r"keyframes\[0\].label must be a string"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "fps": 1e-7}, r"'fps' must be a number in \[0.01, 240\]"),
        # a gif's own limits are the spec's too (they were refused only by render_spec, as ArgumentError)
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "format": "gif", "fps": 60}, "too fast for gif"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "output": "x.gif", "fps": 60}, "too fast for gif"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "format": "gif", "fps": 0.1, "hold_first": 100},
         "a gif shows one picture for at most"),
        # found by an audit (2026-12-06): these had loaded, then failed after the models loaded or as a TypeError
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "pacing": "even", "pacing_tol": float("inf")}, "'pacing_tol' must be a finite number"),
        ({"keyframes": [{"text": "a"}, {"sum": [{"text": "b", "weight": 0}, {"text": "c", "weight": 0.0}]}]}, r"keyframes\[1\].sum has weights that are all 0"),
        ({"keyframes": [{"text": "a"}, {"text": "b", "hold": 10**12}]}, r"keyframes\[1\].hold must be an integer in \[0, 100000\]"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "base_dir": 5}, "'base_dir' must be a folder path"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "base_dir": ["x"]}, "'base_dir' must be a folder path"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "out_dir": ""}, "'out_dir' must be a non-empty path string"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "out_dir": 3}, "'out_dir' must be a non-empty path string"),
        # found by session 34's audits: an empty output meant the default video; a NUL character reached open()
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "output": ""}, "'output' must be a non-empty path string"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "output": "  "}, "'output' must be a non-empty path string"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "output": "a\x00.gif"}, "'output' is .*NUL character"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "out_dir": "r\x00"}, "'out_dir' is .*NUL character"),
        ({"keyframes": [{"text": "a"}, {"image": "b\x00.png"}]}, r"keyframes\[1\].image is .*NUL character"),
        ({"keyframes": [{"text": "a"}, {"mix": [{"image": "b\x00.png"}]}]}, r"mix\[0\].image is .*NUL character"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "base_dir": "x\x00"}, "'base_dir' is .*NUL character"),
        # found by an audit of specs from elsewhere (2026-12-06): a pacing_coarse of 10**9 filled the memory (12 GB)
        # before any decode; steps of 10**9 were refused only after the models had loaded
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "pacing": "even", "pacing_coarse": 10**9},
         r"'pacing_coarse' must be an integer in \[1, 100000\]"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "steps": 10**9}, r"'steps' must be an integer in \[1, 1000\]"),
        ({"keyframes": [{"text": "a"}, {"text": "b"}], "steps": 1001}, r"'steps' must be an integer in \[1, 1000\]"),
    ],
)
def test_malformed_specs_name_the_field(bad, match):
    with pytest.raises(SpecError, match=match):
        load_spec(bad)


def test_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="not valid TOML"):
        load_spec(write(tmp_path, "a.toml", "preset = [unclosed"))
    with pytest.raises(SpecError, match="not valid JSON"):
        load_spec(write(tmp_path, "a.json", "{preset: }"))
    with pytest.raises(SpecError, match=r"\.json or \.toml"):
        load_spec(write(tmp_path, "a.yaml", "preset: mini"))
    with pytest.raises(SpecError, match="does not exist"):
        load_spec(tmp_path / "missing.toml")
    # JSON keeps the last of a key given twice; a spec refuses it, as TOML does
    with pytest.raises(SpecError, match="'fps' is given twice"):
        load_spec(write(tmp_path, "twice.json", '{"keyframes": [{"text": "a"}, {"text": "b"}], "fps": 8, "fps": 30}'))
    # an image given where a spec belongs: the suffix is named before the bytes are read
    (tmp_path / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(SpecError, match=r"must end in \.json or \.toml, not '\.png'"):
        load_spec(tmp_path / "picture.png")
    (tmp_path / "latin1.toml").write_bytes('preset = "mini" # caf\xe9'.encode("latin-1"))
    with pytest.raises(SpecError, match="is not UTF-8 text"):
        load_spec(tmp_path / "latin1.toml")


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_spec_save_load_round_trip(tmp_path, suffix, images):
    s = load_spec(
        {
            "preset": "tiny",
            "fps": 12.5,
            "pingpong": True,
            "keyframes": [
                {"image": str(images[0]), "label": "start"},
                {"text_diff": {"from": "a \"quoted\" thing", "to": "b", "theta": 0.25}, "easing": "ease-in"},
                {"mix": [{"text": "c", "weight": 0.5}, {"image": str(images[1])}]},
            ],
        }
    )
    back = load_spec(s.save(tmp_path / f"spec{suffix}"))
    assert back.to_dict() == s.to_dict()


def test_a_spec_save_stopped_by_ctrl_c_leaves_the_old_file_and_no_temporary_one(tmp_path, images, monkeypatch):
    """Spec.save writes a temporary file and renames it; a Ctrl-C while it wrote left the
    temporary file beside the spec (only an OSError removed it)."""
    s = load_spec({"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]})
    path = s.save(tmp_path / "spec.json")
    before = path.read_bytes()
    real = Path.write_bytes

    def stopped(self, data):
        real(self, data[:5])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", stopped)
    with pytest.raises(KeyboardInterrupt):
        load_spec({**s.to_dict(), "fps": 12}).save(path)
    monkeypatch.undo()
    assert [q.name for q in tmp_path.iterdir() if "spec" in q.name] == ["spec.json"] and path.read_bytes() == before


def test_saved_spec_keeps_emoji_and_finds_its_images_from_another_folder(tmp_path, images, monkeypatch):
    import shutil

    src = tmp_path / "project"
    (src / "pics").mkdir(parents=True)
    for p in images:
        shutil.copy(p, src / "pics" / p.name)
    spec_file = write(src, "morph.toml", f"""
name = "phone \U0001f4f1"
output = "out/video.mp4"
out_dir = "out/frames"
[[keyframes]]
image = "pics/{images[0].name}"
label = "\U0001f4f1 phone"
[[keyframes]]
mix = [{{ image = "pics/{images[1].name}" }}, {{ text = "a \u260e telephone\\u007f" }}]
""")
    s = load_spec(spec_file)
    for suffix in (".toml", ".json"):
        back = load_spec(s.save(tmp_path / "elsewhere" / "deeper" / f"copy{suffix}"))
        assert back.name == "phone \U0001f4f1" and back.keyframes[0]["label"] == "\U0001f4f1 phone"
        assert back.keyframes[1]["mix"][1]["text"] == "a \u260e telephone\u007f"
        assert back.resolve_path(back.keyframes[0]["image"]).resolve() == (src / "pics" / images[0].name)
        assert back.resolve_path(back.keyframes[1]["mix"][0]["image"]).resolve() == (src / "pics" / images[1].name)
        assert back.resolve_path(back.output).resolve() == src / "out" / "video.mp4"
        assert back.resolve_path(back.out_dir).resolve() == src / "out" / "frames"
    same = load_spec(s.save(src / "again.toml"))  # the same folder: paths stay as written
    assert same.to_dict() == s.to_dict()
    # a dict spec's relative paths are relative to the working directory
    monkeypatch.chdir(src)
    d = load_spec({"keyframes": [{"image": f"pics/{images[0].name}"}, {"text": "b"}]})
    moved = load_spec(d.save(tmp_path / "x" / "d.json"))
    assert moved.resolve_path(moved.keyframes[0]["image"]).resolve() == src / "pics" / images[0].name


def test_load_spec_copies_its_input(images):
    d = {"keyframes": [{"image": str(images[0])}, {"text_diff": {"to": "x", "theta": 0.4}}]}
    specs = []
    for colour in ("green", "purple"):
        d["keyframes"][1]["text_diff"]["to"] = f"a {colour} circle"
        specs.append(load_spec(d, name=f"to-{colour}"))
    assert [s.keyframes[1]["text_diff"]["to"] for s in specs] == ["a green circle", "a purple circle"]
    s2 = load_spec(specs[0], seed=3)
    s2.keyframes[1]["frames"] = 10
    specs[0].to_dict()["keyframes"][1]["easing"] = "ease-in"
    assert specs[0].keyframes[1] == {"text_diff": {"to": "a green circle", "theta": 0.4}}


def test_validation_catches_what_would_fail_later(images):
    img = str(images[0])
    with pytest.raises(SpecError, match="'name' must be a non-empty string"):
        load_spec({"name": 3, "keyframes": [{"image": img}, {"text": "b"}]})
    with pytest.raises(SpecError, match=r"keyframes\[0\] has segment setting\(s\) \['frames'\]"):
        load_spec({"keyframes": [{"image": img, "frames": 5}, {"text": "b"}]})
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.mix has weights that are all 0"):
        load_spec({"keyframes": [{"image": img}, {"mix": [{"text": "a", "weight": 0}, {"image": img, "weight": 0}]}]})
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.hold"):
        load_spec({"keyframes": [{"image": img}, {"text": "b", "hold": True}]})


def test_overrides_replace_fields(images):
    s = load_spec({"keyframes": [{"image": str(images[0])}, {"text": "b"}]}, seed=9, fps=None)
    assert s.seed == 9 and s.fps == 24
    assert isinstance(s, Spec)


def test_shipped_examples_are_valid_specs():
    from pathlib import Path

    from latentlab.spec import load_spec

    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))
    assert len(examples) >= 2
    for path in examples:
        spec = load_spec(path)
        for kf in spec.keyframes:
            items = kf.get("mix") or kf.get("sum") or [kf]
            for it in items:
                if "image" in it:
                    assert spec.resolve_path(it["image"]).is_file(), (path.name, it["image"])


def test_a_string_that_is_not_text_is_refused_when_saved_as_toml(tmp_path):
    from latentlab.errors import ArgumentError

    with pytest.raises(SpecError, match=r"keyframes\[0\]\.text is .* is not a character"):  # (refused by its field since 2026-12-06)
        load_spec({"keyframes": [{"text": "a \ud83d cat"}, {"text": "b"}]})  # a lone surrogate, e.g. from a JSON escape
    s = load_spec({"keyframes": [{"text": "a cat"}, {"text": "b"}]})
    s.keyframes[0]["text"] = "a \ud83d cat"  # (set after loading: save still refuses it for TOML)
    with pytest.raises(ArgumentError, match="half of a surrogate pair"):
        s.save(tmp_path / "s.toml")
    assert not list(tmp_path.iterdir())  # no temp file left
    assert s.save(tmp_path / "s.json").is_file()  # JSON escapes it


def test_a_relative_base_dir_in_a_file_starts_at_the_files_folder(tmp_path, images, monkeypatch):
    # it started at the current folder, while the missing-file message said "the spec file's folder"
    (tmp_path / "specs").mkdir()
    spec = tmp_path / "specs" / "s.toml"
    spec.write_text(f'base_dir = ".."\n[[keyframes]]\nimage = "{images[0].name}"\n[[keyframes]]\nimage = "{images[1].name}"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = load_spec(spec)
    assert s.resolve_path(images[0].name).resolve() == images[0].resolve()
    spec.write_text(spec.read_text().replace(images[0].name, "nothere.png"))
    with pytest.raises(SpecError, match=r"no such file .*nothere.png'. Check the path \(relative paths start at '.*specs/\.\.'"):
        load_spec(spec)
    # an absolute path that is missing gets no hint about relative paths
    with pytest.raises(SpecError, match=r"no such file '/no/such.png'. Check the path.$"):
        load_spec({"keyframes": [{"image": "/no/such.png"}, {"text": "a cat"}]})


def test_base_dir_reads_a_tilde_as_the_home_folder(tmp_path, images, monkeypatch):
    monkeypatch.setenv("HOME", str(images[0].parent))
    s = load_spec({"base_dir": "~", "keyframes": [{"image": images[0].name}, {"image": images[1].name}]})
    assert s.resolve_path(images[0].name).resolve() == images[0].resolve()  # was '~/red_disc.png', not found


def test_base_dir_null_in_a_file_is_unset_and_other_types_are_refused(tmp_path, images):
    # null had made relative paths start at the current folder instead of the file's; 5 was a TypeError
    import shutil

    (tmp_path / "specs").mkdir()
    shutil.copy(images[0], tmp_path / "specs" / images[0].name)
    spec = tmp_path / "specs" / "s.json"
    spec.write_text(f'{{"base_dir": null, "keyframes": [{{"image": "{images[0].name}"}}, {{"text": "b"}}]}}')
    assert load_spec(spec).resolve_path(images[0].name) == tmp_path / "specs" / images[0].name
    spec.write_text('{"base_dir": true, "keyframes": [{"text": "a"}, {"text": "b"}]}')
    with pytest.raises(SpecError, match="'base_dir' must be a folder path"):
        load_spec(spec)
    with pytest.raises(SpecError, match="'base_dir' must be a folder path"):
        Spec(keyframes=[{"text": "a"}, {"text": "b"}], base_dir=5)  # built directly, validated too


def test_saving_a_spec_as_json_with_a_numpy_number_is_a_spec_error(tmp_path):
    np = pytest.importorskip("numpy")
    s = load_spec({"keyframes": [{"text": "a"}, {"text": "b"}]})
    s.fps = np.int64(8)  # set after loading, as a script might
    for suffix in (".json", ".toml"):
        with pytest.raises(SpecError, match="cannot write"):
            s.save(tmp_path / "out" / f"s{suffix}")
    assert not list((tmp_path / "out").glob("*"))


def test_a_spec_takes_numpy_numbers_and_paths_as_the_rest_of_the_api_does(tmp_path, images):
    np = pytest.importorskip("numpy")
    from pathlib import Path

    kf = {"image": Path(images[0])}
    s = load_spec({"keyframes": [kf, {"text": "b"}]}, seed=np.int64(3), frames=np.int64(12), steps=np.int32(10),
                  fps=np.float32(12.0), pingpong=np.bool_(True), out_dir=tmp_path / "r", output=tmp_path / "r.mp4")  # fmt: skip
    assert (s.seed, s.frames, s.steps, s.fps, s.pingpong) == (3, 12, 10, 12.0, True)  # each was refused
    assert type(s.seed) is int and type(s.fps) is float and type(s.pingpong) is bool
    assert s.out_dir == str(tmp_path / "r") and s.output == str(tmp_path / "r.mp4")
    assert s.keyframes[0]["image"] == str(images[0]) and isinstance(kf["image"], Path)  # the caller's table unchanged
    for suffix in (".json", ".toml"):  # plain values, so the spec saves and loads back
        assert load_spec(s.save(tmp_path / f"s{suffix}")).to_dict() == s.to_dict()
    # inside mix / sum items and text_diff tables too
    mixed = {"mix": [{"image": Path(images[0]), "weight": np.float32(0.5)}, {"text": "a cat", "weight": np.float64(0.5)}]}
    diff = {"text_diff": {"from": "a cat", "to": "a dog", "theta": np.float32(0.5)}}
    s2 = load_spec({"keyframes": [mixed, diff]})
    assert s2.keyframes[0]["mix"][0] == {"image": str(images[0]), "weight": 0.5} and type(s2.keyframes[1]["text_diff"]["theta"]) is float
    assert isinstance(mixed["mix"][0]["image"], Path)  # the caller's tables unchanged
    # a Path as the output of a saved gif spec: its format follows the new name, as for a string
    gif = load_spec({"keyframes": [{"text": "a"}, {"text": "b"}], "output": "a.gif"}).to_dict()
    assert load_spec(gif, output=tmp_path / "b.webp").format == "webp" == load_spec(gif, output=str(tmp_path / "b.webp")).format


def test_a_spec_written_under_a_folder_it_cannot_search_is_an_argument_error(tmp_path, monkeypatch):
    # is_dir / exists raise PermissionError there (root cannot be refused: mocked); it escaped as a traceback
    from pathlib import Path

    from latentlab.errors import ArgumentError

    real = Path.is_dir

    def refused(self):
        if "locked" in str(self):
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_dir", refused)
    s = load_spec({"keyframes": [{"text": "a"}, {"text": "b"}]})
    with pytest.raises(ArgumentError, match="cannot write .*Permission denied"):
        s.save(tmp_path / "locked" / "sub" / "s.json")


# -- an audit of the spec files and CLI verbs (2026-12-07) ------------------------------------


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_a_spec_file_with_a_byte_order_mark_loads(tmp_path, images, suffix):
    # PowerShell 5's Out-File and older Notepad start UTF-8 with a BOM: it was refused as invalid TOML / JSON
    text = (f'preset = "tiny"\n[[keyframes]]\nimage = "{images[0].name}"\n[[keyframes]]\ntext = "x"\n' if suffix == ".toml"
            else f'{{"preset": "tiny", "keyframes": [{{"image": "{images[0].name}"}}, {{"text": "x"}}]}}')  # fmt: skip
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    s = load_spec(path)
    assert s.preset == "tiny" and s.keyframes[1] == {"text": "x"}


def test_a_keyframe_file_that_is_not_a_picture_is_refused_while_the_spec_is_checked(tmp_path, images):
    # it was found only once every model had loaded, and named images[0]
    (tmp_path / "notes.png").write_text("hello\n")
    truncated = tmp_path / "half.png"
    truncated.write_bytes(images[0].read_bytes()[:100])
    with pytest.raises(SpecError, match=r"keyframes\[0\]\.image: .*notes\.png' cannot be read as a picture"):
        load_spec({"keyframes": [{"image": str(tmp_path / "notes.png")}, {"text": "x"}]})
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.image: .*half\.png' cannot be read as a picture"):
        load_spec({"keyframes": [{"image": str(images[0])}, {"image": str(truncated)}]})
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.mix\[1\]\.image: .*notes\.png' cannot be read"):
        load_spec({"keyframes": [{"text": "a"}, {"mix": [{"image": str(images[0])}, {"image": str(tmp_path / "notes.png")}]}]})
    assert load_spec({"keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]})  # pictures pass


def test_a_spec_path_with_a_tilde_reads_the_home_folder(tmp_path, images, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    (home / "s.toml").write_text(f'[[keyframes]]\nimage = "{images[0]}"\n[[keyframes]]\ntext = "x"\n')
    s = load_spec("~/s.toml")
    assert s.base_dir == str(home)
    assert s.save("~/saved.json") == home / "saved.json" and (home / "saved.json").is_file()
    assert not (tmp_path / "~").exists()


def test_unknown_fields_suggest_only_close_matches():
    base = {"keyframes": [{"text": "a"}, {"text": "b"}]}
    with pytest.raises(SpecError) as exc:
        load_spec({**base, "version": 2})
    assert "'version'" in str(exc.value) and "did you mean" not in str(exc.value)  # it said "did you mean 'easing'?"
    for typo, field in (("gudiance_scale", "guidance_scale"), ("guidance", "guidance_scale"), ("fsp", "fps"), ("frame", "frames")):
        with pytest.raises(SpecError, match=f"'{typo}' \\(did you mean '{field}'\\?\\)"):
            load_spec({**base, typo: 1})


def test_a_file_name_that_is_not_utf8_is_named_as_its_field_when_saved_as_toml(tmp_path, images):
    import os

    from latentlab.errors import ArgumentError

    name = os.fsdecode(b"caf\xe9.png")  # 'caf\udce9.png': a Latin-1 file name on a UTF-8 system
    (tmp_path / name).write_bytes(images[0].read_bytes())
    s = load_spec({"keyframes": [{"image": str(images[1])}, {"image": str(tmp_path / name)}]})
    with pytest.raises(ArgumentError, match=r"keyframes\[1\]\.image is .*a file name that is not UTF-8 text.*Save the spec as \.json"):
        s.save(tmp_path / "s.toml")
    assert not (tmp_path / "s.toml").exists()
    back = load_spec(s.save(tmp_path / "s.json"))  # JSON keeps it (as an escape): the same file
    assert back.resolve_path(back.keyframes[1]["image"]) == tmp_path / name


def test_render_spec_replaces_no_video_file_it_did_not_write(tmp_path, images, monkeypatch):
    # (the CLI's -o and default video went over a user's file without a word)
    from latentlab import presets
    from latentlab.errors import ArgumentError
    from latentlab.jobs import render_spec

    monkeypatch.setattr(presets, "create_encoder", lambda *a, **k: pytest.fail("a model was loaded"))
    (tmp_path / "mine.gif").write_text("my video")
    called = []
    spec = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "frames": 1}
    with pytest.raises(ArgumentError, match=r"'.*mine\.gif' already exists and was not written by the render in .*overwrite=True"):
        render_spec(spec, out_dir=tmp_path / "r", output=tmp_path / "mine.gif", progress=False, ready=lambda: called.append(1))
    with pytest.raises(ArgumentError, match=r"'.*mine\.gif' already exists"):
        render_spec({**spec, "format": "gif"}, out_dir=tmp_path / "mine", progress=False)  # the default video, <out_dir>.<format>
    assert (tmp_path / "mine.gif").read_text() == "my video" and not called


def test_the_picture_check_reads_what_the_encoders_read(tmp_path):
    # a checksum-only check (PIL verify) passed a truncated JPEG, which failed once the models had
    # loaded, and refused a PNG whose text chunk has a bad checksum, which the encoders read
    import struct
    import zlib

    import numpy as np
    from PIL import Image

    pic = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    pic.save(tmp_path / "full.jpg", quality=95)
    data = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    pic.save(tmp_path / "plain.png")
    raw = (tmp_path / "plain.png").read_bytes()
    iend = raw.index(b"IEND") - 4  # a text chunk after the pixels, its checksum wrong (some tools write one)
    chunk = b"tEXt" + b"Comment\0made by a tool"
    bad = struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk) ^ 1)
    (tmp_path / "badcrc.png").write_bytes(raw[:iend] + bad + raw[iend:])
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.image: .*cut\.jpg' cannot be read as a picture"):
        load_spec({"keyframes": [{"image": str(tmp_path / "full.jpg")}, {"image": str(tmp_path / "cut.jpg")}]})
    assert load_spec({"keyframes": [{"image": str(tmp_path / "badcrc.png")}, {"text": "x"}]})
    from latentlab.video import load_image

    assert load_image(tmp_path / "badcrc.png").shape == (64, 64, 3)


# -- an audit of specs moved between systems (Windows paths, non-UTF-8 locales) -----------------


@pytest.mark.skipif(__import__("os").sep != "/", reason="a backslash separates folders on Windows")
def test_a_spec_saved_on_windows_with_backslash_paths_is_refused_with_the_fix(tmp_path, images):
    # out_dir / output were taken literally (a folder named '..\renders\take1' was made beside the
    # spec), and an image path said only "no such file '.../imgs\\a.png'"
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(images[0].read_bytes())
    kfs = f'[[keyframes]]\nimage = "{images[0]}"\n[[keyframes]]\nimage = "{images[1]}"\n'
    for key, value, fixed in (("out_dir", "..\\\\renders\\\\take1", "../renders/take1"),
                              ("output", "..\\\\renders\\\\take1.mp4", "../renders/take1.mp4"),
                              ("base_dir", "..\\\\imgs", "../imgs")):  # fmt: skip
        spec = tmp_path / f"{key}.toml"
        spec.write_text(f'{key} = "{value}"\n{kfs}')
        with pytest.raises(SpecError, match=rf"'{key}' is .*write paths in a spec with '/' \(a spec saved on Windows\): e\.g\. '{fixed}'"):
            load_spec(spec)
    spec = tmp_path / "img.toml"
    spec.write_text('[[keyframes]]\nimage = "imgs\\\\a.png"\n[[keyframes]]\ntext = "x"\n')
    with pytest.raises(SpecError, match=r"keyframes\[0\]\.image is 'imgs\\\\a\.png': .*e\.g\. 'imgs/a\.png'"):
        load_spec(spec)
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.mix\[0\]\.image is .*e\.g\. 'imgs/a\.png'"):
        load_spec({"base_dir": str(tmp_path), "keyframes": [{"text": "a"}, {"mix": [{"image": "imgs\\a.png"}]}]})
    with pytest.raises(SpecError, match=r"'out_dir' is 'C:\\\\renders', a Windows path"):
        load_spec({"out_dir": "C:\\renders", "keyframes": [{"text": "a"}, {"text": "b"}]})
    assert not any("\\" in p.name for p in tmp_path.iterdir())  # nothing made of them
    # a file here whose name holds a backslash is still read, and absolute paths are this system's own
    (tmp_path / "odd\\name.png").write_bytes(images[0].read_bytes())
    s = load_spec({"base_dir": str(tmp_path), "out_dir": str(tmp_path / "r\\1"), "keyframes": [{"image": "odd\\name.png"}, {"text": "b"}]})
    assert s.resolve_path(s.keyframes[0]["image"]) == tmp_path / "odd\\name.png"


def test_a_saved_spec_writes_relative_paths_with_slashes():
    # on Windows Spec.save wrote a relative path as given ('renders\\take1'), which no other system reads
    from latentlab.spec import _posix_path

    assert _posix_path("..\\renders\\take1", windows=True) == "../renders/take1"
    assert _posix_path("~\\renders\\a.mp4", windows=True) == "~/renders/a.mp4"
    assert _posix_path("C:\\renders\\take1", windows=True) == "C:\\renders\\take1"  # absolute: the system's own
    assert _posix_path("imgs\\a.png", windows=False) == "imgs\\a.png"  # here a backslash is part of a name


def _run_under_ascii_locale(code: str, cwd) -> str:
    """``code`` run by a Python whose file-system encoding is ASCII (``LC_ALL=C PYTHONUTF8=0``)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONUTF8="0", OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                         encoding="utf-8", errors="backslashreplace", timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_a_utf8_file_name_under_a_non_utf8_locale_is_said_as_the_locale_when_saved_as_toml(tmp_path, images):
    # the message said the name "is a file name that is not UTF-8 text", though its bytes are UTF-8
    import os

    os.makedirs(os.fsencode(tmp_path) + b"/cr\xc3\xa8me", exist_ok=True)
    with open(os.fsencode(tmp_path) + b"/cr\xc3\xa8me/cr\xc3\xa8me.png", "wb") as f:
        f.write(images[0].read_bytes())
    code = f"""
import os, sys
from latentlab.errors import ArgumentError
from latentlab.spec import load_spec
assert sys.getfilesystemencoding() == "ascii", sys.getfilesystemencoding()
name = os.fsdecode(b"cr\\xc3\\xa8me/cr\\xc3\\xa8me.png")
s = load_spec({{"keyframes": [{{"image": name}}, {{"image": {str(images[1])!r}}}]}})
try:
    s.save("s.toml")
except ArgumentError as e:
    print(ascii(str(e)))
print(os.path.exists("s.toml"))
back = load_spec(s.save("s.json"))  # JSON keeps it: the same file, under this locale too
print(back.resolve_path(back.keyframes[0]["image"]).is_file())
"""
    msg, toml_written, json_found = _run_under_ascii_locale(code, tmp_path).splitlines()
    assert "keyframes[0].image is" in msg and "UTF-8 text ('cr\\xe8me/cr\\xe8me.png')" in msg, msg
    assert "file-name encoding ('ascii'" in msg and "LANG=C.UTF-8" in msg and "PYTHONUTF8=1" in msg, msg
    assert "not UTF-8 text" not in msg and ".json" in msg, msg
    assert toml_written == "False" and json_found == "True"


def test_a_spec_path_the_locale_cannot_encode_is_a_spec_error_naming_the_field(tmp_path, images):
    # out_dir = "out 🎨" loaded under an ASCII (or Latin-1) file-name encoding failed later, once the
    # render made its folder, with a UnicodeEncodeError traceback; an image was "no such file"
    import shutil

    shutil.copy(images[0], tmp_path / "a.png")
    kfs = '[[keyframes]]\nimage = "a.png"\n[[keyframes]]\ntext = "x"\n'
    (tmp_path / "out.toml").write_text('out_dir = "out \U0001f3a8"\n' + kfs, encoding="utf-8")
    (tmp_path / "output.toml").write_text('output = "caf\u00e9.mp4"\n' + kfs, encoding="utf-8")
    (tmp_path / "base.toml").write_text('base_dir = "caf\u00e9"\n' + kfs, encoding="utf-8")
    (tmp_path / "img.toml").write_text(kfs.replace("a.png", "cr\u00e8me.png"), encoding="utf-8")
    (tmp_path / "mix.toml").write_text(kfs + '[[keyframes]]\nmix = [{ image = "\u65e5.png" }]\n', encoding="utf-8")
    code = """
from latentlab.errors import SpecError
from latentlab.spec import load_spec
for name in ("out", "output", "base", "img", "mix"):
    try:
        load_spec(name + ".toml")
        print("loaded")
    except SpecError as e:
        print(ascii(str(e)))
"""
    lines = _run_under_ascii_locale(code, tmp_path).splitlines()
    fields = ("'out_dir' is 'out \\U0001f3a8'", "'output' is 'caf\\xe9.mp4'", "'base_dir' is 'caf\\xe9'",
              "keyframes[0].image is 'cr\\xe8me.png'", "keyframes[2].mix[0].image is '\\u65e5.png'")  # fmt: skip
    assert len(lines) == len(fields)
    for line, field in zip(lines, fields):
        assert field in line, line
        assert "file-name encoding ('ascii'" in line and "UTF-8 locale (e.g. LANG=C.UTF-8) or with PYTHONUTF8=1" in line, line


def test_render_spec_writes_the_video_resized_frame_by_frame_and_a_sheet_of_bounded_tiles(tmp_path, images, monkeypatch):
    # an audit of scale: the whole resized video was built in memory before writing (then copied
    # again for a gif), and a render at size 4096 wrote a 200-megapixel contact sheet that Pillow
    # refuses to open
    from latentlab import jobs, video
    from latentlab.video import load_image

    seen = {}
    real = video.write_video

    def spy(frames, path, **kw):
        seen["frames"], seen["size"] = np.asarray(frames).shape, kw.get("size")
        return real(frames, path, **kw)

    monkeypatch.setattr(video, "write_video", spy)
    monkeypatch.setattr(jobs, "SHEET_TILE_MAX", 40)
    spec = {"preset": "tiny", "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], "frames": 3,
            "size": 48, "format": "gif", "steps": 2}  # fmt: skip
    result = jobs.render_spec(spec, out_dir=tmp_path / "r", progress=False)
    native = result.frames.shape
    assert seen == {"frames": native, "size": 48} and native[1] != 48
    assert video.read_video(result.video).shape[1:3] == (48, 48)
    sheet = load_image(result.contact_sheet)
    assert sheet.shape == (2 * 40 + 3 * 2, 2 * 40 + 3 * 2, 3)  # 3 frames in 2 x 2 tiles of 40 px, padded by 2
    # frames that are not square (a user's own decoder) keep their shape on a sheet of their own size
    # (a review: they were squashed), and shrink, keeping it, past the cap
    wide = np.zeros((3, 16, 24, 3), np.uint8)
    assert jobs.contact_sheet_of(wide, None).shape == (2 * 16 + 3 * 2, 2 * 24 + 3 * 2, 3)
    assert jobs.contact_sheet_of(np.zeros((1, 30, 60, 3), np.uint8), None).shape == (20 + 2 * 2, 40 + 2 * 2, 3)


def test_a_text_diff_between_captions_that_encode_the_same_names_the_keyframe(images, tiny_encoder):
    # an audit of typed text: "a red circle" -> "A red circle" (the tokenizer reads lower case) failed with
    # "target - source is the zero vector", naming neither the keyframe nor --from/--to (whose default is "a photo")
    spec = load_spec({"keyframes": [{"image": str(images[0])}, {"text_diff": {"from": "a red circle", "to": "A red  circle"}}]})
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.text_diff: 'from' 'a red circle' and 'to' 'A red  circle' encode "
                                        r"the same \(the CLIP tokenizer reads text in lower case.*\(CLI: --from, --to\)"):
        spec.resolve(tiny_encoder)
    # (the very caption of the default is refused by load_spec itself, before any model loads)
    spec = load_spec({"keyframes": [{"image": str(images[0])}, {"text_diff": {"to": "A  photo"}}]})
    with pytest.raises(SpecError, match=r"'from' 'a photo' \(the default\) and 'to' 'A  photo' encode the same"):
        spec.resolve(tiny_encoder)


def test_a_default_folder_name_keeps_accents_and_vowel_signs_and_nothing_else_changed():
    # an audit of typed text: combining marks became dashes, so "हिन्दी में बिल्ली" and "हिन्दू में बिल्ली"
    # shared the folder 'ह-न-द-म-ब-ल-ल', and a decomposed "cafe\u0301" was 'cafe'
    import re
    import unicodedata

    from latentlab.jobs import slug

    assert slug("हिन्दी में बिल्ली") == "हिन्दी-में-बिल्ली" != slug("हिन्दू में बिल्ली")
    assert slug("cafe\u0301 noir") == slug("café noir") == "café-noir"
    # a review: marks only with their letters; an emoji's variation selector (U+FE0F, a mark) is not kept
    assert slug("a \u2764\ufe0f shaped balloon") == "a-shaped-balloon" and slug("\u2b50\ufe0f") == "render"
    assert slug("\u0301\u0301") == "render" and slug("a - \u0301 b") == "a-b"
    old = re.compile(r"[\W_]+")  # the rule before, for every character that is not a combining mark
    for cp in range(0x10000):
        c = chr(cp)
        if unicodedata.category(c)[0] in ("M", "C") or unicodedata.normalize("NFC", c) != c:
            continue
        name = f"a{c}b"
        assert slug(name) == (old.sub("-", name).strip("-").lower()[:60] or "render"), hex(cp)


def test_a_caption_with_a_lone_surrogate_is_refused_by_its_field(images):
    # a second review: it reached the encoder, which named it texts[0] with a fix in Python
    for kf, where in (({"text": "a caf\udce9 cat"}, r"keyframes\[1\]\.text"),
                      ({"text_diff": {"to": "a caf\udce9"}}, r"keyframes\[1\]\.text_diff\.to"),
                      ({"mix": [{"text": "caf\udce9"}]}, r"keyframes\[1\]\.mix\[0\]\.text")):
        with pytest.raises(SpecError, match=where + r" is .*whose '\\udce9' is not a character"):
            load_spec({"keyframes": [{"image": str(images[0])}, kf]})


def test_a_keyframe_that_is_a_pipe_or_device_is_named_as_such(tmp_path):
    import os

    os.mkfifo(tmp_path / "pipe.png")
    for image in (str(tmp_path / "pipe.png"), "/dev/zero"):
        for kf in ({"image": image}, {"mix": [{"image": image}, {"text": "a cat"}]}):
            with pytest.raises(SpecError, match=r"is not a regular file \(a pipe or device\?\); name a picture file"):
                load_spec({"keyframes": [kf, {"text": "b"}]})  # it read "no such file"


def test_a_spec_nested_hundreds_deep_is_a_spec_error_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.json"  # (as a file: JSON reads this deep, and the spec's own reading must too)
    path.write_text('{"keyframes": [{"text": "a"}, {"mix": [' + "[" * 550 + '"x"' + "]" * 550 + "]}]}")
    with pytest.raises(SpecError, match=r"keyframes\[1\].mix\[0\]"):
        load_spec(path)


# -- gaps found by mutation testing (2026-12-07): each test fails on a plausible bug the suite missed --


# (A gap that mutation testing found, spec.py Spec.resolve_path:) "~" is not expanded, so an image keyframe written
# "~/pictures/a.png" is looked up as <base_dir>/~/pictures/a.png and the spec is refused with
# "no such file" (output/out_dir under ~ would land in a folder literally named "~").
def test_a_tilde_image_path_resolves_to_the_home_folder(tmp_path, monkeypatch):
    from PIL import Image

    home = tmp_path / "home"
    (home / "pictures").mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(home / "pictures" / "a.png")
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / "specs").mkdir()
    spec = load_spec({"keyframes": [{"image": "~/pictures/a.png"}, {"text_diff": {"to": "a blue square"}}],
                      "base_dir": str(tmp_path / "specs")})
    assert spec.resolve_path("~/pictures/a.png") == home / "pictures" / "a.png"


# (A gap that mutation testing found, spec.py load_spec:) a spec file's folder is not resolved, so load_spec("s.toml")
# from the working folder gets base_dir "." and its relative paths follow the process's current
# folder instead of the file (a notebook or job that changes folder later looks elsewhere).
def test_a_spec_files_relative_paths_stay_at_its_folder_after_a_chdir(tmp_path, monkeypatch):
    import json

    from PIL import Image

    (tmp_path / "proj").mkdir()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(tmp_path / "proj" / "a.png")
    (tmp_path / "proj" / "s.json").write_text(json.dumps(
        {"keyframes": [{"image": "a.png"}, {"text_diff": {"to": "a red circle"}}]}))
    monkeypatch.chdir(tmp_path / "proj")
    spec = load_spec("s.json")
    monkeypatch.chdir(tmp_path)
    assert spec.resolve_path("a.png") == tmp_path / "proj" / "a.png"
    assert spec.resolve_path("a.png").is_file()


# (A gap that mutation testing found, spec.py _validate_keyframe:) the mix weight check "wt < 0" loosened to "wt < -1":
# a mix weight of -0.5 passes, although a mix is a spherical mean of non-negative weights (a
# negative one belongs in 'sum'); spherical_mean would refuse it only later, at resolve time.
@pytest.mark.parametrize("w", [-0.5, -1.0])
def test_a_negative_mix_weight_is_refused_at_load(w):
    with pytest.raises(SpecError, match=r"weight must be >= 0 in a mix"):
        load_spec({"keyframes": [{"text": "a red circle"},
                                 {"mix": [{"text": "a cat", "weight": 1.0}, {"text": "a dog", "weight": w}]}]})


_TWO_TEXTS = [{"text": "a red circle"}, {"text": "a blue square"}]


# (A gap that mutation testing found, spec.py _validate_keyframe:) "hold" is let through on keyframes[0], where no
# segment ends, so it is silently ignored (the user's hold never shows; hold_first is the field).
def test_a_hold_on_the_first_keyframe_is_refused():
    with pytest.raises(SpecError, match="no segment ends at the first keyframe"):
        load_spec({"keyframes": [{"text": "a red circle", "hold": 5}, {"text": "a blue square"}]})


# (A gap that mutation testing found, spec.py Spec.validate:) even/fine pacing with per-frame noise is accepted, although
# per-frame noise changes every frame anyway, so the pacing decodes would be spent for nothing.
def test_even_pacing_with_per_frame_noise_is_refused():
    with pytest.raises(SpecError, match="needs noise that follows the path"):
        load_spec({"keyframes": _TWO_TEXTS, "pacing": "even", "noise": "per-frame"})


# (A gap that mutation testing found, spec.py Spec.validate:) the upper bound of eta dropped: eta = 1.5 (outside DDIM's
# [0, 1]) is accepted by the spec and fails (or samples nonsense) only once the model runs.
def test_an_eta_above_one_is_refused():
    with pytest.raises(SpecError, match=r"'eta' must be a number in \[0, 1\]"):
        load_spec({"keyframes": _TWO_TEXTS, "eta": 1.5})


# (A gap that mutation testing found, spec.py Spec._writer:) "~" paths are rewritten relative to the new file's folder
# when a spec is saved elsewhere, so output "~/videos/x.mp4" becomes "../a/~/videos/x.mp4".
def test_saving_elsewhere_keeps_tilde_paths(tmp_path, monkeypatch):
    import json

    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    spec = load_spec({"keyframes": _TWO_TEXTS, "output": "~/videos/x.mp4", "out_dir": "~/renders/x"})
    saved = spec.save(tmp_path / "elsewhere" / "s.json")
    data = json.loads(saved.read_text())
    assert data["output"] == "~/videos/x.mp4" and data["out_dir"] == "~/renders/x"


# ------------------------------------------------------------------------------------
# the spec job (latentlab.jobs): what a render folder resumes, reuses or refuses, and the caches
# it keys (gaps a mutation test found, 2026-12-07)
# ------------------------------------------------------------------------------------
def _job_spec(images, **kw):
    return {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], **kw}  # fmt: skip


def _frame_times(out):
    return {p.name: p.stat().st_mtime_ns for p in out.glob("frame_*.png")}


@pytest.mark.parametrize("change", [{"eta": 0}, {"eta": 0.0}])
def test_eta_0_spelt_out_resumes_the_same_render(tmp_path, images, change):
    """eta = 0 spelt out is the default (no eta): the same render, resumed, not refused as a
    different one, and no frame drawn again."""
    out = tmp_path / "r"
    first = ll.render_spec(_job_spec(images), out_dir=out, progress=False)
    times = _frame_times(out)
    again = ll.render_spec(_job_spec(images, **change), out_dir=out, progress=False)
    assert np.array_equal(again.frames, first.frames) and _frame_times(out) == times


def test_the_pacing_cache_key_covers_every_setting_that_changes_the_measurement(images):
    """pacing.json is reused only for the same measurement: tol, coarse, max_samples, metric and
    eta each change its key."""
    from latentlab.jobs import _pacing_key
    from latentlab.spec import load_spec

    dec = ll.create_decoder("tiny")
    base = _job_spec(images, pacing="even", pacing_metric="clip")
    traj = ll.Trajectory.interpolate(*torch.eye(32)[:2].split(1), frames=3)
    key = _pacing_key(load_spec(base), traj, dec, None)
    for change in ({"pacing_tol": 0.5}, {"pacing_coarse": 5}, {"pacing_max_samples": 2}, {"pacing_metric": "pixel"},
                   {"eta": 0.3}, {"seed": 4}):  # fmt: skip
        assert _pacing_key(load_spec({**base, **change}), traj, dec, None) != key, change
    assert _pacing_key(load_spec({**base, "eta": 0.3}), traj, dec, None) != _pacing_key(load_spec({**base, "eta": 0.5}), traj, dec, None)


def test_the_inverted_noise_cache_is_keyed_by_the_settings_and_seeds(tmp_path, images):
    """keyframe_noise.pt is reused only for the same inversion: another step count inverts again,
    and with another spec seed a keyframe that is not inverted (a mix here, seeded seed + 1) gets
    the new seed's noise, not the cached one."""
    from latentlab.jobs import keyframe_noise
    from latentlab.render import make_noise
    from latentlab.spec import load_spec

    enc, dec = ll.create_encoder("tiny"), ll.create_decoder("tiny")
    mix = {"mix": [{"image": str(images[0]), "weight": 0.5}, {"image": str(images[1]), "weight": 0.5}]}
    kfs = [{"image": str(images[0])}, mix]
    spec = load_spec({"preset": "tiny", "steps": 2, "noise": "inverted", "keyframes": kfs})
    traj = spec.resolve(enc)
    kn = keyframe_noise(spec, traj, dec, directory=tmp_path)
    assert torch.equal(kn[1], make_noise(dec.noise_shape(), [1])[0])
    other_seed = load_spec({"preset": "tiny", "steps": 2, "noise": "inverted", "seed": 5, "keyframes": kfs})
    again = keyframe_noise(other_seed, traj, dec, directory=tmp_path)
    assert torch.equal(again[1], make_noise(dec.noise_shape(), [6])[0]) and torch.equal(again[0], kn[0])
    fewer = load_spec({"preset": "tiny", "steps": 1, "noise": "inverted", "keyframes": kfs})
    expected = dec.invert(ll.load_image(images[0]), traj.keyframes[:1], steps=1, progress=False)[0]
    assert torch.equal(keyframe_noise(fewer, traj, dec, directory=tmp_path)[0], expected)


def test_a_partial_pacing_measurement_of_another_key_is_not_reused(tmp_path):
    """pacing_partial.pt of another measurement (the folder's render replaced) is dropped, not
    loaded into this one."""
    from latentlab.jobs import _PacingCheckpoint

    path = tmp_path / "pacing_partial.pt"
    saved = _PacingCheckpoint(path, "key-a")
    saved[(0, 0.5)] = np.zeros((1, 4, 4, 3), np.uint8)
    saved.save()
    assert len(_PacingCheckpoint(path, "key-a")) == 1
    other = _PacingCheckpoint(path, "key-b")
    assert len(other) == 0 and not path.exists()


def test_a_pacing_json_that_latentlab_did_not_write_is_not_replaced(tmp_path, images):
    """A folder without a manifest holding a user's own pacing.json (no key: not a pacing record)
    is refused, as a user's keyframes.json is."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "pacing.json").write_text(json.dumps({"my": "notes"}))
    with pytest.raises(ArgumentError, match="holds pacing.json"):
        ll.render_spec(_job_spec(images, pacing="even"), out_dir=out, progress=False)
    assert json.loads((out / "pacing.json").read_text()) == {"my": "notes"}


def test_a_video_whose_time_changed_but_not_its_contents_is_still_the_renders_own(tmp_path, images):
    """A recorded video whose modification time changed (copied back, touched) but whose bytes did
    not is recognised by its hash and rewritten by a rerun; -o videos included."""
    out, video = tmp_path / "r", tmp_path / "mine.gif"
    ll.render_spec(_job_spec(images), out_dir=out, output=video, progress=False)
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    res = ll.render_spec(_job_spec(images, fps=5), out_dir=out, output=video, progress=False)
    assert res.video == video


def test_overwrite_renders_a_folder_whose_keyframe_pictures_changed(tmp_path, images):
    """overwrite=True replaces a folder's render of other keyframe pictures (it is what the
    refusal tells the user to pass)."""
    out = tmp_path / "r"
    first = ll.render_spec(_job_spec(images), out_dir=out, progress=False)
    ll.save_image(np.full((64, 64, 3), 90, np.uint8), images[1])
    with pytest.raises(ArgumentError, match="render of other keyframe pictures"):
        ll.render_spec(_job_spec(images), out_dir=out, progress=False)
    again = ll.render_spec(_job_spec(images), out_dir=out, overwrite=True, progress=False)
    assert not np.array_equal(again.frames[-1], first.frames[-1])


def test_the_contact_sheet_shows_the_frames_at_the_videos_size(tmp_path, images):
    """size = 32: the sheet's tiles are 32 px, as the video's frames."""
    res = ll.render_spec(_job_spec(images, size=32), out_dir=tmp_path / "r", progress=False)
    assert res.frames.shape[1] != 32
    assert ll.load_image(res.contact_sheet).shape == (2 * 32 + 3 * 2, 2 * 32 + 3 * 2, 3)


def test_resize_frames_makes_frames_that_are_not_square_square():
    """resize_frames(frames, size) gives size x size frames, whatever their shape (a user's own decoder's)."""
    from latentlab.jobs import resize_frames

    wide = np.zeros((2, 16, 24, 3), np.uint8)
    assert resize_frames(wide, 16).shape == (2, 16, 16, 3)
    same = np.zeros((2, 16, 16, 3), np.uint8)
    assert resize_frames(same, 16) is same


def test_a_users_contact_sheet_png_in_a_fresh_folder_is_not_replaced(tmp_path, images):
    """A folder without a manifest holding a contact_sheet.png (not one a render leaves before its
    manifest) is refused before any work, and the file kept."""
    out = tmp_path / "r"
    out.mkdir()
    (out / "contact_sheet.png").write_bytes(b"mine")
    with pytest.raises(ArgumentError, match="holds contact_sheet.png"):
        ll.render_spec(_job_spec(images), out_dir=out, progress=False)
    assert (out / "contact_sheet.png").read_bytes() == b"mine" and not list(out.glob("frame_*.png"))


def test_slug_keeps_at_most_60_characters():
    """A long name (a long prompt) makes a folder name of at most 60 characters."""
    from latentlab.jobs import slug

    assert slug("x" * 100) == "x" * 60
    assert len(slug("a red circle above a blue square next to a green triangle under a yellow sun")) == 60


# -- properties over generated specs (docs/spec.md), and the bugs they found ---------------------

PROPS = settings(max_examples=50, deadline=None, derandomize=True)


#: picture files of a project, named as users name them: a space, an accent, an emoji, quotes, a
#: backslash (a legal name character here), a leading '~' that is nobody's home folder
PICTURES = ["a.png", "sub/b.png", "caf\u00e9 \U0001f4f1.png", "~x.png", "q\"uo'te.png", "back\\slash.png", "sp ace/..d.png"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("spec-props") / "root"  # (a save to ../s2.toml from it stays inside)
    root.mkdir()
    for i, name in enumerate(PICTURES):
        (root / "proj" / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (30 * i, 100, 50)).save(root / "proj" / name, format="PNG")
    return root


# -- generated specs ---------------------------------------------------------------------------

caption = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=10).filter(str.strip)
picture = st.sampled_from(PICTURES)
weight = st.one_of(st.integers(-3, 3), st.floats(-5, 5, allow_nan=False))
mix_item = st.one_of(st.fixed_dictionaries({"image": picture}, optional={"weight": st.floats(0.1, 5)}),
                     st.fixed_dictionaries({"text": caption}, optional={"weight": st.integers(1, 3)}))  # fmt: skip
sum_item = st.one_of(st.fixed_dictionaries({"image": picture}, optional={"weight": weight}),
                     st.fixed_dictionaries({"text": caption}, optional={"weight": weight}))  # fmt: skip
text_diff = st.fixed_dictionaries({"to": caption}, optional={"from": caption, "theta": st.floats(0, 1)})
SEGMENT = {"frames": st.integers(1, 100_000), "easing": st.sampled_from(["linear", "ease-in", "ease-out", "ease-in-out"]),
           "method": st.sampled_from(["slerp", "nlerp", "lerp"]), "hold": st.integers(0, 100_000)}  # fmt: skip
OWN = {"label": caption, "seed": st.integers(-(2**63), 2**63 - 100_001)}
rel_path = st.lists(st.sampled_from(["out", "..", "caf\u00e9", "x y", "~z", "a.b"]), min_size=1, max_size=3).map("/".join)
TOP = {
    "preset": st.sampled_from(["mini", "tiny"]), "seed": st.integers(-(2**63), 2**63 - 100_001),
    "noise": st.sampled_from(["shared", "slerp", "inverted"]), "frames": st.integers(1, 100_000),
    "easing": st.sampled_from(["linear", "ease-in-out"]), "method": st.sampled_from(["slerp", "nlerp", "lerp"]),
    "steps": st.integers(1, 1000), "guidance_scale": st.one_of(st.integers(0, 20), st.floats(0, 1e6)),
    "eta": st.floats(0, 1), "batch_size": st.integers(1, 10**6), "upscale": st.booleans(),
    "fps": st.one_of(st.integers(1, 240), st.floats(0.01, 240)), "size": st.integers(8, 4096),
    "hold_first": st.integers(0, 100_000), "hold_last": st.integers(0, 100_000), "pingpong": st.booleans(),
    "output": st.tuples(rel_path, st.sampled_from([".mp4", ".webp", ".gif"])).map("".join), "out_dir": rel_path,
    "name": caption, "format": st.sampled_from(["mp4", "gif", "webp"]), "invert_refine": st.integers(0, 100),
}  # fmt: skip
PACING = {
    "pacing": st.sampled_from(["even", "fine"]), "pacing_metric": st.sampled_from(["clip", "pixel"]),
    "pacing_scope": st.sampled_from(["segment", "path"]), "pacing_coarse": st.integers(1, 100_000),
    "pacing_passes": st.integers(1, 10**6), "pacing_tol": st.floats(0, 1e9), "pacing_max_samples": st.integers(0, 10**9),
    "pacing_min_width": st.floats(0, 1, exclude_min=True, exclude_max=True), "pacing_relax": st.integers(0, 100),
}  # fmt: skip


@st.composite
def specs(draw):
    """A spec as a file holds it: 2-4 keyframes of every kind, each with or without its own
    settings, and any of the documented top-level fields (some combinations are then refused)."""
    keyframes = []
    for i in range(draw(st.integers(2, 4))):
        kinds = [st.fixed_dictionaries({"image": picture}), st.fixed_dictionaries({"text": caption}),
                 st.fixed_dictionaries({"mix": st.lists(mix_item, min_size=1, max_size=3)}),
                 st.fixed_dictionaries({"sum": st.lists(sum_item, min_size=1, max_size=3)})]  # fmt: skip
        if i:
            kinds.append(st.fixed_dictionaries({"text_diff": text_diff}))
        kf = dict(draw(st.one_of(kinds)))
        kf.update(draw(st.fixed_dictionaries({}, optional={**OWN, **({} if i == 0 else SEGMENT)})))
        keyframes.append(kf)
    spec = {"keyframes": keyframes, **draw(st.fixed_dictionaries({}, optional=TOP))}
    if draw(st.booleans()):
        spec.update(draw(st.fixed_dictionaries({}, optional=PACING)))
    return spec


def _images(d):
    return [it.pop("image") for kf in d["keyframes"] for it in [kf, *kf.get("mix", ()), *kf.get("sum", ())] if "image" in it]


@PROPS
@given(data=specs(), suffix=st.sampled_from([".json", ".toml"]), where=st.sampled_from(["", "deeper/x", "../other", "sub"]))
def test_a_saved_spec_loads_back_as_the_same_render(project, data, suffix, where):
    """Spec.save, then load_spec of the file, in its own folder or another: every field the same,
    every relative path (images, output, out_dir) naming the same file, the same keyframe seeds
    and the same trajectory; in its own folder, the very same to_dict()."""
    source = project / "proj" / "spec.json"
    source.write_text(json.dumps(data))
    try:
        spec = load_spec(source)
        before = spec.resolve(HashEncoder(), DoublingPrior())
    except ArgumentError:  # (a combination the spec refuses, or a text diff / sum that cancels out)
        return
    back = load_spec(spec.save(project / "proj" / where / f"saved{suffix}"))
    a, b = spec.to_dict(), back.to_dict()
    if not where:
        assert a == b
    for key in ("output", "out_dir"):
        assert (key in a) == (key in b)
        if key in a:
            assert spec.resolve_path(a.pop(key)).resolve() == back.resolve_path(b.pop(key)).resolve(), key
    assert [spec.resolve_path(p).resolve() for p in _images(a)] == [back.resolve_path(p).resolve() for p in _images(b)]
    assert a == b
    assert back.keyframe_seeds() == spec.keyframe_seeds()
    after = back.resolve(HashEncoder(), DoublingPrior())
    assert torch.equal(after.keyframes, before.keyframes) and after.labels == before.labels
    assert [(g.frames, g.easing, g.method, g.hold) for g in after.segments] == [(g.frames, g.easing, g.method, g.hold) for g in before.segments]


# -- any value in any field ----------------------------------------------------------------------

_ODD = [10**400, -(10**400), 1e39, 1e-50, math.nan, math.inf, -math.inf, 2**63, -1, 0, "", " ", "\x00", "mini", "a.gif",
        "..\\a", "\udcff", "~", "even", True, None, [], {}]  # fmt: skip
scalar = st.one_of(st.sampled_from(_ODD), st.integers(), st.floats(), st.text(max_size=6))
value = st.recursive(scalar, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=5), c, max_size=3)),
                     max_leaves=5)  # fmt: skip
TOP_FIELDS = ["keyframes", *TOP, *PACING, "base_dir"]
KEYFRAME_FIELDS = ["image", "text", "text_diff", "mix", "sum", *SEGMENT, *OWN]
PLACES = [("top", k) for k in TOP_FIELDS] + [("keyframe", i, k) for i in range(5) for k in KEYFRAME_FIELDS] + \
         [("text_diff", k) for k in ("from", "to", "theta", "x")] + \
         [("item", kind, j, k) for kind in ("mix", "sum") for j in (0, 1) for k in ("image", "text", "weight", "y")]  # fmt: skip


def _load_with(folder, where, v, pacing, via_file):
    """Load a valid spec (each keyframe kind; even pacing or not) with ``v`` put at ``where``,
    from a JSON file or as a dict; a SpecError is an answer too."""
    d = {"keyframes": [{"image": "a.png"}, {"text": "b"}, {"text_diff": {"to": "c"}},
                       {"mix": [{"image": "sub/b.png", "weight": 1}, {"text": "d"}]}, {"sum": [{"text": "e"}, {"text": "f"}]}]}  # fmt: skip
    if pacing:
        d["pacing"] = "even"
    if where[0] == "top":
        d[where[1]] = v
    elif where[0] == "keyframe":
        d["keyframes"][where[1]][where[2]] = v
    elif where[0] == "text_diff":
        d["keyframes"][2]["text_diff"][where[1]] = v
    else:
        d["keyframes"][3 if where[1] == "mix" else 4][where[1]][where[2]] = v
    try:
        if via_file:
            try:
                text = json.dumps(d)
            except ValueError:  # (a lone surrogate: no JSON file holds it)
                return
            (folder / "fuzz.json").write_text(text)
            load_spec(folder / "fuzz.json")
        else:
            load_spec({**d, "base_dir": d.get("base_dir", str(folder))})
    except SpecError:
        pass


def test_each_odd_value_in_each_field_loads_or_is_a_spec_error(project):
    """Huge (10**400, which JSON reads as an int no float holds), NaN, infinite, negative,
    empty, NUL, surrogate, null, empty list and table values in every field of a valid spec:
    a Spec or a SpecError, never a raw Python error."""
    for where in PLACES:
        for v in _ODD:
            _load_with(project / "proj", where, v, pacing=where[-1] == "pacing_tol", via_file=False)
    for where in PLACES:  # as a file holds them (one pass: the dict's checks are the same)
        for v in (10**400, math.nan, "\x00", [[1]], None):
            _load_with(project / "proj", where, v, pacing=where[-1] == "pacing_tol", via_file=True)


@settings(PROPS, max_examples=100)
@given(where=st.sampled_from(PLACES), v=value, pacing=st.booleans(), via_file=st.booleans())
def test_any_value_in_any_field_loads_or_is_a_spec_error(project, where, v, pacing, via_file):
    """Whatever JSON value (nested lists and tables, any number or string) is put in whatever
    field of a valid spec, loading it gives a Spec or a SpecError, never a raw Python error."""
    _load_with(project / "proj", where, v, pacing, via_file)


# -- --save-spec, replayed ------------------------------------------------------------------------


@settings(PROPS, max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cwd=st.sampled_from(["", "proj", "proj/sub"]), verb=st.sampled_from(["render", "interpolate", "morph"]),
       o=st.sampled_from([None, "x.mp4", "../y.gif"]), out_dir=st.sampled_from([None, "r1", "../r2"]),
       save=st.sampled_from(["s.toml", "sv/s.json", "../s2.toml", "proj/sub/s3.toml"]))  # fmt: skip
def test_save_spec_replays_the_same_render_from_any_folder(project, monkeypatch, cwd, verb, o, out_dir, save):
    """`latentlab VERB ... --save-spec S`, then `latentlab render S` typed in another folder: the
    same pictures, settings, video and render folder (the default renders/<name> under the
    working directory, as documented; -o and --out-dir where they were typed)."""
    from latentlab import jobs
    from latentlab.cli import main

    seen = []

    def fake(spec, **kw):
        seen.append((spec, kw))
        if kw.get("ready") is not None:  # where render_spec writes --save-spec
            kw["ready"]()
        return SimpleNamespace(video="v", contact_sheet="c", out_dir="r", frames=[], pacing=None)

    monkeypatch.setattr(jobs, "render_spec", fake)

    def effective(spec, kw):
        d = spec.to_dict()
        images = [str(spec.resolve_path(p).resolve()) for p in _images(d)]
        own = kw.get("out_dir") or spec.out_dir
        folder = Path(kw["out_dir"]).resolve() if kw.get("out_dir") else jobs.default_out_dir(spec).resolve()
        video = (Path(kw["output"]).resolve() if kw.get("output") else
                 spec.resolve_path(spec.output).resolve() if spec.output else jobs.video_path(folder, spec.format))  # fmt: skip
        here = Path.cwd().resolve()
        if not own:  # renders/<name> under the working directory
            folder, video = folder.relative_to(here), (video if kw.get("output") or spec.output else video.relative_to(here))
        return folder, video, images, {k: v for k, v in d.items() if k not in ("output", "out_dir")}

    proj = project / "proj"
    argv = {"render": ["render", str(proj / "in.toml")], "interpolate": ["interpolate", str(proj / "a.png"), str(proj / "sub/b.png")],
            "morph": ["morph", str(proj / "a.png"), "--to", "a cat"]}[verb]  # fmt: skip
    if verb == "render":
        (proj / "in.toml").write_text('preset = "tiny"\nsteps = 2\n[[keyframes]]\nimage = "a.png"\n[[keyframes]]\nimage = "~x.png"\n')
    else:
        argv += ["--preset", "tiny", "--steps", "2"]
    argv += [*(["-o", o] if o else []), *(["--out-dir", out_dir] if out_dir else []), "--save-spec", save, "-q"]
    start = os.getcwd()
    try:
        os.chdir(project / cwd)
        assert main(argv) == 0
        first = effective(*seen.pop())
        saved = Path(save).resolve()
        (project / "elsewhere").mkdir(exist_ok=True)
        os.chdir(project / "elsewhere")
        assert main(["render", str(saved), "-q"]) == 0
        assert effective(*seen.pop()) == first
    finally:
        os.chdir(start)


# -- bugs the properties found ---------------------------------------------------------------------


def test_a_huge_integer_in_a_json_spec_is_a_spec_error_naming_its_field(tmp_path):
    """A JSON number written out in 400 digits is an int Python holds but no float does:
    guidance_scale, pacing_tol and mix / sum weights raised a raw OverflowError from math.isfinite."""
    huge = "1" + "0" * 400
    cases = [('"guidance_scale": H', "'guidance_scale' must be a finite number"),
             ('"pacing": "even", "pacing_tol": H', "'pacing_tol' must be a finite number")]  # fmt: skip
    for i, (extra, match) in enumerate(cases):
        p = tmp_path / f"{i}.json"
        p.write_text('{"keyframes": [{"text": "a"}, {"text": "b"}], ' + extra.replace("H", huge) + "}")
        with pytest.raises(SpecError, match=match):
            load_spec(p)
    for kind in ("mix", "sum"):
        p = tmp_path / f"{kind}.json"
        p.write_text('{"keyframes": [{"text": "a"}, {"%s": [{"text": "b", "weight": %s}]}]}' % (kind, huge))
        with pytest.raises(SpecError, match=rf"keyframes\[1\]\.{kind}\[0\]\.weight must be a finite number"):
            load_spec(p)


def test_a_weight_that_single_precision_cannot_hold_is_refused_when_the_spec_loads():
    """The render reads mix / sum weights as float32: a weight of 1e39 loaded, then failed once
    the models had loaded ('weights contains NaN or infinite values', naming no field); weights
    of 1e-50 (0 in float32) passed the all-zero check and failed the same way."""
    for kind in ("mix", "sum"):
        with pytest.raises(SpecError, match=rf"keyframes\[1\]\.{kind}\[0\]\.weight must be a finite number \(at most 3.4e38"):
            load_spec({"keyframes": [{"text": "a"}, {kind: [{"text": "b", "weight": 1e39}]}]})
        with pytest.raises(SpecError, match=rf"keyframes\[1\]\.{kind} has weights that are all 0 \(in single precision"):
            load_spec({"keyframes": [{"text": "a"}, {kind: [{"text": "b", "weight": 1e-50}]}]})
    ok = load_spec({"keyframes": [{"text": "a"}, {"mix": [{"text": "b", "weight": 3e38}, {"text": "c", "weight": 1e-50}]}]})
    assert torch.isfinite(ok.resolve(HashEncoder(), DoublingPrior()).keyframes).all()


def test_a_sum_whose_terms_cancel_out_names_its_keyframe():
    """A sum of a caption and minus the same caption is the zero vector, known only once encoded:
    the error named 'rows [0]' of ops.arithmetic, not the keyframe (as a text diff's does)."""
    s = load_spec({"keyframes": [{"text": "a"}, {"text": "x"}, {"sum": [{"text": "b"}, {"text": "b", "weight": -1}]}]})
    with pytest.raises(SpecError, match=r"keyframes\[2\]\.sum: the weighted sum of terms is the zero vector .*cancel out"):
        s.resolve(HashEncoder(), DoublingPrior())


def test_a_relative_path_starting_with_a_tilde_that_is_no_home_folder_is_rewritten_when_saved_elsewhere(tmp_path):
    """'~x.png' names no user's home, so it is a file beside the spec; saved into another folder
    it was kept as written, and the saved spec named a file that is not there."""
    from PIL import Image

    (tmp_path / "proj").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "proj" / "~x.png")
    (tmp_path / "proj" / "s.json").write_text(json.dumps({"output": "~v.mp4", "keyframes": [{"image": "~x.png"}, {"text": "b"}]}))
    spec = load_spec(tmp_path / "proj" / "s.json")
    for suffix in (".json", ".toml"):
        back = load_spec(spec.save(tmp_path / "other" / f"s{suffix}"))
        assert back.resolve_path(back.keyframes[0]["image"]).resolve() == tmp_path / "proj" / "~x.png"
        assert back.resolve_path(back.output).resolve() == tmp_path / "proj" / "~v.mp4"
    home = load_spec({"output": "~/v.mp4", "keyframes": [{"text": "a"}, {"text": "b"}]})
    assert json.loads(home.save(tmp_path / "other" / "h.json").read_text())["output"] == "~/v.mp4"  # the home folder: kept


def test_a_dict_spec_with_a_key_that_is_not_a_string_is_a_spec_error():
    """A Python dict may have any key: 1 beside the fields (or in a keyframe) raised a TypeError
    from sorting or matching it against the field names."""
    with pytest.raises(SpecError, match=r"unknown spec field\(s\): 1, 'x'"):
        load_spec({"keyframes": [{"text": "a"}, {"text": "b"}], 1: 2, "x": 3})
    with pytest.raises(SpecError, match=r"unknown spec field\(s\): 1\."):
        load_spec({"keyframes": [{"text": "a"}, {"text": "b"}], 1: 2})
    with pytest.raises(SpecError, match=r"keyframes\[1\] has unknown field\(s\) \[1, 'x'\]"):
        load_spec({"keyframes": [{"text": "a"}, {"text": "b", 1: 2, "x": 3}]})
    with pytest.raises(SpecError, match=r"keyframes\[1\]\.text_diff has unknown field\(s\) \[2, 'y'\]"):
        load_spec({"keyframes": [{"text": "a"}, {"text_diff": {"to": "b", 2: 0, "y": 1}}]})


def test_a_path_starting_with_the_home_of_no_user_is_a_relative_name_everywhere(tmp_path, monkeypatch, tiny_encoder):
    """'~x.png' (no user x here) is a file beside the spec in a dict spec too, through the
    picture check, the encoder and render_spec's output and out_dir; pathlib's expanduser raised a
    raw RuntimeError ('Could not determine home directory') there, after the models had loaded.
    Loading a spec at '~nouser/...' says the file is missing; saving one there writes that folder."""
    from PIL import Image

    from latentlab import jobs
    from latentlab.errors import user_path

    from conftest import FakeDecoder

    assert user_path("~nouser/x.png") == Path("~nouser/x.png") and user_path("./~x") == Path("~x")
    assert user_path("~/x") == Path.home() / "x"
    monkeypatch.chdir(tmp_path)
    for name, colour in (("~x.png", (200, 0, 0)), ("b.png", (0, 0, 200))):
        Image.new("RGB", (8, 8), colour).save(tmp_path / name)
    dec = FakeDecoder()
    dec.space, dec.dim = "tiny-random", 32
    jobs.render_spec({"preset": "tiny", "frames": 3, "format": "gif", "keyframes": [{"image": "~x.png"}, {"image": "b.png"}]},
                           output="~v.gif", out_dir="~r", encoder=tiny_encoder, decoder=dec, progress=False)  # fmt: skip
    assert (tmp_path / "~v.gif").is_file() and (tmp_path / "~r" / "manifest.json").is_file()
    with pytest.raises(SpecError, match=r"spec file '~nouser/a.toml' does not exist"):
        load_spec("~nouser/a.toml")
    spec = load_spec({"keyframes": [{"text": "a"}, {"text": "b"}]})
    assert spec.save("~nouser/s.toml").resolve() == tmp_path / "~nouser" / "s.toml"


def test_a_path_holding_a_nul_character_is_an_argument_error_everywhere(tmp_path, tiny_encoder):
    """No file name holds a NUL character; open() raised a bare "ValueError: embedded null byte"
    (write_video, save_frames, a spec saved there), or the file was said to be missing."""
    import latentlab as ll
    from latentlab.errors import user_path
    from latentlab.video import save_frames

    frames = np.zeros((2, 8, 8, 3), np.uint8)
    spec = load_spec({"keyframes": [{"text": "a"}, {"text": "b"}]})
    for call in (lambda: user_path("a\x00.png"), lambda: user_path(b"a\x00"), lambda: ll.write_video(frames, tmp_path / "a\x00.gif"),
                 lambda: save_frames(frames, tmp_path / "d\x00"), lambda: spec.save(tmp_path / "s\x00.toml"),
                 lambda: tiny_encoder.encode_image(str(tmp_path / "a\x00.png"))):  # fmt: skip
        with pytest.raises(ArgumentError, match=r"holds a NUL character"):
            call()
    assert list(tmp_path.iterdir()) == []


# -- found by the property audit of 2026-12-07: render_spec's jobs (sheets, folders, refusals, caches) ------

JOB_PROPS = settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _spec(images, **kw):
    return {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}], **kw}  # fmt: skip


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- the bugs ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [0, -1, 2.5, "12", True])
def test_a_bad_sheet_frames_is_refused_before_any_work(tmp_path, images, bad):
    """render_spec(sheet_frames=...) was not checked: 0, -1, 2.5 or "12" failed with a raw
    ValueError / TypeError only after every frame and the video were written."""
    out = tmp_path / "r"
    with pytest.raises(ArgumentError, match=r"sheet_frames must be an integer >= 1, got"):
        ll.render_spec(_spec(images), out_dir=out, progress=False, sheet_frames=bad)
    assert not out.exists() and not (tmp_path / "r.gif").exists()


def test_the_video_of_a_render_folder_named_with_dot_dot_goes_beside_it(tmp_path):
    """video_path("x/..") was "x/...mp4" (with --out-dir .., "...mp4" in the current folder,
    inside the render folder), not the folder's own "<folder>.mp4" beside it."""
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    assert jobs.video_path(tmp_path / "proj" / "sub" / "..", "mp4") == tmp_path.resolve() / "proj.mp4"
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path / "proj" / "sub")
        assert jobs.video_path("..", "gif") == tmp_path.resolve() / "proj.gif"
        assert jobs.video_path(".", "gif") == tmp_path.resolve() / "proj" / "sub.gif"  # (as before)
    finally:
        os.chdir(cwd)


def test_the_pacing_key_reads_eta_0_and_a_whole_tol_as_the_render_does(images, fake_decoder):
    """eta = 0 spelt out (the default, the same render for _frame_settings and render()) and
    pacing_tol = 1 beside 1.0 changed the pacing cache's key: the render measured its pacing again
    and threw away the pictures pacing_partial.pt held."""
    dec = fake_decoder
    base = _spec(images, pacing="even")
    traj = ll.Trajectory.interpolate(*torch.eye(32)[:2].split(1), frames=3)

    def key(**kw):
        return jobs._pacing_key(load_spec({**base, **kw}), traj, dec, None)

    assert key() == key(eta=0) == key(eta=0.0)
    assert key(pacing_tol=1) == key(pacing_tol=1.0) != key() and key(pacing_tol=0) == key(pacing_tol=0.0)
    assert key(eta=0.5) != key() and key(eta=1) == key(eta=1.0) != key(eta=0.5)  # a real eta still counts


def test_a_top_level_setting_every_segment_overrides_is_not_a_different_render(tmp_path, images):
    """A spec whose keyframes each set their own frames (or easing) draws the same frames whatever
    its top-level default says, but changing that default was refused as "a different render
    (frames 3 -> 5; the keyframes)"; a real change is still refused and named."""
    out = tmp_path / "r"
    kfs = [{"image": str(images[0])}, {"image": str(images[1]), "frames": 3, "easing": "linear"}]
    first = ll.render_spec(_spec(images, keyframes=kfs), out_dir=out, progress=False)
    times = _frame_times(out)
    again = ll.render_spec(_spec(images, keyframes=kfs, frames=5, easing="ease-in-out"), out_dir=out, progress=False)
    assert np.array_equal(again.frames, first.frames) and _frame_times(out) == times
    ll.render_spec(_spec(images), out_dir=tmp_path / "plain", progress=False)
    with pytest.raises(ArgumentError, match=r"holds a different render \(frames 3 -> 4;"):
        ll.render_spec(_spec(images, frames=4), out_dir=tmp_path / "plain", progress=False)
    more = [kfs[0], {**kfs[1], "frames": 4}]
    with pytest.raises(ArgumentError, match=r"holds a different render \(the keyframes; video settings"):
        ll.render_spec(_spec(images, keyframes=more, frames=5), out_dir=out, progress=False)


@pytest.mark.parametrize("noise", ["shared", "per-frame"])
def test_a_keyframe_seed_that_draws_nothing_is_not_a_different_render(tmp_path, images, noise):
    """With shared or per-frame noise a keyframe's own seed draws nothing (render() leaves it out
    of its fingerprint), but adding one was refused as "a different render (the keyframes)";
    with slerp noise it draws that keyframe's noise and is still refused."""
    out = tmp_path / "r"
    first = ll.render_spec(_spec(images, noise=noise), out_dir=out, progress=False)
    times = _frame_times(out)
    seeded = [{"image": str(images[0]), "seed": 7}, {"image": str(images[1]), "seed": 8}]
    again = ll.render_spec(_spec(images, noise=noise, keyframes=seeded), out_dir=out, progress=False)
    assert np.array_equal(again.frames, first.frames) and _frame_times(out) == times
    ll.render_spec(_spec(images, noise="slerp"), out_dir=tmp_path / "s", progress=False)
    with pytest.raises(ArgumentError, match=r"holds a different render \(the keyframes;"):
        ll.render_spec(_spec(images, noise="slerp", keyframes=seeded), out_dir=tmp_path / "s", progress=False)


def test_a_text_keyframes_seed_is_a_different_render_under_any_noise(tmp_path):
    """A text keyframe's seed picks its prior sample under any noise: a change of it is refused
    as a change of the keyframes (the first version of the seed rule above dropped it, and the
    refusal blamed other pictures or another encoder)."""
    spec = {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif", "keyframes": [{"text": "a cat"}, {"text": "a dog"}]}
    ll.render_spec(spec, out_dir=tmp_path / "r", progress=False)
    seeded = {**spec, "keyframes": [{"text": "a cat", "seed": 7}, {"text": "a dog"}]}
    with pytest.raises(ArgumentError, match=r"holds a different render \(the keyframes;"):
        ll.render_spec(seeded, out_dir=tmp_path / "r", progress=False)


def test_a_refused_render_leaves_no_record_of_its_keyframes_in_a_folder_without_one(tmp_path, images):
    """A folder with a manifest and no keyframes.json (an older latentlab's): a render of another
    picture under the same path, refused by render(), wrote its own fingerprint there first, so
    the folder's own render, once the picture was restored, was refused "of other keyframe
    pictures"."""
    import shutil

    out = tmp_path / "r"
    first = ll.render_spec(_spec(images), out_dir=out, progress=False)
    (out / "keyframes.json").unlink()
    shutil.copy(images[1], tmp_path / "orig.png")
    ll.save_image(np.full((64, 64, 3), 90, np.uint8), images[1])
    before = _files(out)
    with pytest.raises(ArgumentError, match="holds a different render"):
        ll.render_spec(_spec(images), out_dir=out, progress=False)
    assert _files(out) == before
    shutil.copy(tmp_path / "orig.png", images[1])
    times = _frame_times(out)
    again = ll.render_spec(_spec(images), out_dir=out, progress=False)
    assert np.array_equal(again.frames, first.frames) and _frame_times(out) == times
    assert set(json.loads((out / "keyframes.json").read_text())) == {"fingerprint"}  # recorded once render() agreed


def test_a_contact_sheet_of_large_frames_resizes_each_shown_frame_once_to_its_tile(monkeypatch):
    """contact_sheet_of(frames, size=4096) resized the shown frames to 4096 x 4096 first (50 MB
    each: 800 MB for a 16-picture `variations --size 4096`), then shrank them to 1024: each is now
    resized once, straight to its tile, and the sheet is as before (its shape, its pixels within
    the rounding of one resize)."""
    from latentlab import video

    calls = []
    real = video._lanczos

    def spy(frame, width, height):
        calls.append((frame.shape[:2], (height, width)))
        return real(frame, width, height)

    monkeypatch.setattr(video, "_lanczos", spy)
    monkeypatch.setattr(jobs, "SHEET_TILE_MAX", 24)
    frames = np.random.default_rng(0).integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    sheet = jobs.contact_sheet_of(frames, 64, 4)
    assert calls == [((16, 16), (24, 24))] * 4
    assert sheet.shape == (2 * 24 + 3 * 2, 2 * 24 + 3 * 2, 3)
    calls.clear()
    wide = np.zeros((2, 30, 60, 3), np.uint8)
    assert jobs.contact_sheet_of(wide, None).shape == (12 + 2 * 2, 2 * 24 + 3 * 2, 3) and calls == [((30, 60), (12, 24))] * 2


@pytest.mark.parametrize("kw", [{"out_dir": ""}, {"out_dir": "  "}, {"out_dir": 123}, {"out_dir": b"r"}, {"output": 123},
                                {"output": ""}])  # fmt: skip
def test_render_spec_refuses_an_empty_or_non_path_out_dir_or_output(tmp_path, images, monkeypatch, kw):
    """render_spec(out_dir="") rendered into the current folder (frames, manifest and a video
    "../<folder>.gif" beside it) where a spec's out_dir = "", the CLI's empty --out-dir and
    render(out_dir="") are refused; out_dir=123 or output=123 was a raw TypeError."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    name = next(iter(kw))
    with pytest.raises(ArgumentError, match=rf"^{name} must be a non-empty path"):
        ll.render_spec(_spec(images), progress=False, **kw)
    assert not list(work.iterdir()) and not (tmp_path / "work.gif").exists()


# -- properties kept (they pass on the old code too) ----------------------------------------------


@JOB_PROPS
@given(st.text(max_size=120))
def test_slug_is_a_safe_nonempty_folder_name(name):
    """Any name makes a folder name: non-empty, at most 60 characters, letters (with their marks),
    digits and single dashes only, no dash at its start, writable by the file system."""
    s = jobs.slug(name)
    assert s and len(s) <= 60 and not s.startswith("-") and "--" not in s
    assert all(c.isalnum() or c == "-" or unicodedata.category(c)[0] == "M" for c in s)
    assert s not in (".", "..") and "/" not in s and os.sep not in s
    os.fsencode(s)
    assert jobs.slug(s) == s or s == "render"  # a slug is its own slug


@JOB_PROPS
@given(st.integers(1, 30), st.integers(1, 40), st.integers(1, 40), st.one_of(st.none(), st.integers(8, 48)),
       st.one_of(st.none(), st.integers(1, 40)))  # fmt: skip
def test_contact_sheet_of_any_frames_has_the_documented_shape(t, h, w, size, max_frames):
    """contact_sheet_of: min(T, max_frames) tiles of the video's size (native without one),
    columns ceil(sqrt(n)), padded by 2 (contact_sheet's layout)."""
    import math

    frames = np.random.default_rng(t * h * w).integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    sheet = jobs.contact_sheet_of(frames, size, max_frames)
    n = t if max_frames is None else min(t, max_frames)
    th, tw = (h, w) if size is None else (size, size)
    c = math.ceil(math.sqrt(n))
    r = math.ceil(n / c)
    assert sheet.dtype == np.uint8 and sheet.shape == (r * th + (r + 1) * 2, c * tw + (c + 1) * 2, 3)
    resized = jobs.resize_frames(frames, size)
    assert resized.shape == (t, th, tw, 3) and resized.dtype == np.uint8


@JOB_PROPS
@given(st.lists(st.tuples(st.integers(0, 5), st.floats(0, 1, exclude_max=True)), min_size=1, max_size=8, unique=True),
       st.booleans())  # fmt: skip
def test_a_pacing_checkpoint_reads_back_what_it_saved_and_no_other_keys(tmp_path_factory, points, pixel):
    """_PacingCheckpoint: what it saved is read back, point for point and bit for bit (pixel:
    numpy uint8 (1, H, W, 3); clip: torch (1, d)), under the same key only; another key's file
    is dropped, not loaded."""
    path = tmp_path_factory.mktemp("cp") / jobs.PACING_PARTIAL
    rng = np.random.default_rng(len(points))
    cp = jobs._PacingCheckpoint(path, "key-a")
    for p in points:
        cp[p] = (rng.integers(0, 256, (1, 4, 5, 3), dtype=np.uint8) if pixel
                 else torch.from_numpy(rng.standard_normal((1, 6)).astype(np.float32)))  # fmt: skip
    cp.save()
    back = jobs._PacingCheckpoint(path, "key-a")
    assert set(back) == set(cp)
    for p in cp:
        assert type(back[p]) is type(cp[p]) and back[p].shape == cp[p].shape
        assert np.array_equal(np.asarray(back[p]), np.asarray(cp[p]))
    assert len(jobs._PacingCheckpoint(path, "key-b")) == 0 and not path.exists()


def test_a_recorded_video_round_trips_and_a_changed_one_is_refused_untouched(tmp_path):
    """_record_video then _refuse_unrecorded_video: the folder's own video is accepted (also
    with only its time changed); another file there, or the same name changed, is refused and
    nothing in either folder changes."""
    out, video = tmp_path / "r", tmp_path / "mine.gif"
    video.write_bytes(b"GIF89a first")
    jobs._record_video(video, out)
    jobs._refuse_unrecorded_video(video, out, overwrite=False)
    st_ = video.stat()
    os.utime(video, ns=(st_.st_atime_ns, st_.st_mtime_ns + 7_000_000_000))
    jobs._refuse_unrecorded_video(video, out, overwrite=False)  # (same bytes: its hash says so)
    video.write_bytes(b"GIF89a other")
    before = _files(tmp_path)
    with pytest.raises(ArgumentError, match="was changed or replaced since this render wrote it"):
        jobs._refuse_unrecorded_video(video, out, overwrite=False)
    assert _files(tmp_path) == before
    other = tmp_path / "yours.gif"
    other.write_bytes(b"GIF89a yours")
    before = _files(tmp_path)
    with pytest.raises(ArgumentError, match="was not written by the render in"):
        jobs._refuse_unrecorded_video(other, out, overwrite=False)
    assert _files(tmp_path) == before
    jobs._refuse_unrecorded_video(other, out, overwrite=True)
    assert json.loads((out / jobs.VIDEOS_FILE).read_text())["videos"].keys() == {"../mine.gif"}


@pytest.mark.parametrize("name", ["embeddings.npy", "contact_sheet.png", "keyframes.json", "pacing.json",
                                  "pacing_partial.pt", "keyframe_noise.pt", "videos.json", "frame_00000.png"])  # fmt: skip
def test_a_folder_refused_for_a_users_file_is_left_as_it_was(tmp_path, images, name):
    """A folder without a manifest holding a user's file of a render's names: refused by
    render_spec before any work, every file in it unchanged, nothing added."""
    out = tmp_path / "r"
    out.mkdir()
    (out / name).write_bytes(b"mine")
    (out / "notes.txt").write_text("keep")
    before = _files(out)
    with warnings.catch_warnings(), pytest.raises(ArgumentError, match="overwrite"):
        warnings.simplefilter("ignore")
        ll.render_spec(_spec(images), out_dir=out, progress=False)
    assert _files(out) == before and not (tmp_path / "r.gif").exists()


def test_a_spec_file_path_holding_a_nul_is_a_spec_error():
    """docs/spec.md: every error of a spec as it loads is a SpecError; a spec (or trajectory)
    file named with a NUL was a SpecError ("does not exist") before user_path refused NUL,
    then a plain ArgumentError that `except SpecError` missed."""
    with pytest.raises(SpecError, match=r"spec file: .*NUL"):
        ll.load_spec("a\x00b.toml")
    with pytest.raises(SpecError, match=r"trajectory file: .*NUL"):
        ll.Trajectory.load("a\x00b.json")


def test_a_keyframe_seed_spelt_at_its_default_is_the_same_render(tmp_path):
    """docs/spec.md: a setting written another way is the same render. A text keyframe's seed
    defaults to the spec's ``seed`` (its prior sample), and under slerp noise a keyframe's seed
    defaults to ``seed + i``: spelling either out draws the same frames, which resume (before:
    refused as "a different render (the keyframes)", since the seed rule of 641f410)."""
    import latentlab as ll

    spec = {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif", "seed": 5,
            "keyframes": [{"text": "a cat"}, {"text": "a dog"}]}  # fmt: skip
    first = ll.render_spec(spec, out_dir=tmp_path / "r", progress=False)
    spelt = {**spec, "keyframes": [{"text": "a cat", "seed": 5}, {"text": "a dog"}]}
    assert (ll.render_spec(spelt, out_dir=tmp_path / "r", progress=False).frames == first.frames).all()
    slerp = {**spec, "noise": "slerp"}
    first = ll.render_spec(slerp, out_dir=tmp_path / "s", progress=False)
    spelt = {**slerp, "keyframes": [{"text": "a cat", "seed": 5}, {"text": "a dog"}]}  # prior and noise: 5 + 0
    assert (ll.render_spec(spelt, out_dir=tmp_path / "s", progress=False).frames == first.frames).all()
    spelt = {**slerp, "keyframes": [{"text": "a cat"}, {"text": "a dog", "seed": 5}]}  # prior: 5; noise: 5 + 1
    with pytest.raises(ll.errors.ArgumentError, match=r"holds a different render \(the keyframes;"):
        ll.render_spec(spelt, out_dir=tmp_path / "s", progress=False)


# -- render_spec: the inverted keyframe noise cache, interrupted --------------------------------


@pytest.mark.parametrize("exc", ["ctrl-c", "full disk"])
def test_an_interrupted_save_of_the_inverted_noise_leaves_no_temporary_file(tmp_path, monkeypatch, images, exc,
                                                                           tiny_encoder, tiny_decoder):  # fmt: skip
    """``keyframe_noise.pt`` is written to a temporary name and renamed; stopped in between (or
    the disk full while torch wrote it) the partial temporary file stayed in the render folder
    (on a full disk, taking space), where every other write of a render removes its own."""
    from latentlab.jobs import keyframe_noise
    from latentlab.spec import load_spec

    enc, dec = tiny_encoder, tiny_decoder
    spec = load_spec({"preset": "tiny", "steps": 1, "noise": "inverted",
                      "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]})  # fmt: skip
    traj = spec.resolve(enc)
    want = keyframe_noise(spec, traj, dec)
    real = torch.save

    def cut(obj, f, *args, **kwargs):
        real(obj, f, *args, **kwargs)
        raise write_fault(exc)

    with monkeypatch.context() as m:
        m.setattr(torch, "save", cut)
        with pytest.raises(KeyboardInterrupt if exc == "ctrl-c" else OSError):
            keyframe_noise(spec, traj, dec, directory=tmp_path / "r")
    assert list((tmp_path / "r").iterdir()) == []
    assert torch.equal(keyframe_noise(spec, traj, dec, directory=tmp_path / "r"), want)
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["keyframe_noise.pt"]


# -- caches and seeds of render_spec, second pass (2026-12-07) --------------------------------


def _pictures(folder: Path) -> list[Path]:
    from PIL import Image

    paths = []
    for i, colour in enumerate([(200, 30, 30), (30, 40, 220)]):
        im = Image.new("RGB", (32, 32), (255, 255, 255))
        im.paste(colour, (6 + 4 * i, 6, 26, 26 - 4 * i))
        paths.append(folder / f"{i}.png")
        im.save(paths[-1])
    return paths


def _inverted_spec(paths: list[Path], **kw) -> object:
    return load_spec({"preset": "mini", "steps": 2, "noise": "inverted", "invert_refine": 0,
                      "keyframes": [{"image": str(p)} for p in paths], **kw})  # fmt: skip


def _keyframes(dim: int, n: int = 2) -> SimpleNamespace:
    g = torch.Generator("cpu").manual_seed(0)
    return SimpleNamespace(keyframes=torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1))


# -- a decoder's inversion settings are in the inverted noise's cache key ---------------------


@pytest.fixture(scope="module")
def karlo_dec():
    from latentlab.decoders import karlo

    return karlo.KarloDecoder(karlo.tiny_karlo_pipeline(dim=32), name="t", space="tiny", dim=32, super_res_steps=2,
                              scheduler="ddim", default_steps=2, default_guidance=1.0)  # fmt: skip


@pytest.mark.parametrize("setting, value", [("inversion_iterations", 0), ("inversion_inset", 0.9)])
def test_karlo_inversion_settings_are_in_the_inverted_noise_cache_key(karlo_dec, tmp_path, setting, value):
    """Karlo's inversion_iterations and inversion_inset change what invert() returns: a folder's
    keyframe_noise.pt inverted with other values was reused (its render resumed with the old
    noise, or an overwrite rendered from it)."""
    spec, traj = _inverted_spec(_pictures(tmp_path)), _keyframes(32)
    first = jobs.keyframe_noise(spec, traj, karlo_dec, directory=tmp_path / "r")
    old = getattr(karlo_dec, setting)
    setattr(karlo_dec, setting, value)
    try:
        again = jobs.keyframe_noise(spec, traj, karlo_dec, directory=tmp_path / "r")
        fresh = jobs.keyframe_noise(spec, traj, karlo_dec)
    finally:
        setattr(karlo_dec, setting, old)
    assert not torch.equal(fresh, first) and torch.equal(again, fresh)


def test_karlo_inversion_settings_at_their_defaults_keep_the_cache(karlo_dec, tmp_path, monkeypatch):
    """Spelt out at their defaults (1 and 1.0 alike), the settings reuse the folder's noise: the
    caches of renders made before the settings were keyed stay valid."""
    spec, traj = _inverted_spec(_pictures(tmp_path)), _keyframes(32)
    first = jobs.keyframe_noise(spec, traj, karlo_dec, directory=tmp_path / "r")
    monkeypatch.setattr(karlo_dec, "inversion_iterations", 1.0, raising=False)
    monkeypatch.setattr(karlo_dec, "inversion_inset", 0.98, raising=False)
    monkeypatch.setattr(karlo_dec, "_invert", lambda *a, **k: pytest.fail("inverted again"))
    assert torch.equal(jobs.keyframe_noise(spec, traj, karlo_dec, directory=tmp_path / "r"), first)


def test_mini_inversion_settings_are_in_the_inverted_noise_cache_key(tmp_path):
    """mini's inversion_iterations, and its refine_lr where the noise is refined, change the
    inverted noise: other values invert again. refine_lr without refining changes nothing and
    keeps the cache."""
    dec = tiny_mini_decoder()
    paths, traj = _pictures(tmp_path), _keyframes(dec.dim)
    spec = _inverted_spec(paths)
    first = jobs.keyframe_noise(spec, traj, dec, directory=tmp_path / "r")
    dec.refine_lr = 0.2  # not refined (invert_refine = 0): the same noise, reused
    assert torch.equal(jobs.keyframe_noise(spec, traj, dec, directory=tmp_path / "r"), first)
    dec.inversion_iterations = 0
    again = jobs.keyframe_noise(spec, traj, dec, directory=tmp_path / "r")
    assert not torch.equal(again, first) and torch.equal(again, jobs.keyframe_noise(spec, traj, dec))
    refined = _inverted_spec(paths, invert_refine=1)
    kn = jobs.keyframe_noise(refined, traj, dec, directory=tmp_path / "r")
    dec.refine_lr = 0.5
    other = jobs.keyframe_noise(refined, traj, dec, directory=tmp_path / "r")
    assert not torch.equal(other, kn) and torch.equal(other, jobs.keyframe_noise(refined, traj, dec))


# -- a keyframe seed that changes no frame does not measure the pacing again ------------------


@pytest.fixture(scope="module")
def two_pictures(tmp_path_factory):
    return _pictures(tmp_path_factory.mktemp("pictures"))


@settings(derandomize=True, max_examples=12, deadline=None)
@given(noise=st.sampled_from(["shared", "slerp", "inverted"]), seed=st.integers(0, 5),
       kf_seed=st.integers(-3, 9), at=st.integers(0, 1))  # fmt: skip
def test_an_image_keyframes_seed_counts_in_the_pacing_key_only_where_it_draws_noise(tiny_decoder, two_pictures, noise,
                                                                                   seed, kf_seed, at):  # fmt: skip
    """docs/spec.md: a keyframe's seed counts only for a text keyframe (its prior sample, in the
    trajectory) or where it seeds the keyframe's noise (noise = "slerp", or "inverted" but for an
    image, whose noise is inverted). With "shared" noise (pacing refuses "per-frame") or an image
    under "inverted" the seed drew nothing, yet changed pacing.json's key (a render resumed, but
    measured its pacing again); at its default (seed + i) it is the default everywhere."""
    from latentlab.jobs import _pacing_key

    traj = ll.Trajectory.interpolate(*torch.eye(32)[:2].split(1), frames=3)
    plain = [{"image": str(p)} for p in two_pictures]
    seeded = [dict(kf) for kf in plain]
    seeded[at]["seed"] = kf_seed

    def key(kfs):
        spec = load_spec({"preset": "tiny", "steps": 2, "pacing": "even", "seed": seed, "noise": noise, "keyframes": kfs})
        return _pacing_key(spec, traj, tiny_decoder, None)

    draws = noise == "slerp" and kf_seed != seed + at  # (under "inverted" an image's noise is inverted: kn says it)
    assert (key(seeded) != key(plain)) == draws


def test_a_keyframe_seed_that_draws_nothing_does_not_pace_again(tmp_path):
    """End to end: the same render with an image keyframe's seed added under shared noise resumes
    without a decode (its pacing.json reused, not measured again)."""
    paths = _pictures(tmp_path)
    spec = {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif", "pacing": "even",
            "keyframes": [{"image": str(p)} for p in paths]}  # fmt: skip
    enc, dec = ll.create_encoder("tiny"), ll.create_decoder("tiny")
    first = ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec)
    paced = (tmp_path / "r" / "pacing.json").read_text()
    calls = []
    real = dec.decode
    dec.decode = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        kfs = [spec["keyframes"][0], {**spec["keyframes"][1], "seed": 7}]
        again = ll.render_spec({**spec, "keyframes": kfs}, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec)
    finally:
        del dec.decode
    assert calls == [] and np.array_equal(again.frames, first.frames)
    assert (tmp_path / "r" / "pacing.json").read_text() == paced


def _inverted_job(paths, second, **kw):
    return {"preset": "tiny", "steps": 2, "frames": 2, "format": "gif", "noise": "inverted", "pacing": "even",
            "keyframes": [{"image": str(paths[0])}, second], **kw}  # fmt: skip


_TD = {"text_diff": {"from": "a red circle", "to": "a blue circle", "theta": 0.4}}


def test_a_text_diffs_seed_under_inverted_noise_is_refused_before_the_caches_are_replaced(tmp_path):
    """Under noise = "inverted" a text_diff keyframe without a seed shares the noise of the keyframe
    it edits; its seed spelt at seed + i draws its own. The early check took that seed for the
    default: the folder's keyframe_noise.pt and pacing.json were computed again and replaced, then
    render() refused the render (naming "a picture changed"). Now it is refused first, naming the
    keyframes, and nothing in the folder changes."""
    paths = _pictures(tmp_path)
    enc, dec = ll.create_encoder("tiny"), ll.create_decoder("tiny")
    out = tmp_path / "r"
    ll.render_spec(_inverted_job(paths, _TD), out_dir=out, progress=False, encoder=enc, decoder=dec)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ArgumentError, match=r"different render \(the keyframes;"):
        ll.render_spec(_inverted_job(paths, {**_TD, "seed": 1}), out_dir=out, progress=False, encoder=enc, decoder=dec)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_image_keyframes_seed_under_inverted_noise_resumes(tmp_path):
    """An image keyframe's noise is inverted from the picture, so under noise = "inverted" its seed
    draws nothing: the render resumes (render() itself found it the same render, but the early check
    refused it), without pacing or drawing a frame again (its pictures are inverted again, to the
    same noise: keyframe_noise.pt's key holds the keyframes as written)."""
    paths = _pictures(tmp_path)
    enc, dec = ll.create_encoder("tiny"), ll.create_decoder("tiny")
    out = tmp_path / "r"
    first = ll.render_spec(_inverted_job(paths, {"image": str(paths[1])}), out_dir=out, progress=False, encoder=enc,
                           decoder=dec)  # fmt: skip
    calls = []
    real = dec.decode
    dec.decode = lambda *a, **k: calls.append(1) or real(*a, **k)
    try:
        again = ll.render_spec(_inverted_job(paths, {"image": str(paths[1]), "seed": 9}), out_dir=out, progress=False,
                               encoder=enc, decoder=dec)  # fmt: skip
    finally:
        del dec.decode
    assert calls == [] and np.array_equal(again.frames, first.frames)


# -- an overwrite stopped before its render leaves the folder's render resumable --------------


def test_an_overwrite_stopped_while_pacing_leaves_the_folders_render_resumable(tmp_path, monkeypatch):
    """render_spec(other, overwrite=True) recorded the other keyframes (keyframes.json) before
    render() replaced the folder's render; stopped while pacing, the folder held the old frames
    and manifest under the new record, and the old render's own rerun was refused as "of other
    keyframe pictures". Now the record is written once the render is replaced; stopped after
    that (while rendering), the new render resumes."""
    paths = _pictures(tmp_path)
    a = {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif", "pacing": "even",
         "keyframes": [{"image": str(p)} for p in paths]}  # fmt: skip
    b = {**a, "keyframes": a["keyframes"][::-1]}
    enc, dec = ll.create_encoder("tiny"), ll.create_decoder("tiny")
    out = tmp_path / "r"
    first = ll.render_spec(a, out_dir=out, progress=False, encoder=enc, decoder=dec)
    recorded = (out / "keyframes.json").read_text()

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(jobs, "pace_spec", stop)
        with pytest.raises(KeyboardInterrupt):
            ll.render_spec(b, out_dir=out, progress=False, encoder=enc, decoder=dec, overwrite=True)
    assert not (out / "keyframes.json").exists() or (out / "keyframes.json").read_text() == recorded
    again = ll.render_spec(a, out_dir=out, progress=False, encoder=enc, decoder=dec)
    assert np.array_equal(again.frames, first.frames) and (out / "keyframes.json").read_text() == recorded
    # stopped while rendering (the folder's render replaced): the new render resumes, and is recorded
    real = dec.decode
    with monkeypatch.context() as m:
        m.setattr(dec, "decode", lambda *a, **k: stop() if len(a[0]) == 1 else real(*a, **k), raising=False)
        b1 = {**b, "pacing": "uniform", "batch_size": 1}
        with pytest.raises(KeyboardInterrupt):
            ll.render_spec(b1, out_dir=out, progress=False, encoder=enc, decoder=dec, overwrite=True)
    done = ll.render_spec(b1, out_dir=out, progress=False, encoder=enc, decoder=dec)
    assert json.loads((out / "keyframes.json").read_text())["fingerprint"] == done.trajectory.fingerprint()
    with pytest.raises(ArgumentError, match="different render"):
        ll.render_spec(a, out_dir=out, progress=False, encoder=enc, decoder=dec)


# -- spec.dump_file ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".json", ".toml"])
@pytest.mark.parametrize("data", [[1, 2], "x", 3, None])
def test_dump_file_refuses_data_a_spec_file_cannot_be_read_back_as(tmp_path, suffix, data):
    """A list (or any non-dict) was written as JSON that load_file then refuses ("must hold a
    table/object at the top level"), and as TOML raised a raw AttributeError: an ArgumentError
    naming data, and no file."""
    from latentlab.errors import ArgumentError
    from latentlab.spec import dump_file

    target = tmp_path / f"s{suffix}"
    with pytest.raises(ArgumentError, match=r"data must be a dict .*Fix: pass a dict"):
        dump_file(data, target)
    assert not target.exists()


def test_dump_file_of_a_dict_reads_back_the_same(tmp_path):
    from latentlab.spec import dump_file, load_file

    data = {"preset": "tiny", "fps": 12, "keyframes": [{"text": "a"}, {"text": "b"}]}
    for suffix in (".json", ".toml"):
        assert load_file(dump_file(data, tmp_path / f"s{suffix}")) == data
