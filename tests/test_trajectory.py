from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import latentlab as ll
from latentlab import ops
from latentlab.edit import _iterate
from latentlab.errors import ArgumentError, SpaceError, SpecError
from latentlab.pacing import _inverse_cumulative, _split_budget, even_pacing, pacing_stats
from latentlab.render import render
from latentlab.spec import MAX_FRAMES, load_spec
from latentlab.space import space_of, tag
from latentlab.trajectory import EASINGS, METHODS, Segment, Trajectory, ease, split_frames


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g), dim=-1)


def test_interpolate_endpoints_count_and_norm():
    a, b = unit(1, 16, seed=1), unit(1, 16, seed=2)
    z = Trajectory.interpolate(a, b, frames=10).embeddings()
    assert z.shape == (10, 16)
    assert torch.allclose(z[0], a[0], atol=1e-6)
    assert torch.allclose(z[-1], b[0], atol=1e-6)
    assert torch.allclose(z.norm(dim=-1), torch.ones(10), atol=1e-5)


def test_interpolate_constant_angular_steps():
    a, b = unit(1, 16, seed=3), unit(1, 16, seed=4)
    z = Trajectory.interpolate(a, b, frames=9).embeddings()
    steps = torch.acos((z[1:] * z[:-1]).sum(-1).clamp(-1, 1))
    assert torch.allclose(steps, steps.mean().expand_as(steps), atol=1e-4)


def test_text_diff_path_follows_the_paper():
    img, src, dst = unit(1, 32, seed=5), unit(1, 32, seed=6), unit(1, 32, seed=7)
    theta = 0.4
    path = Trajectory.text_diff(img, src, dst, theta=theta, frames=11)
    z = path.embeddings()
    z_d = torch.nn.functional.normalize(dst - src, dim=-1)
    expected = ops.slerp(img, z_d, torch.linspace(0, 1, 11) * theta)
    assert torch.allclose(z, expected, atol=1e-5)
    # the similarity to the diff direction rises monotonically
    sims = (z @ z_d.T).flatten()
    assert (sims[1:] > sims[:-1]).all()


def test_text_diff_needs_a_source_caption():
    with pytest.raises(ArgumentError, match="a photo"):
        Trajectory.text_diff(unit(1, 8), None, unit(1, 8, seed=1))


def test_chain_frames_and_keyframe_indices():
    kfs = [unit(1, 8, seed=i) for i in range(4)]
    path = Trajectory.chain(kfs, frames=[3, 5, 2])
    assert len(path) == 3 + 5 + 2 + 1
    z = path.embeddings()
    assert path.keyframe_indices() == [0, 3, 8, 10]
    for i, k in zip(path.keyframe_indices(), kfs):
        assert torch.allclose(z[i], k[0], atol=1e-6)
    # per-segment counts as an array or tensor, as a list (an audit: they were refused)
    import numpy as np

    for counts in (np.array([3, 5, 2]), torch.tensor([3, 5, 2])):
        assert Trajectory.chain(kfs, frames=counts).keyframe_indices() == [0, 3, 8, 10]
    # easing=None was a bare "'NoneType' object is not iterable"
    # any sequence of names, as list() took them before: a generator, a numpy array
    easings = ("linear", "ease-in", "ease-out")
    want = Trajectory.chain(kfs, frames=[3, 5, 2], easing=list(easings)).embeddings()
    for names in ((e for e in easings), np.array(easings)):
        assert torch.equal(Trajectory.chain(kfs, frames=[3, 5, 2], easing=names).embeddings(), want)
    for bad in (None, 3, ["linear", None, "linear"]):
        with pytest.raises(ArgumentError, match="easing must be a name from"):
            Trajectory.chain(kfs, frames=[3, 5, 2], easing=bad)


def test_total_frames_split_evenly():
    assert split_frames(48, 1) == [47]
    assert split_frames(11, 3) == [4, 3, 3]
    assert sum(split_frames(100, 7)) == 99
    with pytest.raises(ArgumentError, match="too few"):
        split_frames(2, 3)


def test_easing_slows_the_ends():
    a, b = unit(1, 8, seed=1), unit(1, 8, seed=2)
    z = Trajectory.interpolate(a, b, frames=21, easing="ease-in-out").embeddings()
    steps = torch.acos((z[1:] * z[:-1]).sum(-1).clamp(-1, 1))
    assert steps[0] < steps[10] / 3 and steps[-1] < steps[10] / 3
    # the angles still add up to the whole arc
    assert math.isclose(float(steps.sum()), float(torch.acos((a * b).sum())), rel_tol=1e-4)


def test_hold_repeats_the_start_keyframe():
    a, b = unit(1, 8, seed=1), unit(1, 8, seed=2)
    path = Trajectory(torch.cat([a, b]), [Segment(4, hold=3)])
    z = path.embeddings()
    assert len(path) == 8 and z.shape[0] == 8
    assert torch.allclose(z[:4], a.expand(4, -1), atol=1e-6)
    assert path.keyframe_indices() == [3, 7]


def test_explicit_ts_override_frames():
    a, b = unit(1, 8, seed=1), unit(1, 8, seed=2)
    path = Trajectory(torch.cat([a, b]), [Segment(1, ts=[0.0, 0.1, 0.5])])
    assert len(path) == 4
    assert torch.allclose(path.embeddings()[2], ops.slerp(a, b, 0.5)[0], atol=1e-6)


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_save_load_round_trip(tmp_path, suffix):
    kfs = [tag(unit(1, 12, seed=i), "space-x") for i in range(3)]
    path = Trajectory.chain(kfs, frames=[4, 6], easing=["linear", "ease-in"], labels=["a", "b", "c"])
    f = path.save(tmp_path / f"path{suffix}")
    back = Trajectory.load(f)
    assert back.space == "space-x" and back.labels == ["a", "b", "c"]
    assert torch.equal(back.embeddings(), path.embeddings())
    assert back.fingerprint() == path.fingerprint()
    assert space_of(back.embeddings()) == "space-x"


def test_fingerprint_changes_with_content():
    a, b, c = unit(1, 8, seed=1), unit(1, 8, seed=2), unit(1, 8, seed=3)
    assert Trajectory.interpolate(a, b).fingerprint() != Trajectory.interpolate(a, c).fingerprint()
    assert Trajectory.interpolate(a, b, frames=5).fingerprint() != Trajectory.interpolate(a, b, frames=6).fingerprint()


def test_errors_are_clear():
    a = unit(1, 8)
    with pytest.raises(ArgumentError, match="at least two keyframes"):
        Trajectory(a)
    with pytest.raises(SpaceError, match="different CLIP spaces"):
        Trajectory.interpolate(tag(unit(1, 8), "x"), tag(unit(1, 8, seed=1), "y"))
    with pytest.raises(SpaceError, match="sizes"):
        Trajectory.interpolate(unit(1, 8), unit(1, 9))
    with pytest.raises(ArgumentError, match="easing"):
        Trajectory.interpolate(a, unit(1, 8, seed=1), easing="bouncy")
    with pytest.raises(ArgumentError, match="NaN"):
        Trajectory.interpolate(a, torch.full((1, 8), float("nan")))
    with pytest.raises(SpecError, match="keyframes"):
        Trajectory.from_dict({"segments": []})


def test_a_trajectory_owns_its_keyframes_and_keeps_their_space():
    kf = unit(2, 8)
    path = Trajectory(kf, frames=5, space="mini")
    fp, before = path.fingerprint(), path.embeddings().clone()
    kf[1] = -kf[1]  # the caller reuses its tensor
    assert path.fingerprint() == fp and torch.equal(path.embeddings(), before)
    z = tag(unit(3, 8), "mini")
    chained = Trajectory.chain(z, frames=10)  # a (K, d) tensor, not a list of rows
    assert chained.space == "mini" and space_of(chained.embeddings()) == "mini"
    from latentlab.space import check_embeddings

    with pytest.raises(SpaceError, match="CLIP space"):  # so a decoder of another space refuses it
        check_embeddings(chained.embeddings(), space="other")


def test_frame_counts_accept_numpy_and_tensor_integers_only():
    import numpy as np

    a, b = unit(1, 8), unit(1, 8, seed=1)
    for n in (np.int64(10), torch.tensor(10)):
        assert len(Trajectory.interpolate(a, b, frames=n)) == 10
        assert len(Trajectory(torch.cat([a, b]), frames=n)) == 10
    assert len(Trajectory.chain([a, b, a], frames=[np.int64(3), 4])) == 8
    for bad in (10.0, "10", True):
        with pytest.raises(ArgumentError, match=r"frames must be an int .*frames=48"):
            Trajectory.interpolate(a, b, frames=bad)


def test_an_antipodal_segment_is_named_by_its_keyframes():
    e = torch.eye(4)
    path = Trajectory(torch.cat([e[:1], e[1:2], -e[1:2]]), frames=9, labels=["x", "y", "z"])
    with pytest.raises(ArgumentError, match=r"segment 1 \(keyframes\[1\] 'y' -> keyframes\[2\] 'z'\).*antipodal"):
        path.embeddings()


def test_text_diff_checks_theta_and_one_row_inputs():
    import numpy as np

    e = torch.eye(4)
    img, src, dst = e[:1], e[2:3], e[3:4]
    assert len(Trajectory.text_diff(img, src, dst, theta=np.float32(0.3), frames=5)) == 5
    assert len(Trajectory.text_diff(img, src, dst, theta=torch.tensor(0.3), frames=5)) == 5
    for bad in (2.5, -0.1, torch.tensor([0.1, 0.2]), "0.3"):
        with pytest.raises(ArgumentError, match=r"theta must be one number in \[0, 1\]"):
            Trajectory.text_diff(img, src, dst, theta=bad, frames=5)
    with pytest.raises(ArgumentError, match=r"source must be one embedding \(1, d\), got \(2, 4\)"):
        Trajectory.text_diff(img, e[2:4], dst, frames=5)


def test_from_dict_raises_spec_errors_and_checks_dim():
    two = [[1, 0, 0, 0], [0, 1, 0, 0]]
    with pytest.raises(SpecError, match="at least two keyframes"):
        Trajectory.from_dict({"keyframes": [[1, 0, 0, 0]], "segments": []})
    with pytest.raises(SpecError, match="'dim' is 768"):
        Trajectory.from_dict({"dim": 768, "keyframes": two, "segments": [{"frames": 3}]})
    with pytest.raises(SpecError, match="labels"):
        Trajectory.from_dict({"keyframes": two, "segments": [{"frames": 3}], "labels": ["a"]})
    with pytest.raises(SpecError, match="start at 0"):
        Trajectory.from_dict({"keyframes": two, "segments": [{"frames": 2, "ts": [0.7, 0.2]}]})
    assert len(Trajectory.from_dict({"dim": 4, "keyframes": two, "segments": [{"frames": 3}]})) == 4


def test_top_level_api_exposes_trajectory():
    assert ll.Trajectory is Trajectory


@pytest.mark.parametrize(
    "change, match",
    [
        ({"segments": [{"frames": 2, "ts": "ab"}]}, r"segments\[0\]: Segment.ts must be a list of numbers"),
        ({"segments": [{"frames": 2, "hold": True}]}, r"segments\[0\]: Segment.hold must be an integer"),
        ({"segments": [{"frames": 2, "easing": ["linear"]}]}, r"segments\[0\]: unknown easing"),
        ({"labels": 5}, "labels must be a list of 2 strings"),
        ({"labels": "ab"}, "labels must be a list of 2 strings"),
        ({"space": 5}, "'space' must be a CLIP space name"),
        # an audit: a TypeError about Segment.__init__, and true/false read as 1.0/0.0
        ({"segments": [{"ts": [0.0, 0.5]}]}, r"segments\[0\] needs 'frames'"),
        ({"keyframes": [[True, False], [0.0, 1.0]]}, "must hold numbers, not true/false"),
        # the spec's limits: a file's frames = 10**12 loaded, then the render ran out of memory
        ({"segments": [{"frames": 10**12}]}, r"segments\[0\]: Segment.frames must be an integer in \[1, 100000\]"),
        ({"segments": [{"frames": 2, "hold": 10**12}]}, r"segments\[0\]: Segment.hold must be an integer in \[0, 100000\]"),
    ],
)
def test_from_dict_names_what_is_malformed(change, match):
    from latentlab.errors import SpecError

    d = {"keyframes": [[1.0, 0.0], [0.0, 1.0]], "segments": [{"frames": 2}], **change}
    with pytest.raises(SpecError, match=match):
        Trajectory.from_dict(d)


def test_labels_must_be_strings():
    # from a file, [1, None] had become the labels '1' and 'None'
    a, b = torch.nn.functional.normalize(torch.randn(2, 8), dim=-1)
    with pytest.raises(ArgumentError, match=r"labels\[1\] must be a string, got None"):
        Trajectory.interpolate(a, b, frames=4, labels=["start", None])
    d = Trajectory.interpolate(a, b, frames=4, labels=["start", "end"]).to_dict()
    with pytest.raises(SpecError, match=r"labels\[0\] must be a string, got 1"):
        Trajectory.from_dict({**d, "labels": [1, "end"]})


def test_audit_fixes_for_segments_and_trajectories():
    import numpy as np

    # numpy integers for hold, as for frames (hold was refused)
    assert Segment(5, hold=np.int64(2)).hold == 2
    # frames, easing or method beside segments were silently ignored
    kf = torch.eye(3)[:2]
    for kw in ({"frames": 100}, {"easing": "ease-in"}, {"method": "lerp"}):
        with pytest.raises(ArgumentError, match="would be ignored: the segments given"):
            Trajectory(kf, [Segment(5)], **kw)
    assert len(Trajectory(kf, [Segment(5)])) == 6
    a, b = torch.eye(3)[:1], torch.eye(3)[1:2]  # and from Python, before any tensor of that size is made
    with pytest.raises(ArgumentError, match=r"frames=1000000000 is too many for 1 segment\(s\): give at most 100001 "):
        Trajectory.interpolate(a, b, frames=10**9)  # (it said Segment.frames ... got 999999999, one less than given)
    assert len(Trajectory.interpolate(a, b, frames=100_001)) == 100_001  # 100000 moving frames, the end closes it
    # ease-in ends exactly at 1 in float64 (was 0.9999999999999999)
    assert ll.trajectory.ease(torch.tensor(1.0, dtype=torch.float64), "ease-in").item() == 1.0


def test_segments_given_as_one_segment_or_a_count_are_refused_with_the_fix(tmp_path):
    kf = torch.eye(3)
    with pytest.raises(ArgumentError, match=r"segments must be a list of Segments, one per segment \(1 here\), got Segment. Fix: pass \[segment\]"):
        Trajectory(kf[:2], Segment(5))  # a raw "'Segment' object is not iterable"
    with pytest.raises(ArgumentError, match=r"\(2 here\), got Segment. Fix: pass a list of 2 Segments"):
        Trajectory(kf, Segment(5))
    with pytest.raises(ArgumentError, match=r"got int. Fix: pass frames=24 \(a keyword\)"):
        Trajectory(kf, 24)
    import numpy as np

    with pytest.raises(ArgumentError, match=r"got int64. Fix: pass frames=24 \(a keyword\)"):
        Trajectory(kf, np.int64(24))

    class Indexed:  # a sequence by __getitem__ alone, which list() takes
        def __getitem__(self, i):
            if i >= 2:
                raise IndexError
            return Segment(3)

    assert len(Trajectory(kf, Indexed())) == 7
    with pytest.raises(SpecError, match=r"^trajectory file .*missing.json' does not exist"):  # it said "spec file"
        Trajectory.load(tmp_path / "missing.json")


def test_from_dict_refuses_unknown_fields_and_formats():
    d = Trajectory(torch.eye(3)[:2], frames=4, labels=["a", "b"]).to_dict()
    assert Trajectory.from_dict(d).labels == ["a", "b"]
    with pytest.raises(SpecError, match=r"unknown field\(s\) \['lables'\]"):
        Trajectory.from_dict({**d, "lables": ["a", "b"]})  # a typo dropped the labels silently
    with pytest.raises(SpecError, match="'latentlab.trajectory/99'"):
        Trajectory.from_dict({**d, "format": "latentlab.trajectory/99"})
    with pytest.raises(SpecError, match="frames is 4 but ts has 2"):
        Trajectory.from_dict({**d, "segments": [{"frames": 4, "ts": [0.0, 0.5]}]})


def test_text_diff_takes_single_row_captions_as_the_image():
    e = torch.eye(4)
    img, src, tgt = e[:1], e[1:2], (e[1:2] + e[2:3])
    a = Trajectory.text_diff(img, src[0], tgt[0], theta=0.5, frames=3)  # (d,) rows were refused
    b = Trajectory.text_diff(img, src, tgt, theta=0.5, frames=3)
    assert torch.equal(a.embeddings(), b.embeddings())


@pytest.mark.parametrize("method", ["slerp", "nlerp", "lerp"])
@pytest.mark.parametrize("frames", [5, 6, 9])
def test_antipodal_keyframes_are_refused_whatever_the_method_and_frame_count(method, frames):
    # only slerp, and nlerp with a frame exactly at t = 0.5, refused them: an even frame count made an
    # nlerp segment a hard cut, and lerp passed through the zero vector
    a = unit(1, 8)
    path = Trajectory.chain([a, -a], frames=frames, method=method, labels=["x", "y"])
    with pytest.raises(
        ArgumentError,
        match=rf"segment 0 \(keyframes\[0\] 'x' -> keyframes\[1\] 'y'\) cannot be {method}ed: its keyframes are "
        r"antipodal \(cosine -1\.0.*intermediate keyframe c: chain keyframes\[0\] 'x' -> c -> keyframes\[1\] 'y'",
    ):
        path.embeddings()
    nearly = torch.nn.functional.normalize(-a + 1e-3 * unit(1, 8, seed=5), dim=-1)  # cosine about -1 + 5e-7
    with pytest.raises(ArgumentError, match="antipodal"):
        Trajectory.chain([a, 3.0 * nearly], frames=frames, method=method).embeddings()
    far = torch.nn.functional.normalize(-a + 0.2 * unit(1, 8, seed=5), dim=-1)  # well away from antipodal
    assert torch.isfinite(Trajectory.chain([a, far], frames=frames, method=method).embeddings()).all()


def test_lerp_and_nlerp_paths_differ_only_in_their_norms():
    # decoders normalise every embedding, so a lerp path renders as nlerp; the docs say so
    kf = unit(2, 16)
    zl = Trajectory.chain(kf, frames=9, method="lerp").embeddings()
    zn = Trajectory.chain(kf, frames=9, method="nlerp").embeddings()
    assert zl.norm(dim=-1).min() < 0.9
    torch.testing.assert_close(zl / zl.norm(dim=-1, keepdim=True), zn, atol=1e-6, rtol=0)
    assert "renders the frames of" in Segment.__doc__ and "embeddings.npy" in Segment.__doc__


def test_chain_names_the_per_segment_frame_count_out_of_range():
    a, b, c = unit(1, 8), unit(1, 8, seed=1), unit(1, 8, seed=2)
    for frames, i, got in (([5, 0], 1, "0"), ([5, 200000], 1, "200000"), ([-1, 5], 0, "-1")):
        with pytest.raises(ArgumentError, match=rf"frames\[{i}\] must be an integer in \[1, 100000\] .*got {got}\."):
            Trajectory.chain([a, b, c], frames=frames)
    assert len(Trajectory.chain([a, b, c], frames=[1, 100000])) == 100002


def test_chain_is_annotated_to_take_a_tensor_of_keyframes_as_it_does():
    import typing

    hint = typing.get_type_hints(Trajectory.chain)["keyframes"]
    # Sequence[Tensor] alone refused chain(torch.cat([a, b, c])), which works
    assert typing.get_origin(hint) is typing.Union and torch.Tensor in typing.get_args(hint)
    a, b = torch.eye(2, 4).split(1)
    assert len(Trajectory.chain(torch.cat([a, b, a]), frames=5)) == 5


@pytest.mark.parametrize("method", ["slerp", "nlerp", "lerp"])
def test_a_cut_between_antipodal_keyframes_is_not_refused(method):
    # a 1-frame segment shows only its start keyframe (a cut): it has no path between the two, so
    # it is not refused as one, whatever its method (an nlerp cut had worked before the check)
    a = torch.nn.functional.normalize(torch.randn(1, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    e = Trajectory(torch.cat([a, -a]), [Segment(1, method=method, hold=2)]).embeddings()
    assert e.shape == (4, 8) and torch.allclose(e[:3], a.expand(3, -1)) and torch.allclose(e[3], -a[0])
    with pytest.raises(ArgumentError, match="antipodal"):
        Trajectory(torch.cat([a, -a]), [Segment(2, method=method)]).embeddings()
    # a zero start keyframe is refused by slerp and nlerp as before, cut or not (lerp keeps it, as before)
    zero = torch.cat([torch.zeros(1, 8), a])
    if method == "lerp":
        assert torch.equal(Trajectory(zero, [Segment(1, method=method)]).embeddings()[0], torch.zeros(8))
    else:
        with pytest.raises(ArgumentError, match="zero vector"):
            Trajectory(zero, [Segment(1, method=method)]).embeddings()


def test_saving_an_easing_added_in_this_process_warns_that_it_loads_only_there(tmp_path, monkeypatch):
    from latentlab.spec import load_spec
    from latentlab.trajectory import EASINGS

    monkeypatch.setitem(EASINGS, "smoothstep", lambda t: t * t * (3 - 2 * t))
    path = Trajectory(torch.eye(3)[:2], [Segment(4, easing="smoothstep")])
    with pytest.warns(UserWarning, match=r"trajectory file '.*t.json' names easing\(s\) \['smoothstep'\], added to \(or "
                                         r"replaced in\) latentlab.trajectory.EASINGS in this process: it draws them so "
                                         r"only where the same easing is set first"):
        path.save(tmp_path / "t.json")  # saved without a word; a fresh process refused it
    spec = load_spec({"keyframes": [{"text": "a"}, {"text": "b", "easing": "smoothstep"}]})
    with pytest.warns(UserWarning, match=r"spec file '.*s.toml' names easing\(s\) \['smoothstep'\]"):
        spec.save(tmp_path / "s.toml")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # latentlab's own easings: no warning
        Trajectory(torch.eye(3)[:2], [Segment(4, easing="ease-in")]).save(tmp_path / "own.json")
        with pytest.raises(ArgumentError, match="must end in .json or .toml"):  # a save refused: no warning about a file not written
            path.save(tmp_path / "t.yaml")
    monkeypatch.setitem(EASINGS, "linear", lambda t: t**2)  # a built-in one replaced: another curve elsewhere
    with pytest.warns(UserWarning, match=r"names easing\(s\) \['linear'\], added to \(or replaced in\)"):
        Trajectory(torch.eye(3)[:2], frames=4).save(tmp_path / "lin.json")


# -- gaps found by mutation testing (2026-12-07): each test fails on a plausible bug the suite missed --


# (A gap that mutation testing found, trajectory.py EASINGS:) "ease-in" and "ease-out" swapped. The suite only checks
# ease-in-out (symmetric), so a swap that makes "ease-in" start fast goes unseen.
def test_ease_in_starts_slow_and_ease_out_starts_fast():
    from latentlab.trajectory import EASINGS

    t = torch.tensor([0.25], dtype=torch.float64)
    assert float(EASINGS["ease-in"](t)) < 0.25 < float(EASINGS["ease-out"](t))


# (A gap that mutation testing found, trajectory.py split_frames:) "total < segments + 1" relaxed to "total < segments":
# split_frames(3, 3) returns [1, 1, 0], a segment of zero frames, instead of refusing.
def test_split_frames_refuses_fewer_frames_than_keyframes():
    assert split_frames(4, 3) == [1, 1, 1]
    with pytest.raises(ArgumentError, match="too few"):
        split_frames(3, 3)


# (A gap that mutation testing found, trajectory.py Trajectory.embeddings:) the closing keyframe is normalised only
# after a "slerp" segment, not after an "nlerp" one -- the last frame of an nlerp path keeps the
# keyframe's raw norm although the docstring promises unit norm for slerp and nlerp segments.
def test_nlerp_path_ends_on_the_unit_norm_keyframe():
    kf = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    z = Trajectory(kf, [Segment(4, method="nlerp")]).embeddings()
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(5))


# (A gap that mutation testing found, trajectory.py Trajectory.embeddings:) a cut segment (all its params are 0, e.g.
# Segment(1)) shows its start keyframe un-normalised for slerp/nlerp.
def test_a_cut_segment_shows_its_start_keyframe_normalised():
    kf = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 4.0]])
    z = Trajectory(kf, [Segment(1, hold=2), Segment(3)]).embeddings()
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(len(z)))
    torch.testing.assert_close(z[0], torch.tensor([1.0, 0.0, 0.0]))


# (A gap that mutation testing found, trajectory.py Trajectory.__init__:) labels length check "!=" weakened to "<":
# more labels than keyframes are accepted (and saved), mislabelling nothing but silently
# keeping a stale label list, e.g. after a keyframe was dropped.
def test_more_labels_than_keyframes_are_refused():
    kf = torch.eye(3)[:2]
    with pytest.raises(ArgumentError, match="labels has 3 entries for 2 keyframes"):
        Trajectory(kf, labels=["a", "b", "c"])


# (A gap that mutation testing found, trajectory.py Segment.__post_init__:) the "never decrease" check compares ts[i]
# with ts[i + 2] instead of ts[i + 1], so a single step back (0.5 -> 0.3) is accepted and the
# path jumps backwards for a frame.
def test_segment_ts_refuses_a_single_step_back():
    with pytest.raises(ArgumentError, match="never decrease"):
        Segment(3, ts=[0.0, 0.5, 0.3])


# -- properties over generated paths, pacing and edits, and the bugs they found ----------------------

PROPS = settings(max_examples=50, deadline=None, derandomize=True)
FEW = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])

seeds = st.integers(0, 2**31 - 1)
segments = st.builds(
    lambda f, e, m, h: Segment(f, easing=e, method=m, hold=h),
    st.integers(1, 9), st.sampled_from(list(EASINGS)), st.sampled_from(METHODS), st.integers(0, 3),
)


def not_antipodal(kf: torch.Tensor) -> bool:
    u = torch.nn.functional.normalize(kf.double(), dim=-1)
    return bool(((u[1:] * u[:-1]).sum(-1) > -0.99).all())


# -- sampling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.05, 30.0, 3e19, 1e-21])  # 3e19 overflows in float32; 1e-21 underflows its square
@settings(PROPS, max_examples=15)
@given(seed=seeds, d=st.integers(2, 16), segs=st.lists(segments, min_size=1, max_size=4))
def test_frames_keyframes_holds_and_norms_are_as_documented(seed, d, segs, scale):
    """T = holds + segment frames + 1; keyframe k is shown exactly at keyframe_indices()[k] (normalised,
    except by a lerp segment), after its hold's copies; slerp and nlerp frames, and the closing frame
    after them, are unit norm, whatever the keyframes' norm; the space tag is kept."""
    kf = unit(len(segs) + 1, d, seed=seed) * scale
    assume(not_antipodal(kf))
    path = Trajectory(tag(kf, "sp"), segs)
    z = path.embeddings()
    assert z.shape == (sum(s.hold + s.frames for s in segs) + 1, d) and len(path) == z.shape[0]
    assert space_of(z) == "sp" and z.dtype == torch.float32
    idx = path.keyframe_indices()
    for k, i in enumerate(idx):
        method = segs[min(k, len(segs) - 1)].method
        want = kf[k] if method == "lerp" else kf[k].double() / kf[k].double().norm()
        torch.testing.assert_close(z[i], want.float(), atol=1e-6, rtol=1e-6)
    start = 0
    for k, s in enumerate(segs):
        assert idx[k] == start + s.hold
        assert torch.equal(z[start : idx[k] + 1], z[idx[k]].expand(s.hold + 1, -1))  # the hold repeats it
        if s.method != "lerp":
            torch.testing.assert_close(z[start : start + s.hold + s.frames].norm(dim=-1),
                                       torch.ones(s.hold + s.frames), atol=1e-5, rtol=0)  # fmt: skip
        start += s.hold + s.frames
    if segs[-1].method != "lerp":
        assert abs(float(z[-1].norm()) - 1.0) < 1e-5


@PROPS
@given(seed=seeds, k=st.integers(2, 6), frames=st.integers(-2, 80), easing=st.sampled_from(list(EASINGS)))
def test_a_total_frame_count_is_kept_for_any_number_of_keyframes(seed, k, frames, easing):
    """chain(frames=n) and Trajectory(frames=n) give n frames, split as evenly as possible (the
    segments' counts differ by at most one), and refuse fewer than one frame per keyframe."""
    kf = unit(k, 8, seed=seed)
    assume(not_antipodal(kf))
    if frames < k:
        with pytest.raises(ArgumentError, match="too few"):
            Trajectory.chain(kf, frames=frames, easing=easing)
        return
    path = Trajectory.chain(kf, frames=frames, easing=easing)
    counts = [s.frames for s in path.segments]
    assert len(path) == frames == path.embeddings().shape[0]
    assert counts == split_frames(frames, k - 1) and max(counts) - min(counts) <= 1 and min(counts) >= 1
    assert torch.equal(Trajectory(kf, frames=frames, easing=easing).embeddings(), path.embeddings())


@PROPS
@given(ts=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=40), easing=st.sampled_from(list(EASINGS)),
       dtype=st.sampled_from([torch.float64, torch.float32]))  # fmt: skip
def test_easings_are_monotone_maps_of_0_1_onto_itself(ts, easing, dtype):
    """Each easing is non-decreasing on [0, 1], stays in [0, 1] and maps 0 to 0 and 1 to 1 exactly,
    in float64 (what Segment.params uses) and float32."""
    t = torch.tensor(sorted(ts + [0.0, 1.0]), dtype=dtype)
    y = ease(t, easing)
    assert (y.diff() >= 0).all() and (y >= 0).all() and (y <= 1).all()
    assert float(y[0]) == 0.0 and float(y[-1]) == 1.0


@PROPS
@given(seed=seeds, d=st.integers(2, 32), frames=st.integers(2, 30), method=st.sampled_from(METHODS),
       easings=st.sampled_from([("linear", "linear"), ("ease-in-out", "ease-in-out"), ("ease-in", "ease-out")]))  # fmt: skip
def test_a_path_run_backwards_gives_the_frames_in_reverse(seed, d, frames, method, easings):
    """interpolate(b, a) is interpolate(a, b) played backwards, with the mirrored easing (linear and
    ease-in-out are their own mirror; ease-in mirrors ease-out), for every method."""
    a, b = unit(2, d, seed=seed).split(1)
    assume(not_antipodal(torch.cat([a, b])))
    forward = Trajectory.interpolate(a, b, frames=frames, easing=easings[0], method=method).embeddings()
    backward = Trajectory.interpolate(b, a, frames=frames, easing=easings[1], method=method).embeddings()
    torch.testing.assert_close(forward.flip(0), backward, atol=3e-5, rtol=0)


# -- serialisation ----------------------------------------------------------------------------

parameters = st.lists(st.floats(0.0, 1.0, exclude_max=True), max_size=5).map(lambda x: [0.0] + sorted(x))
any_segment = st.one_of(segments, st.builds(lambda ts, m, h: Segment(1, ts=ts, method=m, hold=h),
                                            parameters, st.sampled_from(METHODS), st.integers(0, 2)))  # fmt: skip


@FEW
@given(seed=seeds, segs=st.lists(any_segment, min_size=1, max_size=3), labelled=st.booleans(),
       space=st.one_of(st.none(), st.text(min_size=1, max_size=6)), suffix=st.sampled_from([".json", ".toml"]))  # fmt: skip
def test_a_saved_trajectory_loads_with_the_same_frames(tmp_path, seed, segs, labelled, space, suffix):
    """to_dict -> JSON -> from_dict, and save -> load (JSON or TOML), give back the keyframes, segments
    (explicit ts to the last bit), labels and space, so the same frames and fingerprint."""
    kf = unit(len(segs) + 1, 5, seed=seed) * 3.0
    assume(not_antipodal(kf))
    labels = [f"k{i} ü" for i in range(len(segs) + 1)] if labelled else None
    path = Trajectory(kf, segs, labels=labels, space=space)
    for back in (Trajectory.from_dict(json.loads(json.dumps(path.to_dict()))), Trajectory.load(path.save(tmp_path / f"t{suffix}"))):
        assert torch.equal(back.keyframes, path.keyframes) and back.labels == path.labels and back.space == path.space
        assert [vars(s) for s in back.segments] == [vars(s) for s in path.segments]
        assert torch.equal(back.embeddings(), path.embeddings()) and back.fingerprint() == path.fingerprint()


# -- even pacing ------------------------------------------------------------------------------


class CurveDecoder(ll.Decoder):
    """A flat grey picture whose level is a piecewise-linear function (``levels`` at evenly spaced
    points) of the angle from e0 towards e1: on the path e0 -> e1 the picture changes where the
    curve is steep, so uniform frames are uneven and the change adds up along the path."""

    name, space, dim, resolution = "curve", "curve-space", 4, 4
    default_steps, default_guidance, default_batch_size = 1, 1.0, 64

    def __init__(self, levels):
        self.levels = np.asarray(levels, dtype=np.float64)

    def noise_shape(self):
        return (1, 4, 4)

    def _decode(self, embeddings, noise, *, seeds, steps, guidance_scale):
        x = (torch.atan2(embeddings[:, 1], embeddings[:, 0]).double().numpy() / (math.pi / 2)).clip(0, 1)
        g = np.interp(x, np.linspace(0, 1, len(self.levels)), self.levels)
        return np.broadcast_to((g * 255).round().astype(np.uint8)[:, None, None, None], (len(g), 4, 4, 3)).copy()


@FEW
@given(rises=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=8), frames=st.integers(3, 30),
       easing=st.sampled_from(["linear", "ease-in-out"]))  # fmt: skip
def test_even_pacing_keeps_the_ends_and_the_budget_and_evens_the_change(rises, frames, easing):
    """For a picture that changes by a random monotone curve along the path: the paced path keeps its
    frame count and both keyframes (first frame and closing frame), its parameters start at 0, never
    decrease and stay below 1, and the change between its rendered frames is no less even (CV) than
    the uniform path's (within 0.05: 8-bit pixels and a coarse measurement)."""
    assume(sum(rises) > 0.2)
    dec = CurveDecoder(np.concatenate([[0.0], np.cumsum(rises)]) / sum(rises))
    e = tag(torch.eye(4)[:2], "curve-space")
    path = Trajectory.interpolate(e[:1], e[1:], frames=frames, easing=easing)
    paced = even_pacing(path, None, dec, metric="pixel")
    ts = paced.trajectory.segments[0].ts
    assert len(paced.trajectory) == len(path) and ts[0] == 0.0
    assert all(0.0 <= t < 1.0 for t in ts) and all(b >= a for a, b in zip(ts, ts[1:]))
    z = paced.trajectory.embeddings()
    assert torch.equal(z[0], e[0]) and torch.equal(z[-1], e[1])
    uniform = pacing_stats(render(path, dec, progress=False))["cv"]
    assert pacing_stats(render(paced.trajectory, dec, progress=False))["cv"] <= uniform + 0.05


@FEW
@given(seed=seeds, data=st.data(), budget=st.booleans())
def test_even_pacing_keeps_holds_methods_and_keyframes_of_any_chain(seed, data, budget):
    """A chain of 2-4 keyframes with holds and any methods, paced per segment or to a new total:
    the total is kept (or is the one asked for), holds and methods are kept, each keyframe is still
    shown exactly at its keyframe index, and the record serialises back to the same frames."""
    k = data.draw(st.integers(2, 4))
    kf = tag(unit(k, 4, seed=seed), "curve-space")
    assume(not_antipodal(kf))
    segs = [Segment(data.draw(st.integers(1, 8)), hold=data.draw(st.integers(0, 2)), method=data.draw(st.sampled_from(METHODS)))
            for _ in range(k - 1)]  # fmt: skip
    path = Trajectory(kf, segs)
    holds = sum(s.hold for s in segs)
    frames = data.draw(st.integers(k + holds, 30)) if budget else None
    paced = even_pacing(path, None, CurveDecoder([0.0, 0.1, 0.9, 1.0]), metric="pixel", frames=frames)
    out = paced.trajectory
    assert len(out) == (len(path) if frames is None else frames)
    assert [(s.hold, s.method) for s in out.segments] == [(s.hold, s.method) for s in segs]
    if frames is None:
        assert [s.frames for s in out.segments] == [s.frames for s in segs]
    z = out.embeddings()
    for j, i in enumerate(out.keyframe_indices()):
        torch.testing.assert_close(z[i], kf[j], atol=1e-6, rtol=0)
    assert torch.equal(ll.Pacing.from_dict(json.loads(json.dumps(paced.to_dict()))).trajectory.embeddings(), z)


@PROPS
@given(widths=st.lists(st.floats(1e-3, 1.0), min_size=1, max_size=12), data=st.data(), n=st.integers(1, 30))
def test_inverse_cumulative_places_frames_at_equal_steps_of_measured_change(widths, data, n):
    """n parameters from 0, non-decreasing, below 1; where every sample interval changes, the
    cumulative change at the parameters (and 1) rises in n equal steps."""
    samples = np.concatenate([[0.0], np.cumsum(widths) / sum(widths)])
    samples[-1] = 1.0
    dist = np.asarray(data.draw(st.lists(st.floats(0.0, 10.0), min_size=len(widths), max_size=len(widths))))
    ts = _inverse_cumulative(samples, dist, n)
    assert len(ts) == n and ts[0] == 0.0 and all(0 <= t < 1 for t in ts) and all(b >= a for a, b in zip(ts, ts[1:]))
    if dist.sum() > 0 and dist.min() > 1e-3 * dist.sum():
        steps = np.diff(np.interp(ts + [1.0], samples, np.concatenate([[0.0], np.cumsum(dist)])))
        np.testing.assert_allclose(steps, dist.sum() / n, rtol=1e-6, atol=1e-9)


@PROPS
@given(lengths=st.lists(st.floats(0.0, 100.0), min_size=1, max_size=8), extra=st.integers(-3, 200))
def test_a_frame_budget_is_split_by_measured_change(lengths, extra):
    """_split_budget gives every segment at least one frame, all of the budget, and never fewer
    frames to a segment that changes more; a budget under one frame a segment is refused."""
    moving = len(lengths) + extra
    if extra < 0:
        with pytest.raises(ArgumentError, match="at least one per segment"):
            _split_budget(moving, lengths)
        return
    counts = _split_budget(moving, lengths)
    assert sum(counts) == moving and min(counts) >= 1
    for li, ci in zip(lengths, counts):
        assert all(ci >= cj for lj, cj in zip(lengths, counts) if li > lj)


# -- edits ------------------------------------------------------------------------------------


@PROPS
@given(start=st.floats(-1.0, 0.5), rises=st.lists(st.floats(-0.05, 0.15), max_size=30), theta_step=st.floats(0.01, 1.0),
       grow=st.floats(1.01, 3.0), min_gain=st.floats(0.0, 0.1), max_steps=st.integers(0, 12),
       target=st.one_of(st.none(), st.floats(-1.0, 1.0)), adaptive=st.booleans())  # fmt: skip
def test_iterative_text_diff_steps_follow_their_rules(start, rises, theta_step, grow, min_gain, max_steps, target, adaptive):
    """Whatever the similarities the decodes give: at most max_steps tries; a frame per kept try;
    every try's angle on the ladder theta_step * grow**k (at most 1); every kept frame gained
    min_gain (adaptive) or reached the target; reached says whether the last frame reached it and
    no earlier frame did; a run that stops early without it has just failed at the full angle."""
    sims = list(start + np.cumsum([0.0] + rises))  # what each decode's frame scores, in turn: small rises and falls
    found = iter(sims + [sims[-1]] * (max_steps + 1))
    z = torch.nn.functional.normalize(torch.ones(1, 4), dim=-1)

    def draw(e):
        return np.zeros((2, 2, 3), np.uint8), z, next(found)

    frames, embs, got, thetas, tries, reached = _iterate(
        draw, z, torch.eye(4)[:1], torch.eye(4)[1:2], theta_step=theta_step, target=target, max_steps=max_steps,
        adaptive=adaptive, grow=grow, min_gain=min_gain,
    )
    assert len(tries) <= max_steps and len(frames) == len(embs) == len(got) == len(thetas) == 1 + sum(k for *_, k in tries)
    assert thetas[0] == 0.0 and thetas[1:] == [t for t, _, kept in tries if kept]
    for t, _, _ in tries:
        assert 0 < t <= 1.0
        assert t == 1.0 or math.isclose(t, theta_step * grow ** round(math.log(t / theta_step) / math.log(grow)), rel_tol=1e-9)
    if adaptive:
        assert all(b >= a + min_gain or (target is not None and b >= target) for a, b in zip(got, got[1:]))
    assert reached == (target is not None and got[-1] >= target)
    assert target is None or all(s < target for s in got[:-1])
    if not reached and len(tries) < max_steps:
        assert adaptive and tries[-1][0] == 1.0 and not tries[-1][2]


@PROPS
@given(seed=seeds, d=st.integers(2, 32), weights=st.lists(st.floats(0.1, 3.0) | st.floats(-3.0, -0.1), min_size=1, max_size=5),
       c=st.floats(0.01, 100.0))  # fmt: skip
def test_arithmetic_depends_on_the_weights_ratios_only(seed, d, weights, c):
    """arithmetic is normalize(sum w_i x_i): scaling every weight by c > 0 changes nothing, negating
    every weight negates the result."""
    xs = unit(len(weights), d, seed=seed)
    total = (torch.tensor(weights)[:, None] * xs).sum(0)
    assume(float(total.norm()) > 1e-3 * sum(abs(w) for w in weights))
    z = ops.arithmetic(list(zip(weights, xs)))
    torch.testing.assert_close(ops.arithmetic([(c * w, x) for w, x in zip(weights, xs)]), z, atol=1e-5, rtol=0)
    torch.testing.assert_close(ops.arithmetic([(-w, x) for w, x in zip(weights, xs)]), -z, atol=1e-6, rtol=0)


# -- regressions --------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["slerp", "nlerp"])
@pytest.mark.parametrize("scale", [3e19, 1e-25])
@pytest.mark.parametrize("frames", [1, 4])  # 1: a cut, which never looks at its end keyframe
def test_the_closing_frame_is_the_unit_end_keyframe_whatever_its_norm(method, scale, frames):
    """The closing keyframe is normalised as the segments normalise theirs: a norm that overflows
    in float32 (3e19 * 8 entries) made it the zero vector, one that underflows (1e-25) inf/NaN."""
    a = unit(1, 8, seed=0)
    end = torch.tensor([[1.0, 2.0, 0.5, 1.0, -1.0, 0.3, 2.0, 1.0]])
    z = Trajectory(torch.cat([a, end * scale]), [Segment(frames, method=method)]).embeddings()
    torch.testing.assert_close(z[-1], (end / end.norm())[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(frames + 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("method, frames", [("nlerp", 5), ("slerp", 1), ("nlerp", 1)])
def test_a_zero_end_keyframe_is_refused_by_name_not_drawn_as_nan(method, frames):
    """A zero closing keyframe has no direction: an nlerp segment (whose frames never reach it) or a
    cut (which does not look at it) made the closing frame NaN, found only by render, as "trajectory
    embeddings contains NaN"; slerp over several frames refused it already."""
    a = unit(1, 8, seed=0)
    path = Trajectory(torch.cat([a, torch.zeros(1, 8)]), [Segment(frames, method=method)], labels=["x", "y"])
    with pytest.raises(ArgumentError, match=rf"segment 0 \(keyframes\[0\] 'x' -> keyframes\[1\] 'y'\) cannot be "
                                            rf"{method}ed: its end keyframe is the zero vector"):
        path.embeddings()
    lerp = Trajectory(torch.cat([a, torch.zeros(1, 8)]), [Segment(frames, method="lerp")]).embeddings()
    assert torch.equal(lerp[-1], torch.zeros(8))  # lerp keeps norms, the zero end too (as its docs say)


def test_nlerp_towards_a_row_whose_norm_overflows_is_not_refused_as_zero():
    """The zero-blend check compared the blend's norm with (1 - t)|a| + t|b|, which is inf when |b|
    overflows in float32: every blend that did not overflow itself read as "the zero vector"."""
    a = unit(1, 8, seed=0)
    b = 1e19 * torch.tensor([[2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]])  # |b| = 3.3e19: its square overflows
    t = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    want = torch.nn.functional.normalize((1 - t[:, None]).double() * a.double() + t[:, None].double() * b.double(), dim=-1)
    torch.testing.assert_close(ops.nlerp(a, b, t), want.float(), atol=1e-6, rtol=0)
    z = Trajectory(torch.cat([a, b]), frames=5, method="nlerp").embeddings()
    torch.testing.assert_close(z, want.float(), atol=1e-6, rtol=0)


def test_public_helpers_refuse_odd_arguments_by_name():
    """split_frames with a list of segments, ease with a list for a name and labels given as a
    0-d tensor raised raw TypeErrors; each is an ArgumentError naming the argument. A numpy
    integer is a count like any other."""
    with pytest.raises(ArgumentError, match=r"segments must be an int .* got \[2\]"):
        split_frames(10, [2])
    with pytest.raises(ArgumentError, match=r"segments must be an int"):
        split_frames(10, np.float64(2.0))
    assert split_frames(10, np.int64(3)) == [3, 3, 3]
    with pytest.raises(ArgumentError, match=r"unknown easing \['linear'\]"):
        ease(torch.linspace(0, 1, 5), ["linear"])
    kf = unit(2, 8)
    with pytest.raises(ArgumentError, match=r"labels must be a list of 2 strings"):
        Trajectory(kf, frames=5, labels=torch.tensor(5))


# -- trajectories and specs, second pass (2026-12-07) ---------------------------------------------


_E1, _E2, _E3 = torch.eye(4)[:1], torch.eye(4)[1:2], torch.eye(4)[2:3]


def _trajectory_dict() -> dict:
    return json.loads(json.dumps(Trajectory.interpolate(_E1, _E2, frames=3).to_dict()))


# -- defects ---------------------------------------------------------------------------


def test_text_diff_theta_huge_int_is_an_argument_error():
    # a 400-digit int passed isinstance(numbers.Real), then float() raised a raw OverflowError
    with pytest.raises(ArgumentError, match="theta must be one number in"):
        Trajectory.text_diff(_E1, _E2, _E3, theta=10**400)


def test_segment_ts_huge_int_is_an_argument_error():
    with pytest.raises(ArgumentError, match="Segment.ts must be a list of numbers"):
        Segment(2, ts=[0, 10**400])


def test_trajectory_file_ts_huge_int_is_a_spec_error():
    d = _trajectory_dict()
    d["segments"][0].update(frames=2, ts=[0, 10**400])
    with pytest.raises(SpecError, match=r"segments\[0\]: Segment.ts"):
        Trajectory.from_dict(d)


def test_trajectory_file_keyframe_huge_int_is_a_spec_error():
    d = _trajectory_dict()
    d["keyframes"][0][0] = 10**400
    with pytest.raises(SpecError, match="trajectory 'keyframes' must be a list of equal-length number lists"):
        Trajectory.from_dict(d)


@pytest.mark.parametrize("ts", ["0", "00", ["0", "0.5"], [False], [0.0, False], {0: "a"}])
def test_segment_ts_refuses_strings_and_booleans(ts):
    # a string's characters ("0") and true/false were read as numbers: "ts": "0" loaded as [0.0]
    with pytest.raises(ArgumentError, match="Segment.ts must be a list of numbers"):
        Segment(1, ts=ts)


def test_trajectory_file_ts_string_is_a_spec_error():
    d = _trajectory_dict()
    d["segments"][0].update(frames=1, ts="0")
    with pytest.raises(SpecError, match=r"segments\[0\]: Segment.ts"):
        Trajectory.from_dict(d)


def test_labels_as_a_table_are_refused():
    # a dict's keys were taken as the labels ({"a": 1, "b": 2} loaded as ["a", "b"])
    d = _trajectory_dict()
    d["labels"] = {"a": "x", "b": "y"}
    with pytest.raises(SpecError, match="labels must be a list of 2 strings"):
        Trajectory.from_dict(d)
    with pytest.raises(ArgumentError, match="labels must be a list of 2 strings"):
        Trajectory(torch.cat([_E1, _E2]), labels={"a": "x", "b": "y"})


def test_text_diff_takes_a_numpy_theta_as_a_tensor_one():
    # np.array(0.5) was refused ("got array(0.5)"), though torch.tensor(0.5), ops.text_diff and a spec take it
    import numpy as np

    want = Trajectory.text_diff(_E1, _E2, _E3, theta=0.5, frames=3).embeddings()
    for theta in (np.array(0.5), np.array([0.5]), np.float32(0.5)):
        assert torch.equal(Trajectory.text_diff(_E1, _E2, _E3, theta=theta, frames=3).embeddings(), want)
    with pytest.raises(ArgumentError, match="theta must be one number"):
        Trajectory.text_diff(_E1, _E2, _E3, theta=np.array(True))
    with pytest.raises(ArgumentError, match="theta must be one number"):
        Trajectory.text_diff(_E1, _E2, _E3, theta=np.array([0.5, 0.2]))


def test_path_pacing_over_max_frames_is_refused_by_the_spec():
    # accepted, then even_pacing refused it with an ArgumentError once the models had loaded
    kfs = [{"text": "a"}, {"text": "b"}, {"text": "c", "frames": 40_001}]
    spec = {"keyframes": kfs, "frames": 60_000, "pacing": "even", "pacing_scope": "path"}
    with pytest.raises(SpecError, match=r"'pacing_scope' = 'path' re-splits the segments' 100001 moving frames"):
        load_spec(spec)
    kfs[2]["frames"] = 40_000
    assert load_spec(spec).pacing_scope == "path"  # 100000 in all: as even_pacing takes it
    assert load_spec({**spec, "frames": 100_000, "pacing_scope": "segment"}).frames == 100_000


def test_trajectory_frames_list_error_does_not_offer_a_list():
    # Trajectory(kf, frames=[3]) said "frames must be an int ... or a list of per-segment ints, got [3]"
    with pytest.raises(ArgumentError, match=r"frames must be an int here .* Trajectory.chain\(keyframes, frames=\[3\]\)"):
        Trajectory(torch.cat([_E1, _E2]), frames=[3])
    assert len(Trajectory.chain(torch.cat([_E1, _E2]), frames=[3])) == 4


def test_json_key_given_twice_names_the_file(tmp_path):
    # load_file's SpecError "names the file (as what) and the problem"; this one named no file
    f = tmp_path / "dup.json"
    f.write_text('{"keyframes": [{"text": "a"}, {"text": "b", "text": "c"}]}', encoding="utf-8")
    with pytest.raises(SpecError, match=r"^spec file '.*dup\.json': the key 'text' is given twice"):
        load_spec(f)
    with pytest.raises(SpecError, match=r"^trajectory file '.*dup\.json': the key 'text' is given twice"):
        Trajectory.load(f)


def test_segment_ts_still_takes_numbers_tensors_and_generators():
    import numpy as np

    assert Segment(1, ts=(x for x in [0])).ts == [0.0]
    assert Segment(2, ts=np.array([0.0, 0.5])).ts == [0.0, 0.5]
    assert Segment(2, ts=torch.tensor([0.0, 0.25])).ts == [0.0, 0.25]
    assert Trajectory.text_diff(_E1, _E2, _E3, theta=torch.tensor(0.5)).num_frames == 48


# -- properties kept (pass on both) ----------------------------------------------------

_easing_t = st.floats(0, 1, allow_nan=False)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(st.sampled_from(sorted(EASINGS)), _easing_t, _easing_t)
def test_easings_are_monotone_with_ends_0_and_1(name, s, t):
    f = EASINGS[name]
    lo, hi = sorted((s, t))
    y = f(torch.tensor([0.0, lo, hi, 1.0], dtype=torch.float64))
    assert float(y[0]) == 0.0 and float(y[3]) == 1.0
    assert 0.0 <= float(y[1]) <= float(y[2]) <= 1.0


_seg = st.builds(
    Segment,
    st.integers(1, 6),
    easing=st.sampled_from(sorted(EASINGS)),
    method=st.sampled_from(["slerp", "nlerp", "lerp"]),
    hold=st.integers(0, 3),
)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(st.lists(_seg, min_size=1, max_size=3), st.sampled_from([".json", ".toml"]))
def test_trajectory_round_trip_keeps_frames_and_fingerprint(tmp_path_factory, segs, suffix):
    kf = torch.nn.functional.normalize(torch.randn(len(segs) + 1, 4, generator=torch.Generator().manual_seed(len(segs))), dim=-1)
    path = Trajectory(kf, segs, labels=[f"k{i}" for i in range(len(segs) + 1)])
    # T = hold + segment frames, summed, + 1 closing frame (docs/spec.md, the module docstring)
    assert len(path) == path.embeddings().shape[0] == sum(s.hold + s.frames for s in segs) + 1
    assert path.keyframe_indices()[-1] == len(path) - 1
    back = Trajectory.from_dict(path.to_dict())
    assert back.fingerprint() == path.fingerprint() and back.to_dict() == path.to_dict()
    file = tmp_path_factory.mktemp("t") / f"t{suffix}"
    path.save(file)
    assert Trajectory.load(file).to_dict() == path.to_dict()


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8).filter(str.strip)


@settings(derandomize=True, max_examples=25, deadline=None)
@given(
    st.lists(st.fixed_dictionaries({"text": _text}, optional={"frames": st.integers(1, MAX_FRAMES), "hold": st.integers(0, 9),
                                                                "easing": st.sampled_from(sorted(EASINGS))}),
             min_size=1, max_size=3),
    st.fixed_dictionaries({}, optional={"seed": st.integers(-(2**63), 2**62), "fps": st.floats(1, 240), "eta": st.floats(0, 1),
                                        "guidance_scale": st.floats(0, 1e300), "pingpong": st.booleans(), "name": _text}),
    st.sampled_from([".json", ".toml"]),
)  # fmt: skip
def test_spec_round_trips_through_to_dict_and_files(tmp_path_factory, later, top, suffix):
    spec = load_spec({"keyframes": [{"text": "start"}, *later], **top})
    assert load_spec(spec.to_dict()) == spec
    folder = tmp_path_factory.mktemp("s")
    spec = load_spec(spec, base_dir=str(folder))
    spec.save(folder / f"s{suffix}")
    assert load_spec(folder / f"s{suffix}") == spec


@pytest.mark.parametrize("ts", [np.array([False, False]), [np.False_], torch.tensor([False, False])])
def test_segment_ts_refuses_numpy_and_torch_bools(ts):
    """A check of the type name bool_ alone let numpy 2's bool (named bool) and torch bools through."""
    # c423cb5 refused true/false in Segment.ts, but tested type name "bool_" only: numpy 2's
    # bool is named "bool", so np.array([False, False]) was read as [0.0, 0.0] (a torch bool too)
    with pytest.raises(ArgumentError, match="Segment.ts must be a list of numbers"):
        Segment(2, ts=ts)


def test_segment_ts_still_takes_numpy_and_torch_numbers():
    assert Segment(2, ts=np.array([0.0, 0.5])).ts == [0.0, 0.5]
    assert Segment(2, ts=torch.tensor([0.0, 0.25])).ts == [0.0, 0.25]
    assert Segment(2, ts=[np.int64(0), np.float32(0.5)]).ts == [0.0, 0.5]
