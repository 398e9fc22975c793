"""Morph quality: even pacing, noise modes, DDIM inversion, iterative text diffs, variations,
and the quality benchmark's --quick mode. Offline and fast: synthetic and tiny decoders for
the properties, the embedded mini model where a real decoder matters."""

from __future__ import annotations

import copy
import json
import math
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import latentlab as ll
from latentlab.errors import ArgumentError, LatentlabError, SpaceError, SpecError
from latentlab.pacing import _inverse_cumulative, even_pacing, fine_pacing_settings, frame_distances, pacing_stats
from latentlab.render import make_noise, path_noise, render, slerp_noise
from latentlab.space import tag
from latentlab.trajectory import Segment, Trajectory

EMOJI = Path(__file__).resolve().parents[1] / "examples" / "emoji"


# -- a decoder whose picture snaps: the change along a uniform path is concentrated ---------


class SnapDecoder(ll.Decoder):
    """Grey level = sigmoid(sharpness * (z0 - z1)): along the slerp from e0 to e1 the picture
    stays put, then snaps from white to black around the middle. Texture from the noise."""

    name = "snap"
    space = "snap-space"
    dim = 8
    resolution = 8
    default_steps = 1
    default_guidance = 1.0
    default_batch_size = 5

    def __init__(self, sharpness: float = 12.0):
        self.sharpness = sharpness
        self.decoded = 0

    def noise_shape(self):
        return (1, 8, 8)

    def _decode(self, embeddings, noise, *, seeds, steps, guidance_scale):
        self.decoded += embeddings.shape[0]
        s = torch.sigmoid(self.sharpness * (embeddings[:, 0] - embeddings[:, 1]))[:, None, None, None]
        img = (s + 0.02 * torch.tanh(noise)).clamp(0, 1).expand(-1, 3, -1, -1).permute(0, 2, 3, 1)
        return (img.numpy() * 255).round().astype(np.uint8)


def snap_path(frames=25, **kw):
    e = tag(torch.eye(8)[:2], "snap-space")
    return Trajectory.interpolate(e[:1], e[1:], frames=frames, **kw)


# -- pacing statistics ------------------------------------------------------------------


def test_pacing_stats_values():
    s = pacing_stats(np.array([1.0, 1.0, 1.0, 3.0]))
    assert s["cv"] == pytest.approx(np.std([1, 1, 1, 3]) / 1.5)
    assert s["max_jump_over_median"] == pytest.approx(3.0)
    assert s["n"] == 4
    even = pacing_stats([0.2] * 5)
    assert even["cv"] == pytest.approx(0.0, abs=1e-12) and even["max_jump_over_median"] == pytest.approx(1.0)
    still = pacing_stats(np.zeros(3))
    assert still["cv"] == 0.0 and still["max_jump_over_median"] == 1.0
    with pytest.raises(ArgumentError, match="frames_or_distances"):
        pacing_stats(np.zeros((2, 2)))
    with pytest.raises(ArgumentError, match=">= 0"):
        pacing_stats(np.array([1.0, -1.0]))
    # a list of uint8 frames, as collected in a loop, is measured like the stacked array
    frames = [np.full((4, 4, 3), v, np.uint8) for v in (0, 255, 255, 0)]
    assert frame_distances(frames, metric="pixel").tolist() == [1.0, 0.0, 1.0]
    assert pacing_stats(frames) == pacing_stats(np.stack(frames))
    tensors = [torch.from_numpy(f) for f in frames]  # uint8 tensors: measured too, not turned to float and refused
    assert frame_distances(tensors, metric="pixel").tolist() == [1.0, 0.0, 1.0]
    assert pacing_stats(tensors) == pacing_stats(np.stack(frames))
    from latentlab import ops

    assert ll.combine is ops.combine  # listed in ops.__all__, reachable from the top level too


def test_frame_distances_pixel_and_clip(tiny_encoder):
    f = np.zeros((3, 4, 4, 3), np.uint8)
    f[1] = 255
    f[2, :2] = 255
    assert frame_distances(f, metric="pixel").tolist() == pytest.approx([1.0, math.sqrt(0.5)])
    assert pacing_stats(f)["n"] == 2  # frames measured by pixels when no encoder is given
    rng = np.random.default_rng(0)
    g = rng.integers(0, 255, (3, 32, 32, 3), dtype=np.uint8)
    g[1] = g[0]
    d = frame_distances(g, metric="clip", encoder=tiny_encoder)
    assert d[0] == pytest.approx(0.0, abs=1e-3) and d[1] > 1e-3  # radians between CLIP embeddings
    with pytest.raises(ArgumentError, match="encoder"):
        frame_distances(g, metric="clip")
    with pytest.raises(ArgumentError, match="metric"):
        frame_distances(g, metric="lpips")


def test_inverse_cumulative_places_frames_at_equal_distance():
    samples = np.array([0.0, 0.5, 1.0])
    ts = _inverse_cumulative(samples, np.array([3.0, 1.0]), 4)  # 3/4 of the change in the first half
    assert ts == pytest.approx([0.0, 1 / 6, 2 / 6, 0.5])
    assert _inverse_cumulative(samples, np.zeros(2), 4) == pytest.approx([0, 0.25, 0.5, 0.75])


# -- even pacing --------------------------------------------------------------------------


def test_even_pacing_evens_out_a_snapping_morph():
    dec = SnapDecoder()
    path = snap_path(frames=25)
    uniform = pacing_stats(render(path, dec, progress=False))
    paced = even_pacing(path, None, dec, metric="pixel")
    frames = render(paced.trajectory, dec, progress=False)
    even = pacing_stats(frames)
    assert uniform["cv"] > 1.0  # the snap: most change between two or three frames
    assert even["cv"] < 0.5 * uniform["cv"]
    assert even["max_jump_over_median"] < 0.5 * uniform["max_jump_over_median"]
    # the frame budget is kept and the parameters are a monotone reparametrisation
    assert len(paced.trajectory) == len(path) == frames.shape[0]
    assert repr(paced) == (
        f"Pacing(1 segment(s), {len(path)} frames, metric='pixel', decodes={paced.decodes}, "
        f"step CV: uniform {paced.coarse_stats['cv']:.3f})"
    )
    ts = paced.trajectory.segments[0].ts
    assert ts[0] == 0.0 and all(0 <= t < 1 for t in ts) and all(b > a for a, b in zip(ts, ts[1:]))
    # frames bunch up where the picture snaps (the middle), spread out where it is still
    gaps = np.diff(ts + [1.0])
    assert gaps[len(gaps) // 2] < 0.5 * gaps[0]
    # the coarse pass was refined by bisection around the snap, and costs fewer decodes than
    # the budget
    assert len(paced.samples[0]) > 13 and paced.decodes < len(path)
    assert paced.distances[0].shape == (len(paced.samples[0]) - 1,)
    assert paced.coarse_stats["cv"] > 1.0


def test_min_width_lets_bisection_reach_into_a_narrow_snap():
    dec = SnapDecoder(sharpness=400.0)  # the picture flips within about 1/100 of the path
    path = snap_path(frames=13)
    kw = dict(metric="pixel", max_samples=39, tol=0.1)
    default = even_pacing(path, None, dec, **kw)
    fine = even_pacing(path, None, dec, min_width=1 / 1024, **kw)
    # default bisection stops at a quarter of a frame step; min_width goes much narrower
    assert np.diff(default.samples[0]).min() >= 0.5 / 12 / 2 - 1e-9
    assert np.diff(fine.samples[0]).min() < 1 / 256
    st = {k: pacing_stats(render(p.trajectory, dec, progress=False)) for k, p in (("default", default), ("fine", fine))}
    assert st["default"]["cv"] > 1.0  # the snap stays between two frames
    assert st["fine"]["cv"] < 0.2 and st["fine"]["max_jump_over_median"] < 2.0  # frames placed inside it
    with pytest.raises(ArgumentError, match="min_width"):
        even_pacing(path, None, dec, metric="pixel", min_width=1.5)


def test_even_pacing_checks_its_arguments_before_any_decode():
    dec = SnapDecoder()
    path = snap_path(frames=9)
    other = Trajectory(tag(torch.eye(8)[:2], "other-space"), frames=9)  # decoded in full before: render refused it after
    for kw, match in (({}, "CLIP space 'other-space'"),):
        with pytest.raises(SpaceError, match=match):
            even_pacing(other, None, dec, metric="pixel", **kw)
    for kw, match in (({"max_samples": 2.5}, "max_samples must be an integer >= 0"),  # a raw TypeError
                      ({"max_samples": -3}, "max_samples must be an integer >= 0"),  # taken as 0
                      ({"batch_size": 0}, "batch_size must be an integer >= 1"),  # a raw ValueError
                      ({"tol": float("nan")}, "tol must be a finite number"),  # bisection off, silently
                      ({"coarse": 10**9}, r"coarse must be an integer in \[1, 100000\]")):  # 12 GB of samples, then a decode
        with pytest.raises(ArgumentError, match=match):
            even_pacing(path, None, dec, metric="pixel", **kw)
    assert len(even_pacing(path, None, dec, metric="pixel", frames=np.int64(10)).trajectory) == 10  # numpy ints, as Trajectory
    for kw in ({"coarse": np.int64(3)}, {"passes": np.int64(1)}, {"relax": np.int64(0)}):  # as frames= and max_samples=
        assert len(even_pacing(path, None, dec, metric="pixel", **kw).trajectory) == 9
    a = even_pacing(path, None, dec, metric="pixel", seed=1)
    for seed, match in ((1.7, r"seed must be an integer in \[-2\*\*63, 2\*\*63\), got 1.7"),  # was taken as 1
                        (None, "seed must be an integer")):  # a raw TypeError from int(None)
        with pytest.raises(ArgumentError, match=match):
            even_pacing(path, None, dec, metric="pixel", seed=seed)
    assert even_pacing(path, None, dec, metric="pixel", seed=np.int64(1)).distances[0].tolist() == a.distances[0].tolist()


def test_even_pacing_names_swapped_or_missing_models(tiny_encoder, tiny_decoder):
    a, b = tiny_encoder.encode_text(["a red circle", "a blue square"]).split(1)
    path = Trajectory.interpolate(a, b, frames=5)
    with pytest.raises(ArgumentError, match=r"encoder must be a latentlab Encoder \(ll.create_encoder\(preset\)\), got StableUnCLIPDecoder"):
        even_pacing(path, tiny_decoder, tiny_encoder, steps=1)  # an AttributeError on default_batch_size before
    with pytest.raises(ArgumentError, match="decoder must be a latentlab Decoder .*got NoneType"):
        even_pacing(path, None, None, metric="pixel")  # an AttributeError on .dim before
    pictures_only = types.SimpleNamespace(encode_image=tiny_encoder.encode_image)  # all pacing reads of an encoder
    assert len(even_pacing(path, pictures_only, tiny_decoder, steps=1, coarse=2).trajectory) == 5


def test_pacing_scope_path_resplits_a_chains_frames_by_measured_change():
    from latentlab.jobs import pace_spec
    from latentlab.spec import load_spec

    e = tag(torch.eye(8)[:2], "snap-space")
    chain = Trajectory.chain([e[:1], e[:1], e[1:]], frames=[6, 6])  # a still segment, then the snap
    base = {"keyframes": [{"text": "x"}, {"text": "y"}, {"text": "z"}], "pacing": "even", "pacing_metric": "pixel"}
    per_segment = pace_spec(load_spec(base), chain, None, SnapDecoder())
    whole = pace_spec(load_spec({**base, "pacing_scope": "path"}), chain, None, SnapDecoder())
    assert [s.frames for s in per_segment.trajectory.segments] == [6, 6]
    counts = [s.frames for s in whole.trajectory.segments]
    assert sum(counts) == 12 and counts[0] == 1  # the still segment keeps one frame, the snap gets the rest
    assert len(whole.trajectory) == len(chain)
    st = {k: pacing_stats(render(p.trajectory, SnapDecoder(), progress=False)) for k, p in
          (("segment", per_segment), ("path", whole))}  # fmt: skip
    assert st["path"]["max_jump_over_median"] < st["segment"]["max_jump_over_median"]
    with pytest.raises(SpecError, match="'pacing_scope'"):
        load_spec({**base, "pacing_scope": "chain"})


def test_further_passes_keep_every_sample_measured_so_far():
    dec = SnapDecoder(sharpness=60.0)
    path = snap_path(frames=13)
    one = even_pacing(path, None, dec, metric="pixel", coarse=6)
    dec.decoded = 0
    two = even_pacing(path, None, dec, metric="pixel", coarse=6, passes=2)
    s1, s2 = set(one.samples[0].tolist()), set(two.samples[0].tolist())
    assert s1 <= s2  # the coarse and bisection samples are still there
    assert set(one.trajectory.segments[0].ts) <= s2  # and the first pass's frames joined them
    assert len(s2) > len(s1) and two.decodes == dec.decoded == len(s2)  # each measured once
    d = two.distances[0]
    assert d.shape == (len(s2) - 1,) and np.all(d >= 0)


class SlideDecoder(ll.Decoder):
    """A 4-px bar slides 24 px across, most of the way in the middle of the path. Pixel RMS
    between two frames saturates once the bar has moved past its own width, so distances do
    not add up along the path: a frame-to-frame distance is less than the sum of the sample
    distances between them, which misleads a solve from the samples alone."""

    name = "slide"
    space = "snap-space"
    dim = 8
    resolution = 32
    default_steps = 1
    default_guidance = 1.0
    default_batch_size = 8

    def noise_shape(self):
        return (1, 32, 32)

    def _decode(self, embeddings, noise, *, seeds, steps, guidance_scale):
        s = torch.sigmoid(10.0 * (embeddings[:, 0] - embeddings[:, 1]))
        x = 2 + (1 - s) * 24
        cols = torch.arange(32.0)[None]
        bar = (cols + 1 - x[:, None]).clamp(0, 1) - (cols - 3 - x[:, None]).clamp(0, 1)  # anti-aliased edges
        return (bar[:, None, :, None].expand(-1, 32, -1, 3).numpy() * 255).astype(np.uint8)


def test_relax_evens_out_the_frames_themselves_and_keeps_the_best_round():
    dec = SlideDecoder()
    path = snap_path(frames=13)
    plain = even_pacing(path, None, dec, metric="pixel")
    relaxed = even_pacing(path, None, dec, metric="pixel", relax=4)
    st = {k: pacing_stats(render(p.trajectory, dec, progress=False)) for k, p in (("plain", plain), ("relaxed", relaxed))}
    assert st["plain"]["cv"] > 0.1  # the sample solve is off: the distances do not add up
    assert st["relaxed"]["cv"] < 0.5 * st["plain"]["cv"]
    assert st["relaxed"]["max_jump_over_median"] < st["plain"]["max_jump_over_median"]
    # what it reports is what the render shows
    assert relaxed.frame_stats["cv"] == pytest.approx(st["relaxed"]["cv"], abs=1e-9)
    assert np.allclose(relaxed.frame_distances[0], frame_distances(render(relaxed.trajectory, dec, progress=False), metric="pixel"))
    assert plain.frame_stats == {} and plain.frame_distances == []
    # the sample solve is round 0, and the most even round is kept: never worse than it
    one = even_pacing(path, None, dec, metric="pixel", relax=1)
    assert one.frame_stats["cv"] <= st["plain"]["cv"] + 1e-12
    assert relaxed.decodes <= plain.decodes + 5 * len(path)
    ts = relaxed.trajectory.segments[0].ts
    assert len(ts) == 12 and ts[0] == 0.0 and all(b > a for a, b in zip(ts, ts[1:])) and ts[-1] < 1
    again = ll.Pacing.from_dict(json.loads(json.dumps(relaxed.to_dict())))
    assert again.frame_stats == relaxed.frame_stats and np.array_equal(again.frame_distances[0], relaxed.frame_distances[0])
    with pytest.raises(ArgumentError, match="relax"):
        even_pacing(path, None, dec, metric="pixel", relax=-1)


def test_even_pacing_is_deterministic_and_serialisable(tmp_path):
    path = snap_path(frames=13)
    a = even_pacing(path, None, SnapDecoder(), metric="pixel", seed=3)
    b = even_pacing(path, None, SnapDecoder(), metric="pixel", seed=3)
    assert a.trajectory.segments[0].ts == b.trajectory.segments[0].ts
    assert all(np.array_equal(x, y) for x, y in zip(a.distances, b.distances))
    traj, dists = a  # unpacks as (trajectory, distances)
    assert traj is a.trajectory and dists is a.distances
    back = Trajectory.load(a.trajectory.save(tmp_path / "paced.json"))
    assert torch.equal(back.embeddings(), a.trajectory.embeddings())
    again = ll.Pacing.from_dict(json.loads(json.dumps(a.to_dict())))
    assert again.trajectory.segments[0].ts == a.trajectory.segments[0].ts


def test_even_pacing_reuses_and_fills_the_measured_dict():
    """measured= holds every picture measured: a second call with it decodes nothing and paces
    the same, another pacing setting decodes only the parameters it adds, and a call stopped
    part-way leaves what it had decoded, so the next one decodes only the rest."""
    path = snap_path(frames=13)
    fresh = even_pacing(path, None, SnapDecoder(), metric="pixel", seed=3, passes=2, relax=1)
    dec, measured = SnapDecoder(), {}
    first = even_pacing(path, None, dec, metric="pixel", seed=3, passes=2, relax=1, measured=measured)
    assert dec.decoded == len(measured) == first.decodes == fresh.decodes
    assert first.trajectory.segments[0].ts == fresh.trajectory.segments[0].ts
    again = even_pacing(path, None, dec, metric="pixel", seed=3, passes=2, relax=1, measured=measured)
    assert dec.decoded == len(measured) and again.decodes == first.decodes  # nothing decoded again
    assert again.trajectory.segments[0].ts == first.trajectory.segments[0].ts
    before = dec.decoded
    finer = even_pacing(path, None, dec, metric="pixel", seed=3, passes=3, relax=2, tol=0.1, measured=measured)
    assert dec.decoded - before == len(measured) - before < finer.decodes  # only the new parameters

    class Stops(SnapDecoder):
        def _decode(self, embeddings, noise, **kw):
            if self.decoded >= 10:
                raise KeyboardInterrupt
            return super()._decode(embeddings, noise, **kw)

    stops, partial = Stops(), {}
    with pytest.raises(KeyboardInterrupt):
        even_pacing(path, None, stops, metric="pixel", seed=3, passes=2, relax=1, measured=partial)
    kept = len(partial)
    assert kept == stops.decoded >= 10
    dec = SnapDecoder()
    resumed = even_pacing(path, None, dec, metric="pixel", seed=3, passes=2, relax=1, measured=partial)
    assert dec.decoded == fresh.decodes - kept and resumed.decodes == fresh.decodes
    assert resumed.trajectory.segments[0].ts == fresh.trajectory.segments[0].ts  # (this decoder draws each alone)
    with pytest.raises(ArgumentError, match="measured must be a dict"):
        even_pacing(path, None, dec, metric="pixel", measured=[])
    enc = types.SimpleNamespace(encode_image=None)  # passes as an encoder; these calls stop before any use of it
    with pytest.raises(ArgumentError, match="measured= holds what metric='pixel' compares, but this call's metric is 'clip'"):
        even_pacing(path, enc, dec, metric="clip", measured=partial)  # (it crashed in the distance)
    own = {(0, 0.0): np.zeros((1, 8), np.float32)}  # a user's CLIP embeddings as numpy: said, not taken for pictures
    with pytest.raises(ArgumentError, match=r"measured= holds a ndarray of shape \(1, 8\), not what even_pacing stores"):
        even_pacing(path, enc, dec, metric="clip", measured=own)
    mixed = {**partial, (0, 0.5): torch.zeros(1, 8)}
    with pytest.raises(ArgumentError, match="measured= holds what metric='clip' compares"):
        even_pacing(path, None, dec, metric="pixel", measured=mixed)


def test_even_pacing_keeps_holds_methods_and_splits_a_budget_by_change():
    e = tag(torch.eye(8)[:2], "snap-space")
    kf = torch.cat([e[:1], e[:1], e[1:]])  # a still segment, then the snap
    path = Trajectory(kf, [Segment(10, hold=2), Segment(10, method="nlerp")])
    paced = even_pacing(path, None, SnapDecoder(), metric="pixel")
    segs = paced.trajectory.segments
    assert [s.frames for s in segs] == [10, 10] and segs[0].hold == 2 and segs[1].method == "nlerp"
    assert len(paced.trajectory) == len(path)
    assert paced.lengths[0] < 0.05 * paced.lengths[1]
    budget = even_pacing(path, None, SnapDecoder(), metric="pixel", frames=23)
    assert len(budget.trajectory) == 23
    s0, s1 = budget.trajectory.segments
    assert s0.frames == 1 and s1.frames == 19 and s0.hold == 2  # frames go where the picture changes


def test_even_pacing_checks_its_inputs(fake_decoder):
    path = snap_path()
    dec = SnapDecoder()
    with pytest.raises(ArgumentError, match="encoder"):
        even_pacing(path, None, dec)  # metric="clip" needs the encoder
    with pytest.raises(ArgumentError, match="per-frame"):
        even_pacing(path, None, dec, metric="pixel", noise="per-frame")
    with pytest.raises(ArgumentError, match="Trajectory"):
        even_pacing(path.embeddings(), None, dec, metric="pixel")
    with pytest.raises(ArgumentError, match="frames"):
        even_pacing(path, None, dec, metric="pixel", frames=1)
    with pytest.raises(ArgumentError, match="keyframe_noise"):
        even_pacing(path, None, dec, metric="pixel", noise="inverted")


def test_even_pacing_with_clip_metric_on_tiny(tiny_encoder, tiny_decoder):
    a, b = tiny_encoder.encode_text(["a red circle", "a blue square"]).split(1)
    path = Trajectory.interpolate(a, b, frames=7)
    paced = even_pacing(path, tiny_encoder, tiny_decoder, steps=2, coarse=3, passes=2)
    assert len(paced.trajectory) == 7 and paced.metric == "clip"
    assert all(np.all(d >= 0) and np.all(d < math.pi) for d in paced.distances)  # radians
    ts = paced.trajectory.segments[0].ts
    assert all(y > x for x, y in zip(ts, ts[1:]))


# -- noise modes -------------------------------------------------------------------------


def test_slerp_noise_keeps_the_gaussian_norm_and_endpoints():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 3, 16, 16, generator=g).unbind()
    b = b * (a.norm() / b.norm())
    t = torch.linspace(0, 1, 9)
    x = slerp_noise(a, b, t)
    assert x.shape == (9, 3, 16, 16)
    assert torch.equal(x[0], a) and torch.equal(x[-1], b)
    norms = x.flatten(1).norm(dim=1)
    assert torch.allclose(norms, a.norm().expand(9), rtol=1e-4)
    lerp_mid = 0.5 * (a + b)
    assert lerp_mid.norm() < 0.8 * a.norm()  # what slerp avoids: a washed-out midpoint
    assert torch.equal(slerp_noise(a, a, 0.3), a)  # parallel noises stay put
    with pytest.raises(ArgumentError, match="one shape"):
        slerp_noise(a, b[:1], 0.5)


def test_path_noise_follows_segments():
    kn = make_noise((2, 4, 4), [1, 2, 3])
    x = path_noise([(0, 0.0), (0, 0.5), (1, 0.0), (1, 0.5), (1, 1.0)], kn)
    assert torch.equal(x[0], kn[0]) and torch.equal(x[2], kn[1]) and torch.equal(x[4], kn[2])
    assert torch.allclose(x[1], slerp_noise(kn[0], kn[1], 0.5))
    with pytest.raises(ArgumentError, match="segment"):
        path_noise([(2, 0.0)], kn)


def test_flicker_shared_vs_per_frame_vs_slerp_on_tiny(tiny_encoder, tiny_decoder):
    z = tiny_encoder.encode_text(["a red circle"])
    still = Trajectory(torch.cat([z, z]), [Segment(5)])  # a constant embedding, 6 frames
    kw = dict(steps=2, progress=False)
    shared = render(still, tiny_decoder, noise="shared", **kw)
    per = render(still, tiny_decoder, noise="per-frame", **kw)
    slerp = render(still, tiny_decoder, noise="slerp", keyframe_seeds=[0, 1], **kw)
    d_shared = frame_distances(shared, metric="pixel")
    d_per = frame_distances(per, metric="pixel")
    d_slerp = frame_distances(slerp, metric="pixel")
    assert d_shared.max() < 1e-3  # no flicker (at most a rounding step of one pixel)
    assert d_per.min() > 0.02  # every frame a new picture
    assert d_slerp.max() < 0.7 * d_per.mean()  # the noise moves, smoothly
    # each keyframe is drawn from its own seed's noise
    x0 = make_noise(tiny_decoder.noise_shape(), [0, 1])
    ends = tiny_decoder.decode(torch.cat([z, z]), x0, seeds=[0, 0], steps=2)
    # (batch sizes differ, 6 frames against 2: CPU kernels may round the last bits differently)
    diff = lambda a, b: int(np.abs(a.astype(int) - b.astype(int)).max())  # noqa: E731
    assert diff(slerp[0], ends[0]) <= 2 and diff(slerp[-1], ends[1]) <= 2
    assert diff(slerp[0], ends[1]) > 20  # the two seeds draw different pictures


def test_noise_modes_check_inputs(fake_decoder):
    z = torch.nn.functional.normalize(torch.ones(2, 8), dim=-1)
    path = Trajectory(tag(z, "fake-space"), [Segment(3)])
    with pytest.raises(ArgumentError, match="Trajectory"):
        render(path.embeddings(), fake_decoder, noise="slerp", progress=False)
    with pytest.raises(ArgumentError, match="keyframe_noise"):
        render(path, fake_decoder, noise="inverted", progress=False)
    with pytest.raises(ArgumentError, match="shape"):
        render(path, fake_decoder, noise="slerp", keyframe_noise=torch.zeros(3, 1, 8, 8), progress=False)
    with pytest.raises(ArgumentError, match="apply to"):
        render(path, fake_decoder, noise="shared", keyframe_seeds=[1, 2], progress=False)
    with pytest.raises(ArgumentError, match="noise must be"):
        render(path, fake_decoder, noise="fresh", progress=False)
    kn = torch.randn(2, 1, 8, 8)
    f = render(path, fake_decoder, noise="inverted", keyframe_noise=kn, progress=False)
    assert np.array_equal(f[0], fake_decoder.decode(path.embeddings()[:1], kn[:1])[0])


# -- spec, render_spec and CLI ------------------------------------------------------------


def test_spec_quality_fields(images):
    kfs = [{"image": str(images[0])}, {"image": str(images[1]), "seed": 7}]
    s = ll.load_spec({"keyframes": kfs, "preset": "tiny", "noise": "slerp", "pacing": "even", "seed": 2})
    assert s.pacing == "even" and s.pacing_metric == "clip" and s.keyframe_seeds() == [2, 7]
    assert ll.load_spec({"keyframes": kfs}).pacing == "uniform"
    assert ll.load_spec({"keyframes": kfs, "pacing_metric": "clip"}).pacing_metric == "clip"  # the default passes
    # the finer pacing fields stay out of a spec's data unless set (manifests of older renders still match)
    assert not {k for k in ll.load_spec({"keyframes": kfs}).to_dict() if k.startswith("pacing_") and k != "pacing_metric"}
    assert "invert_refine" not in ll.load_spec({"keyframes": kfs}).to_dict()
    for bad, field in (
        ({"pacing": "fast"}, "'pacing'"),
        ({"pacing_metric": "lpips"}, "'pacing_metric'"),
        ({"noise": "per-frame", "pacing": "even"}, "per-frame"),
        ({"pacing_passes": 0}, "'pacing_passes'"),
        ({"pacing_coarse": 0}, "'pacing_coarse'"),
        ({"pacing_tol": -1}, "'pacing_tol'"),
        ({"pacing_max_samples": 1.5}, "'pacing_max_samples'"),
        ({"pacing_min_width": 1.0}, "'pacing_min_width'"),
        ({"pacing_relax": -1}, "'pacing_relax'"),
        ({"pacing_metric": "pixel"}, "'pacing_metric' applies to pacing = 'even' or 'fine' only"),
        ({"eta": 1.5}, "'eta'"),
        ({"invert_refine": -2}, "'invert_refine'"),
    ):
        with pytest.raises(SpecError, match=field):
            ll.load_spec({"keyframes": kfs, **bad})
    with pytest.raises(SpecError, match=r"keyframes\[1\].seed"):
        ll.load_spec({"keyframes": [kfs[0], {"image": str(images[1]), "seed": "x"}]})


def test_render_spec_even_pacing_and_resume(tmp_path, images, monkeypatch):
    import latentlab.pacing as pacing_mod

    spec = {
        "preset": "tiny", "steps": 2, "frames": 6, "format": "gif", "noise": "slerp", "pacing": "even",
        "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}],
    }  # fmt: skip
    out = tmp_path / "r"
    res = ll.render_spec(spec, out_dir=out, progress=False)
    assert res.frames.shape[0] == 7 and res.pacing is not None
    assert res.trajectory.segments[0].ts is not None and len(res.trajectory) == 7
    saved = json.loads((out / "pacing.json").read_text())
    assert saved["trajectory"]["segments"][0]["ts"] == res.trajectory.segments[0].ts
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["noise"] == "slerp" and manifest["keyframe_seeds"] == [0, 1]
    calls = []
    monkeypatch.setattr(pacing_mod, "even_pacing", lambda *a, **k: calls.append(1))
    again = ll.render_spec(spec, out_dir=out, progress=False)  # resumes: no new measurement
    assert calls == [] and np.array_equal(again.frames, res.frames)
    # the same render resumed from Python keeps the spec on record (it wrote "spec": null, and
    # render_spec then refused its own folder as "a different render")
    dec = ll.create_decoder("tiny")
    ll.render(res.trajectory, dec, out_dir=out, steps=2, noise="slerp", progress=False)
    assert json.loads((out / "manifest.json").read_text())["spec"] == manifest["spec"]
    assert np.array_equal(ll.render_spec(spec, out_dir=out, progress=False).frames, res.frames)
    # another spec into the same folder is refused before pacing, leaving the folder as it was
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    with pytest.raises(ArgumentError, match="holds a different render"):
        ll.render_spec({**spec, "seed": 5}, out_dir=out, progress=False)
    assert calls == [] and {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    # the same settings written another way are the same render: no refusal, nothing decoded again
    assert ll.render_spec({**spec, "guidance_scale": 1}, out_dir=out, progress=False).frames.shape[0] == 7
    assert calls == []
    # the same spec with a picture changed under its path: refused before pacing, caches kept
    ll.save_image(np.full((64, 64, 3), 90, np.uint8), images[1])
    with pytest.raises(ArgumentError, match="render of other keyframe pictures"):
        ll.render_spec(spec, out_dir=out, progress=False)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert calls == [] and after["pacing.json"] == before["pacing.json"]


@pytest.mark.parametrize("manifest", ["", "null", "[]", '{"spec": "x"}', '{"spec": {"keyframes": 5}}'])
def test_an_unreadable_manifest_is_refused_before_pacing(tmp_path, images, monkeypatch, manifest):
    """A manifest that is not one of latentlab's (truncated, or JSON of another shape) was refused
    only by render(), after inverting and pacing had run and written their caches, or (wrong
    types) crashed with a traceback."""
    import latentlab.pacing as pacing_mod

    spec = {
        "preset": "tiny", "steps": 2, "frames": 4, "format": "gif", "noise": "slerp", "pacing": "even",
        "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}],
    }  # fmt: skip
    out = tmp_path / "r"
    out.mkdir()
    (out / "manifest.json").write_text(manifest)
    calls = []
    monkeypatch.setattr(pacing_mod, "even_pacing", lambda *a, **k: calls.append(1))
    with pytest.raises(ArgumentError, match="unreadable manifest.json"):
        ll.render_spec(spec, out_dir=out, progress=False)
    assert calls == [] and sorted(p.name for p in out.iterdir()) == ["manifest.json"]


def test_spec_passes_the_finer_pacing_settings_and_keys_the_cache_by_them(tmp_path, images, monkeypatch):
    import latentlab.pacing as pacing_mod

    fine = {"pacing_coarse": 3, "pacing_passes": 2, "pacing_tol": 0.1, "pacing_max_samples": 5, "pacing_min_width": 0.01,
            "pacing_relax": 1}  # fmt: skip
    spec = {
        "preset": "tiny", "steps": 2, "frames": 4, "format": "gif", "pacing": "even", **fine,
        "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}],
    }  # fmt: skip
    real, seen = pacing_mod.even_pacing, []
    monkeypatch.setattr(pacing_mod, "even_pacing", lambda *a, **k: seen.append(k) or real(*a, **k))
    out = tmp_path / "r"
    res = ll.render_spec(spec, out_dir=out, progress=False)
    assert {k: seen[0][k] for k in ("coarse", "passes", "tol", "max_samples", "min_width", "relax")} == {
        k.removeprefix("pacing_"): v for k, v in fine.items()}  # fmt: skip
    assert res.pacing.decodes > 3 + 1  # the coarse pass, then a second pass
    assert res.pacing.frame_stats["n"] == 4  # the relaxation round measured the frames themselves
    saved = json.loads((out / "pacing.json").read_text())
    assert saved["frame_stats"] == res.pacing.frame_stats
    from latentlab.jobs import _pacing_key
    from latentlab.spec import load_spec

    s = load_spec(spec)
    dec = ll.create_decoder("tiny")
    key = _pacing_key(s, res.trajectory, dec, None)
    assert key != _pacing_key(load_spec({**spec, "pacing_passes": 3}), res.trajectory, dec, None)
    assert key != _pacing_key(load_spec({**spec, "pacing_min_width": 0.02}), res.trajectory, dec, None)
    assert key != _pacing_key(load_spec({**spec, "pacing_scope": "path"}), res.trajectory, dec, None)
    assert key != _pacing_key(load_spec({**spec, "pacing_relax": 2}), res.trajectory, dec, None)


def test_fine_pacing_uses_the_measured_recipe_under_the_specs_own_fields(tmp_path, images, monkeypatch):
    import latentlab.pacing as pacing_mod
    from latentlab.jobs import _pacing_key
    from latentlab.pacing import fine_pacing_settings
    from latentlab.spec import load_spec

    spec = {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif", "pacing": "fine",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    real, seen = pacing_mod.even_pacing, []
    monkeypatch.setattr(pacing_mod, "even_pacing", lambda *a, **k: seen.append(k) or real(*a, **k))
    res = ll.render_spec({**spec, "pacing_relax": 1, "pacing_max_samples": 4}, out_dir=tmp_path / "r", progress=False)
    recipe = fine_pacing_settings(Trajectory.interpolate(*torch.eye(2).split(1), frames=3))
    assert recipe == {"coarse": 12, "passes": 3, "tol": 0.1, "max_samples": 39, "min_width": 0.001, "relax": 6}
    # the recipe, with the two fields the spec sets in its place
    assert {k: seen[0][k] for k in recipe} == {**recipe, "relax": 1, "max_samples": 4}
    assert res.pacing.frame_stats["n"] == 3 and len(res.trajectory) == 4
    assert fine_pacing_settings(Trajectory(torch.eye(2), [Segment(24)]))["coarse"] == 24  # one sample per frame
    # "fine" and "even" measure differently, so their caches differ; per-frame noise is refused
    dec = ll.create_decoder("tiny")
    fine, even = load_spec(spec), load_spec({**spec, "pacing": "even"})
    assert _pacing_key(fine, res.trajectory, dec, None) != _pacing_key(even, res.trajectory, dec, None)
    with pytest.raises(SpecError, match="per-frame"):
        load_spec({**spec, "noise": "per-frame"})


def test_cli_quality_flags():
    from latentlab.cli import _overrides, build_parser

    args = build_parser().parse_args(
        ["interpolate", "a.png", "b.png", "--pacing", "even", "--pacing-metric", "pixel", "--noise", "slerp"]
    )
    assert _overrides(args) == {"pacing": "even", "pacing_metric": "pixel", "noise": "slerp"}
    assert _overrides(build_parser().parse_args(["render", "s.toml", "--pacing", "fine"])) == {"pacing": "fine"}
    args = build_parser().parse_args(["render", "s.toml", "--noise", "inverted", "--invert-refine", "0", "--eta", "0.3"])
    assert _overrides(args)["noise"] == "inverted" and _overrides(args)["invert_refine"] == 0
    assert _overrides(args)["eta"] == 0.3
    args = build_parser().parse_args(
        ["interpolate", "a.png", "b.png", "--pacing", "even", "--pacing-coarse", "12", "--pacing-passes", "3",
         "--pacing-tol", "0.1", "--pacing-max-samples", "39", "--pacing-min-width", "0.001", "--pacing-scope", "path",
         "--pacing-relax", "6"]
    )  # fmt: skip
    assert _overrides(args) == {"pacing": "even", "pacing_coarse": 12, "pacing_passes": 3, "pacing_tol": 0.1,
                                "pacing_max_samples": 39, "pacing_min_width": 0.001, "pacing_scope": "path",
                                "pacing_relax": 6}  # fmt: skip


# -- DDIM inversion on the embedded mini decoder ---------------------------------------------


@pytest.fixture(scope="module")
def mini():
    from latentlab.errors import ModelNotAvailableError

    try:
        return ll.create_encoder("mini"), ll.create_decoder("mini")
    except ModelNotAvailableError as exc:  # the weights are re-exported by training runs
        pytest.skip(f"mini weights not available: {exc}")


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean())
    return 10 * math.log10(255.0**2 / max(mse, 1e-10))


def _scenes(n: int) -> np.ndarray:
    from latentlab.mini.shapes import render_scene, sample_scene

    return np.stack([render_scene(sample_scene(i, n_objects=1)) for i in range(n)])


def test_inversion_redraws_the_decoders_own_pictures(mini):
    enc, dec = mini
    z = enc.encode_image(_scenes(2))
    kw = dict(steps=8, guidance_scale=1.0)
    pictures = dec.decode(z, make_noise(dec.noise_shape(), [5, 5]), **kw)  # in the decoder's own world
    other = dec.decode(z, make_noise(dec.noise_shape(), [0, 0]), **kw)
    noise = dec.invert(pictures, z, steps=8, refine=0)  # the DDIM inversion alone
    assert noise.shape == (2, *dec.noise_shape()) and noise.dtype == torch.float32
    # a starting noise of sane size, neither a blow-up nor a collapse; narrower than Gaussian
    # (std about 0.26 at 8 steps on the shipped weights, 0.5 at 25): the first steps are clamped
    # almost everywhere, and inverting them exactly lands on the smaller noise that the clamp
    # maps to the same step
    assert 0.2 < float(noise.std()) < 1.25
    again = dec.decode(z, noise, **kw)
    inv = np.mean([_psnr(a, b) for a, b in zip(again, pictures)])
    base = np.mean([_psnr(a, b) for a, b in zip(other, pictures)])
    assert inv > base + 3, (inv, base)
    assert torch.equal(dec.invert(pictures, z, steps=8, refine=0), noise)  # deterministic
    plain = dec.__class__.inversion_iterations
    try:
        dec.inversion_iterations = 0  # plain DDIM inversion: the fixed point does not do worse
        naive = dec.decode(z, dec.invert(pictures, z, steps=8, refine=0), **kw)
    finally:
        dec.inversion_iterations = plain
    assert inv >= np.mean([_psnr(a, b) for a, b in zip(naive, pictures)]) - 0.5


def test_inversion_is_more_faithful_than_shared_noise_on_inputs(mini):
    enc, dec = mini
    images = _scenes(3)
    z = enc.encode_image(images)
    shared = dec.decode(z, make_noise(dec.noise_shape(), [0, 0, 0]), steps=10)
    # refine=0, not the decoder's 20 (which took 38 of this test's 41 s): DDIM inversion alone
    # already beats shared noise by far here (PSNR 27 against 10); that refining comes closer
    # still is tested below
    inverted = dec.decode(z, dec.invert(images, z, steps=10, refine=0), steps=10)
    psnr = lambda f: np.mean([_psnr(a, b) for a, b in zip(f, images)])  # noqa: E731
    cos = lambda f: float((enc.encode_image(f) * z).sum(-1).mean())  # noqa: E731
    assert psnr(inverted) > psnr(shared)
    assert cos(inverted) > cos(shared)


def test_invert_checks_inputs_and_unsupported_decoders(mini, tiny_decoder, fake_decoder):
    enc, dec = mini
    z = enc.encode_image(_scenes(1))
    with pytest.raises(ArgumentError, match="uint8"):
        dec.invert(np.zeros((64, 64, 3), np.float32), z)
    with pytest.raises(ArgumentError, match="rows"):
        dec.invert(np.zeros((2, 64, 64, 3), np.uint8), z)
    assert dec.supports_inversion and tiny_decoder.supports_inversion  # mini and Stable unCLIP invert
    assert not fake_decoder.supports_inversion
    z_fake = torch.nn.functional.normalize(torch.ones(1, 8), dim=-1)
    with pytest.raises(LatentlabError, match="cannot invert"):
        fake_decoder.invert(np.zeros((8, 8, 3), np.uint8), ll.tag(z_fake, "fake-space"))
    with pytest.raises(ArgumentError, match="refine must be an integer"):
        dec.invert(np.zeros((64, 64, 3), np.uint8), z, refine=-1)
    assert dec.supports_refine and not tiny_decoder.supports_refine
    with pytest.raises(ArgumentError, match="refine=0"):  # asked for explicitly where it is not implemented
        tiny_decoder.invert(np.zeros((32, 32, 3), np.uint8), torch.ones(1, tiny_decoder.dim) / tiny_decoder.dim**0.5,
                            steps=2, refine=1)  # fmt: skip


def test_refined_inversion_redraws_inputs_closer_at_the_render_guidance(mini):
    enc, dec = mini
    images = np.concatenate([_scenes(2), ll.load_image(EMOJI / "mobile_phone_noto.png")[None]])
    z = enc.encode_image(images)
    plain = dec.invert(images, z, steps=6, refine=0)
    refined = dec.invert(images, z, steps=6, refine=6)  # decode_guidance: the decoder's default, as a render uses
    assert dec.default_inversion_refine > 0
    dec.default_inversion_refine = 2  # refine=None means the decoder's default (an instance attribute here)
    try:
        assert torch.equal(dec.invert(images[:1], z[:1], steps=6), dec.invert(images[:1], z[:1], steps=6, refine=2))
    finally:
        del dec.default_inversion_refine
    psnr = lambda n: np.array([_psnr(a, b) for a, b in zip(dec.decode(z, n, steps=6), images)])  # noqa: E731
    before, after = psnr(plain), psnr(refined)
    assert np.all(after >= before - 0.3), (before, after)  # each image keeps its best noise (error read at 32 px)
    assert after.mean() > before.mean() + 1.0, (before, after)
    assert ((refined - plain).flatten(1).norm(dim=1) > 0).any()
    # every noise keeps the length the inversion gave it
    assert torch.allclose(refined.flatten(1).norm(dim=1), plain.flatten(1).norm(dim=1), rtol=1e-4)
    # refining for another guidance gives another noise
    assert not torch.equal(refined, dec.invert(images, z, steps=6, refine=6, decode_guidance=1.0))
    # an image's refined noise does not depend on the images inverted with it
    assert torch.equal(refined[1:2], dec.invert(images[1:2], z[1:2], steps=6, refine=6))


def test_eta_one_at_five_steps_draws_pictures_not_nan(mini):
    # an audit (2026-12-06): at eta 1 and 5 steps, float32 rounded 1 - a_prev - sigma^2 (>= 0) below
    # 0 at the first step, and every frame came out black (NaN) with no error
    from latentlab.mini.runtime import sample_decoder_eta

    enc, dec = mini
    z = enc.encode_text(["a red cross"])
    noise = torch.randn(2, *dec.noise_shape(), generator=torch.Generator().manual_seed(0))
    for steps in (5, 6):
        x = sample_decoder_eta(dec.net, z.expand(2, -1), noise, seeds=[0, 1], eta=1.0, steps=steps)
        assert torch.isfinite(x).all() and x.std() > 0.1, steps


def test_refining_the_inverted_noise_shows_progress(mini, recording_bars):
    # refining is the slow part (seconds per picture): notebook 03's slowest cell showed nothing.
    # (Recorded, not read off stderr: tqdm clears this bar at the end, and the last count it drew
    # depended on its mininterval, so "4/4" was seen only on a slow machine.)
    enc, dec = mini
    images = _scenes(2)
    z = enc.encode_image(images)
    shown = dec.invert(images, z, steps=2, refine=2)
    assert torch.equal(dec.invert(images, z, steps=2, refine=2, progress=False), shown)
    dec.invert(images, z, steps=2, refine=0)  # no refining: nothing slow to show
    bars = [(b.total, b.n, b.shown) for b in recording_bars if b.desc == "refine inverted noise"]
    assert bars == [(4, 4, True), (4, 4, False)]  # 2 pictures x 2 steps, each counted; then progress=False


def test_inverted_morph_starts_and_ends_on_the_inverted_noise(mini, tmp_path):
    from latentlab.video import save_image

    enc, dec = mini
    images = _scenes(2)
    paths = [save_image(im, tmp_path / f"k{i}.png") for i, im in enumerate(images)]
    spec = {"preset": "mini", "steps": 4, "frames": 2, "noise": "inverted", "format": "gif", "invert_refine": 2,
            "guidance_scale": 2.0, "keyframes": [{"image": str(p)} for p in paths]}  # fmt: skip
    calls = []
    real = dec.invert
    dec.invert = lambda *a, **k: calls.append(k) or real(*a, **k)
    try:
        res = ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec)
    finally:
        del dec.invert
    # refined for the render's guidance (its own bar counts the keyframes)
    assert calls == [{"steps": 4, "refine": 2, "decode_guidance": 2.0, "progress": False}] * 2
    kf = res.trajectory.keyframes
    for i, k in ((0, 0), (1, -1)):
        n = dec.invert(images[i], kf[i : i + 1], steps=4, refine=2, decode_guidance=2.0)
        alone = dec.decode(kf[i : i + 1], n, steps=4, guidance_scale=2.0)[0]
        assert np.abs(res.frames[k].astype(int) - alone.astype(int)).max() <= 2  # batch rounding only
    manifest = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert manifest["noise"] == "inverted" and len(manifest["keyframe_noise_sha256"]) == 64
    # a rerun (resume) reads the inverted noise back instead of inverting again
    assert (tmp_path / "r" / "keyframe_noise.pt").is_file()
    calls.clear()
    dec.invert = lambda *a, **k: calls.append(k) or real(*a, **k)
    try:
        again = ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec)
        assert calls == [] and np.array_equal(again.frames, res.frames)
        # another refinement is another noise: inverted again, and the folder refuses the other render
        with pytest.raises(ArgumentError, match="different render"):
            ll.render_spec({**spec, "invert_refine": 1}, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec)
        from latentlab.jobs import keyframe_noise
        from latentlab.spec import load_spec

        s1 = load_spec({**spec, "invert_refine": 1})
        keyframe_noise(s1, res.trajectory, dec, directory=tmp_path / "r")
        assert len(calls) == 2
    finally:
        del dec.invert


def test_inverted_text_diff_keeps_the_pictures_noise(mini, tmp_path):
    from latentlab.jobs import keyframe_noise
    from latentlab.spec import load_spec
    from latentlab.video import save_image

    enc, dec = mini
    path = save_image(_scenes(1)[0], tmp_path / "k.png")
    td = {"text_diff": {"from": "a red circle", "to": "a blue circle", "theta": 0.4}}
    spec = load_spec({"preset": "mini", "steps": 3, "noise": "inverted", "invert_refine": 0,
                      "keyframes": [{"image": str(path)}, td, {**td, "seed": 9}]})  # fmt: skip
    traj = spec.resolve(enc)
    kn = keyframe_noise(spec, traj, dec)
    assert torch.equal(kn[0], dec.invert(ll.load_image(path), traj.keyframes[:1], steps=3, refine=0)[0])
    assert torch.equal(kn[1], kn[0])  # the text diff of the picture keeps its inverted noise
    assert torch.equal(kn[2], make_noise(dec.noise_shape(), [9])[0])  # a keyframe with its own seed keeps it


# -- iterative text diff ----------------------------------------------------------------------


def test_iterative_text_diff_refuses_a_numpy_embedding_and_a_bad_seed(tiny_encoder, tiny_decoder):
    z = tiny_encoder.encode_text(["a red circle"]).numpy()
    for row in (z, np.abs(z), z[0]):  # a row of a render's embeddings.npy; non-negative, it was drawn as a 1-pixel picture
        with pytest.raises(ArgumentError, match=r"image_or_embedding must be a torch.Tensor.*torch.from_numpy"):
            ll.iterative_text_diff(tiny_encoder, tiny_decoder, row, "a photo", "a drawing", max_steps=0, steps=1)
    for seed in (None, 1.5):  # a raw TypeError; 1.5 taken as 1
        with pytest.raises(ArgumentError, match="seed must be an integer"):
            ll.iterative_text_diff(tiny_encoder, tiny_decoder, torch.from_numpy(z), "a photo", "a drawing",
                                   max_steps=0, steps=1, seed=seed)  # fmt: skip


def test_iterative_text_diff_re_encodes_between_steps(tiny_encoder, tiny_decoder):
    from latentlab.ops import text_diff

    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    run = ll.iterative_text_diff(tiny_encoder, tiny_decoder, img, "a photo", "a drawing", theta_step=0.3,
                                 max_steps=3, steps=2, adaptive=False)  # fmt: skip
    assert run.frames.shape == (4, 64, 64, 3) and run.embeddings.shape == (4, 32) and len(run.similarity) == 4
    assert not run.reached
    src, dst = tiny_encoder.encode_text(["a photo", "a drawing"]).split(1)
    back = tiny_encoder.encode_image(run.frames[1])
    assert torch.allclose(run.embeddings[2:3], text_diff(back, src, dst, 0.3), atol=1e-5)
    assert run.similarity[2] == pytest.approx(float((tiny_encoder.encode_image(run.frames[2]) * dst).sum()), abs=1e-5)
    assert torch.allclose(run.embeddings.norm(dim=-1), torch.ones(4), atol=1e-5)
    # a reached target stops early; the same call gives the same frames
    early = ll.iterative_text_diff(tiny_encoder, tiny_decoder, run.embeddings[:1], "a photo", "a drawing",
                                   theta_step=0.3, target=-1.0, max_steps=3, steps=2)  # fmt: skip
    assert len(early) == 1 and early.reached and np.array_equal(early.frames[0], run.frames[0])
    with pytest.raises(ArgumentError, match="theta_step"):
        ll.iterative_text_diff(tiny_encoder, tiny_decoder, img, None, "x", theta_step=0)
    for bad in ({"grow": 1.0}, {"min_gain": -0.1}):
        with pytest.raises(ArgumentError, match=next(iter(bad))):
            ll.iterative_text_diff(tiny_encoder, tiny_decoder, img, None, "x", **bad)
    # results read briefly in a notebook: no pixel arrays in the repr, a picture as HTML
    assert repr(run) == f"IterativeEdit(4 frames of 64x64, reached=False, similarity=[{', '.join(f'{s:.3f}' for s in run.similarity)}], 3 steps tried)"
    assert "<img" in run._repr_html_()


def test_edits_name_a_model_passed_in_the_wrong_place(tiny_encoder, tiny_decoder):
    z = tiny_encoder.encode_text("a photo")
    prior = ll.create_prior("tiny")
    with pytest.raises(ArgumentError, match=r"encoder must be a latentlab Encoder .* got Tensor; the call is iterative_text_diff\(encoder, decoder"):
        ll.iterative_text_diff(z, tiny_encoder, tiny_decoder, "a photo", "a drawing")
    with pytest.raises(ArgumentError, match=r"prior must be a latentlab Prior .* got StableUnCLIPDecoder; the call is generate\(encoder, prior, decoder"):
        ll.generate(tiny_encoder, tiny_decoder, prior, "a photo")
    with pytest.raises(ArgumentError, match=r"decoder must be a latentlab Decoder .* got Tensor; the call is variations\(decoder, embedding"):
        ll.variations(z, tiny_decoder)


class _AngleEncoder:
    """A 2-d CLIP space: captions "a" (angle 0) and "b" (90 degrees); a picture's value
    encodes its angle (255 = 90 degrees)."""

    space, dim = "angles", 2

    def encode_text(self, texts):
        from latentlab.space import tag

        return tag(torch.tensor([[1.0, 0.0] if t == "a" else [0.0, 1.0] for t in texts]), self.space)

    def encode_image(self, frames):
        from latentlab.space import tag

        a = torch.as_tensor(np.asarray(frames)[..., 0, 0, 0], dtype=torch.float64) / 255 * (math.pi / 2)
        return tag(torch.stack([a.cos(), a.sin()], -1).float().reshape(-1, 2), self.space)


class _BasinDecoder:
    """Draws the embedding's angle rounded *down* to a multiple of 22.5 degrees: the picture
    holds until the embedding crosses the next level, as real decoders hold a picture."""

    space, dim = "angles", 2

    def noise_shape(self):
        return (1,)

    def decode(self, z, noise, seeds=None, steps=None, guidance_scale=None):
        ang = torch.atan2(z[:, 1].double(), z[:, 0].double()).clamp(0, math.pi / 2)
        level = torch.floor(ang / (math.pi / 8) + 1e-6) * (math.pi / 8)
        v = (level / (math.pi / 2) * 255).round().to(torch.uint8).numpy()
        return np.broadcast_to(v[:, None, None, None], (len(v), 4, 4, 3)).copy()


def test_iterative_text_diff_grows_a_stalled_step_until_the_picture_moves():
    enc, dec = _AngleEncoder(), _BasinDecoder()
    z0 = enc.encode_text(["a"])
    # fixed steps of 0.15 (20 degrees of the 135 to the diff direction) never leave the first picture
    fixed = ll.iterative_text_diff(enc, dec, z0, "a", "b", theta_step=0.15, max_steps=4, adaptive=False)
    assert len(fixed) == 5 and len({f.tobytes() for f in fixed.frames}) == 1
    run = ll.iterative_text_diff(enc, dec, z0, "a", "b", theta_step=0.15, max_steps=8)
    # tried: 0.15 (stalls), 0.24 (moves to 22.5 degrees), then again 0.15 (stalls), 0.24 (45 degrees), ...
    assert [round(t, 2) for t, _, _ in run.tries[:4]] == [0.15, 0.24, 0.15, 0.24]
    assert [k for _, _, k in run.tries[:4]] == [False, True, False, True]
    assert len(run) == 1 + sum(k for _, _, k in run.tries) and run.thetas[0] == 0.0
    assert all(b >= a + 0.01 for a, b in zip(run.similarity, run.similarity[1:]))  # every kept frame moved
    assert run.similarity[-1] > math.sin(math.radians(60))  # got well past where the fixed run stalled
    levels = [int(f[0, 0, 0]) for f in run.frames]
    assert levels == sorted(set(levels))
    assert ll.iterative_text_diff(enc, dec, z0, "a", "b", target=0.6, max_steps=8).similarity[-1] >= 0.6
    # a try that reaches the target is kept and ends the run, however little it gained
    hit = ll.iterative_text_diff(enc, dec, z0, "a", "b", target=run.similarity[1], min_gain=5.0, max_steps=8)
    assert hit.reached and len(hit) == 2 and hit.similarity[-1] >= run.similarity[1]


# -- the quality benchmark ---------------------------------------------------------------------


def test_quality_benchmark_quick(mini, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality.py"
    spec = importlib.util.spec_from_file_location("quality_bench", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "q"
    assert bench.main(["--quick", "--out", str(out), "--json", str(tmp_path / "r.json")]) == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert res["settings"]["quick"] and len(res["rows"]) == 2 and len(bench.MORPHS) >= 10
    # the emoji morphs read their pictures from examples/emoji/ (shipped with the repo)
    assert [e["to"] for e in res["edits"]] == [e[2] for e in bench.EDITS]
    assert all(len(e["iterative"]) == len(e["one_shot"]) == 3 and all(-1 <= v <= 1 for v in e["iterative"])
               for e in res["edits"])  # fmt: skip
    for e in res["edits"]:  # the adaptive run: up to 2 x 2 tries, and each kept frame moved towards the caption
        assert 1 <= len(e["adaptive"]) <= e["adaptive_decodes"] <= 5 and len(e["adaptive_thetas"]) == len(e["adaptive"])
        assert all(b >= a + 0.01 for a, b in zip(e["adaptive"], e["adaptive"][1:]))
        assert len(e["one_shot_inverted"]) == len(e["thetas"]) and 1 <= len(e["adaptive_inverted"]) <= 5
        assert all(b >= a + 0.01 for a, b in zip(e["adaptive_inverted"], e["adaptive_inverted"][1:]))
    var = {v["mode"]: v for v in res["variations"]}
    assert set(var) == {f"eta {e}" for e in bench.ETAS} | {"re-rolled noise"} and all(v["n"] == 2 for v in var.values())
    # variations from the inverted noise stay closer to the input than re-rolled ones
    assert var["eta 0.1"]["psnr_input"][0] > var["re-rolled noise"]["psnr_input"][1]
    pv = {v["mode"]: v for v in res["path_variations"]}
    assert set(pv) == {f"eta {e}" for e in bench.PATH_ETAS} | {"re-rolled shared noise", "base (inverted)", "base (shared)"}
    # whole-morph variations from the inverted noise stay near their eta-0 render and keep the
    # end frames on the inputs; re-rolled shared noise does neither
    assert pv["eta 0.1"]["psnr_base"] > pv["re-rolled shared noise"]["psnr_base"] + 10
    assert pv["eta 0.1"]["end_cos"] > pv["re-rolled shared noise"]["end_cos"]
    chain = {c["mode"]: c for c in res["chain"]}
    assert set(chain) == {"uniform t", "even, per segment", "even, whole path"}
    assert chain["even, per segment"]["segment_frames"] == [4, 4]  # kept per segment
    assert sum(chain["even, whole path"]["segment_frames"]) == 8  # re-split, same budget
    assert chain["uniform t"]["decodes"] == 0 < chain["even, whole path"]["decodes"]
    emoji = [m for m in bench.MORPHS if m[0] == "emoji"]
    assert emoji and all(bench.morph_inputs(m)[0].shape == (2, 64, 64, 3) for m in emoji)
    for r in res["rows"]:
        assert r["frames"] == r["even_frames"] == 7  # even pacing keeps the frame budget
        ts = r["pacing_ts"]
        assert ts[0] == 0.0 and all(b > a for a, b in zip(ts, ts[1:]))
        fl = r["flicker"]
        assert fl["shared"]["clip"] < 0.01 < fl["per-frame"]["clip"]  # shared noise does not flicker
        # (slerp noise vs per-frame: tested in test_flicker_shared_vs_per_frame_vs_slerp_on_tiny; at 7 quick frames a
        # 15-degree noise step can change a weak decoder's picture as much as fresh noise)
        for k in ("uniform", "even"):
            assert r[k]["cv"] >= 0 and r[k]["max_jump_over_median"] >= 1
            assert r["other_metric"]["metric"] == "pixel" and r["other_metric"][k]["cv"] >= 0  # judged both ways
        assert all(math.isfinite(v) for v in r["faithfulness"].values())
        assert (out / r["name"] / "modes.png").is_file() and (out / r["name"] / "flicker.png").is_file()
    # inversion is more faithful than shared noise, on average over the quick morphs
    s = res["summary"]
    assert s["inverted_psnr"]["mean"] > s["shared_psnr"]["mean"]
    assert s["inverted_psnr"]["mean"] >= s["ddim_psnr"]["mean"] - 0.3  # refining keeps each image's best noise
    printed = capsys.readouterr().out
    assert "| morph | CV uniform | CV even |" in printed and "| **mean** |" in printed
    assert (out / "results.json").is_file()


# -- variations -------------------------------------------------------------------------------


def test_variations_reroll_and_inverted(mini, tmp_path):
    enc, dec = mini
    image = _scenes(1)[0]
    z = enc.encode_image(image)
    reroll = ll.variations(dec, z, n=3, steps=6, seed=4)
    assert reroll.shape == (3, 64, 64, 3) and reroll.dtype == np.uint8
    expected = dec.decode(z.expand(3, -1), make_noise(dec.noise_shape(), [4, 5, 6]), steps=6)
    assert np.abs(reroll.astype(int) - expected.astype(int)).max() <= 2
    # eta and refine are checked in reroll mode too (eta=5 and refine=-3 were silently ignored)
    with pytest.raises(ArgumentError, match=r"eta must be a number in \[0, 1\] \(mode='inverted': in \(0, 1\]\)"):
        ll.variations(dec, z, n=2, steps=2, eta=5)  # the range reroll takes (it said (0, 1], then took 0)
    with pytest.raises(ArgumentError, match="refine"):
        ll.variations(dec, z, n=2, steps=2, refine=-3)
    for unused in (0, 0.0, None):  # which reroll always took
        assert ll.variations(dec, z, n=1, steps=2, eta=unused).shape == (1, 64, 64, 3)
    redraw = dec.decode(z, dec.invert(image, z, steps=6, refine=1), steps=6)[0]
    near = ll.variations(dec, z, image=image, n=3, eta=0.1, steps=6, seed=4, refine=1)
    far = ll.variations(dec, z, image=image, n=3, eta=0.8, steps=6, seed=4, refine=1)
    assert not np.array_equal(near[0], near[1])  # they do vary
    # centred on the input's redraw (its inverted noise decoded): far closer to it than
    # rerolled noise, and closer the smaller eta is
    to_redraw = lambda f: np.mean([_psnr(x, redraw) for x in f])  # noqa: E731
    assert to_redraw(near) > to_redraw(reroll) + 5
    assert to_redraw(near) > to_redraw(far) + 3
    assert np.array_equal(ll.variations(dec, z, image=image, n=3, eta=0.1, steps=6, seed=4, refine=1), near)
    ll.save_image(image, tmp_path / "in.png")  # a path to the picture works as well, and a PIL image
    from_path = ll.variations(dec, z, image=str(tmp_path / "in.png"), n=3, eta=0.1, steps=6, seed=4, refine=1)
    assert np.array_equal(from_path, near)
    from PIL import Image

    assert np.array_equal(ll.variations(dec, z, image=Image.fromarray(image), n=3, eta=0.1, steps=6, seed=4, refine=1), near)
    with pytest.raises(SpaceError, match="embedding lives in CLIP space"):  # as decode refuses it
        ll.variations(dec, tag(z.clone(), "other-space"), n=2, steps=2)
    with pytest.raises(ArgumentError, match="image="):
        ll.variations(dec, z, mode="inverted")
    with pytest.raises(ArgumentError, match=r"eta must be a number in \(0, 1\], got 0"):
        ll.variations(dec, z, image=image, eta=0)


def test_variations_show_progress_while_inverting_and_decoding(mini, capsys):
    """ll.variations had no progress bar: variations around the inverted noise were silent for
    most of a minute on a CPU."""
    enc, dec = mini
    image = _scenes(1)[0]
    z = enc.encode_image(image)
    capsys.readouterr()
    quiet = ll.variations(dec, z, image=image, n=2, eta=0.3, steps=2, refine=1, progress=False)
    assert capsys.readouterr().err == ""
    shown = ll.variations(dec, z, image=image, n=2, eta=0.3, steps=2, refine=1, progress=True)
    err = capsys.readouterr().err
    assert "refine inverted noise" in err and "decode variations" in err
    assert np.array_equal(quiet, shown)  # the bars change nothing drawn
    ll.variations(dec, z, image=image, n=2, eta=0.3, steps=2, refine=0)  # default: a bar, two decodes to wait for
    assert "decode variations" in capsys.readouterr().err
    ll.variations(dec, z, n=2, steps=2)  # reroll, one decode: none by default
    assert "decode variations" not in capsys.readouterr().err
    with pytest.raises(ArgumentError, match="progress must be True, False or None"):
        ll.variations(dec, z, n=2, steps=2, progress="yes")


def test_generate_draws_prior_samples_and_gives_the_decoder_the_prompt(mini):
    """ll.generate: picture k is the prior's sample and the noise of seed + k, drawn with the
    prompt where the decoder reads captions (mini), so its layout expert places the objects."""
    from latentlab.mini import shapes

    enc, dec = mini
    prior = ll.create_prior("mini")
    prompt = "a red circle above a blue square"
    got = ll.generate(enc, prior, dec, prompt, n=3, seed=5, steps=6)
    assert got.shape == (3, 64, 64, 3) and got.dtype == np.uint8
    z = torch.cat([prior(enc.encode_text([prompt]), seed=s) for s in (5, 6, 7)])
    noise = make_noise(dec.noise_shape(), [5, 6, 7])
    expected = dec.decode(tag(z, "latentlab-mini"), noise, steps=6, captions=[prompt] * 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2
    alone = ll.generate(enc, prior, dec, prompt, n=3, seed=5, steps=6, captions=False)
    assert np.abs(alone.astype(int) - dec.decode(tag(z, "latentlab-mini"), noise, steps=6).astype(int)).max() <= 2
    assert np.abs(alone.astype(int) - got.astype(int)).mean() > 2  # the prompt changes the pictures
    one = ll.generate(enc, prior, dec, prompt, n=1, seed=6, steps=6, batch_size=1)  # picture 1 alone
    assert np.abs(one[0].astype(int) - got[1].astype(int)).max() <= 2
    # what the prompt is for: relation prompts, one picture each (measured: 6 of 8 right with it, 0 without)
    scenes = shapes.relation_scenes(32_000, 8)
    right = {c: sum(shapes.check_relation(ll.generate(enc, prior, dec, shapes.caption(sc, 0), n=1, seed=k, captions=c)[0],
                                           sc)["both"] for k, sc in enumerate(scenes))
             for c in (None, False)}  # fmt: skip
    assert right[None] >= 5 and right[None] >= right[False] + 3, right
    for kw, match in ((dict(n=0), "n must be"), (dict(batch_size=0), "batch_size"), (dict(captions="yes"), "captions must"),
                      (dict(seed=1.5), "seed must")):  # fmt: skip
        with pytest.raises(ArgumentError, match=match):
            ll.generate(enc, prior, dec, prompt, **kw)
    with pytest.raises(ArgumentError, match="prompt must"):
        ll.generate(enc, prior, dec, "  ")
    with pytest.raises(ArgumentError, match="needs the preset's prior"):
        ll.generate(enc, None, dec, prompt)


def _reading_no_captions(dec):
    """``dec`` as a decoder that reads no captions (as Kandinsky's): the base Decoder's own
    ``reads_captions`` (False) and refusal, the rest of ``dec`` unchanged."""
    import copy

    from latentlab.decoders.base import Decoder

    cls = type(f"NoCaptions{type(dec).__name__}", (type(dec),), {"reads_captions": Decoder.reads_captions})
    out = copy.copy(dec)
    out.__class__ = cls
    return out


def test_generate_with_a_decoder_that_reads_no_captions(tiny_encoder, tiny_decoder):
    prior = ll.create_prior("tiny")
    tiny_decoder = _reading_no_captions(tiny_decoder)
    assert not tiny_decoder.reads_captions
    got = ll.generate(tiny_encoder, prior, tiny_decoder, "a cat", n=3, seed=2, steps=2, batch_size=2)
    z = torch.cat([prior(tiny_encoder.encode_text(["a cat"]), seed=s) for s in (2, 3, 4)])
    expected = tiny_decoder.decode(tag(z, tiny_decoder.space), make_noise(tiny_decoder.noise_shape(), [2, 3, 4]), steps=2)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 2
    with pytest.raises(ArgumentError, match="reads no captions"):
        ll.generate(tiny_encoder, prior, tiny_decoder, "a cat", n=1, steps=2, captions=True)
    with pytest.raises(ArgumentError, match="decoder .* reads no captions; leave captions out"):
        tiny_decoder.decode(tag(z[:1], tiny_decoder.space), make_noise(tiny_decoder.noise_shape(), [0]), captions=["a cat"])


def test_eta_renders_coherent_variations_of_a_whole_path(mini, tiny_decoder, tmp_path):
    enc, dec = mini
    pics = _scenes(2)
    z = enc.encode_image(pics)
    kn = dec.invert(pics, z, steps=6, refine=1)
    kw = dict(noise="inverted", keyframe_noise=kn, steps=6, progress=False)
    # a path whose embedding stays put: every frame of a variation is the same picture
    still = Trajectory(torch.cat([z[:1], z[:1]]), [Segment(3)])
    kn_still = torch.cat([kn[:1], kn[:1]])
    v = {s: render(still, dec, **{**kw, "keyframe_noise": kn_still}, seed=s, eta=0.5) for s in (0, 1)}
    spread = lambda f: max(int(np.abs(f[0].astype(int) - x.astype(int)).max()) for x in f)  # noqa: E731
    assert spread(v[0]) <= 2 and spread(v[1]) <= 2  # (float rounding of the slerps)
    assert np.abs(v[0][0].astype(int) - v[1][0].astype(int)).mean() > 2  # another seed, another variation
    # a morph: one variation per seed, near the eta = 0 render, frame k the same in any batch
    path = Trajectory.interpolate(z[:1], z[1:], frames=4)
    base = render(path, dec, **kw)
    var = render(path, dec, **kw, seed=3, eta=0.3)
    alone = render(path, dec, **kw, seed=3, eta=0.3, batch_size=1)  # (CPU kernels round a batch differently)
    assert np.abs(alone.astype(int) - var.astype(int)).max() <= 2
    assert not np.array_equal(var, base)
    assert np.mean([_psnr(a, b) for a, b in zip(var, base)]) > 15
    # even pacing measures the frames the render draws with the same eta
    paced = even_pacing(path, enc, dec, coarse=2, relax=1, seed=3, eta=0.3, **{k: kw[k] for k in ("noise", "keyframe_noise", "steps")})
    frames = render(paced.trajectory, dec, **kw, seed=3, eta=0.3)
    # (not bit for bit: pacing decodes in other batches, and batched CPU kernels move a level)
    assert paced.frame_stats["cv"] == pytest.approx(pacing_stats(frames, encoder=enc)["cv"], abs=1e-3)
    # the manifest records eta only when it is set, so renders from before still resume
    render(path, dec, **kw, out_dir=tmp_path / "r")
    assert "eta" not in json.loads((tmp_path / "r" / "manifest.json").read_text())
    render(path, dec, **kw, seed=3, eta=0.3, out_dir=tmp_path / "v")
    assert json.loads((tmp_path / "v" / "manifest.json").read_text())["eta"] == 0.3
    with pytest.raises(ArgumentError, match="eta"):
        render(path, dec, **kw, eta=1.5)
    with pytest.raises(ArgumentError, match="DDIM eta"):
        render(Trajectory.interpolate(*tag(torch.eye(32)[:2], "tiny-random").split(1), frames=2), tiny_decoder, eta=0.3,
               progress=False)  # fmt: skip


def test_iterative_text_diff_from_the_inverted_noise(mini):
    enc, dec = mini
    img = _scenes(1)[0]
    kw = dict(max_steps=1, steps=6, adaptive=False, theta_step=0.5)
    run = ll.iterative_text_diff(enc, dec, img, "a red circle", "a blue circle", noise="inverted", refine=3, **kw)
    z = enc.encode_image(img)
    noise = dec.invert(img, z, steps=6, refine=3)
    assert np.array_equal(run.frames[0], dec.decode(z, noise, steps=6)[0])  # frame 0 redraws the picture
    shared = ll.iterative_text_diff(enc, dec, img, "a red circle", "a blue circle", **kw)
    assert _psnr(run.frames[0], img) > _psnr(shared.frames[0], img)
    with pytest.raises(ArgumentError, match="noise"):
        ll.iterative_text_diff(enc, dec, img, None, "a blue circle", noise="slerp")
    with pytest.raises(ArgumentError, match="picture"):
        ll.iterative_text_diff(enc, dec, z, None, "a blue circle", noise="inverted")


def test_an_empty_keyframe_noise_cache_is_computed_again(tmp_path, images):
    spec = {"preset": "tiny", "steps": 2, "frames": 3, "format": "gif", "noise": "inverted",
            "keyframes": [{"image": str(images[0])}, {"image": str(images[1])}]}  # fmt: skip
    out = tmp_path / "r"
    first = ll.render_spec(spec, out_dir=out, progress=False).frames
    (out / "keyframe_noise.pt").write_bytes(b"")  # as a power cut could leave it
    for p in out.glob("frame_*.png"):
        p.unlink()
    again = ll.render_spec(spec, out_dir=out, progress=False).frames
    assert np.array_equal(first, again) and (out / "keyframe_noise.pt").stat().st_size > 0


def test_iterative_text_diff_fills_its_notebook_bar_when_it_stops_early(tiny_encoder, tiny_decoder, monkeypatch):
    # in a notebook the text said "1/1" while the widget stayed 1/4 full (tqdm.notebook keeps its max)
    pytest.importorskip("ipywidgets")
    import tqdm.auto
    import tqdm.notebook

    bars = []

    class Bar(tqdm.notebook.tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            bars.append((k.get("desc"), self))

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    z = tiny_encoder.encode_image(np.full((32, 32, 3), 128, np.uint8))
    ll.iterative_text_diff(tiny_encoder, tiny_decoder, z, "a photo", "a drawing", target=-1.0, max_steps=3, steps=1)
    (bar,) = [b for desc, b in bars if desc == "text diff"]
    assert bar.n == 1 and bar.container.children[1].max == bar.container.children[1].value == 1


@pytest.mark.parametrize("method", ["lerp", "nlerp", "slerp"])
def test_even_pacing_refuses_antipodal_keyframes_before_any_decode(method):
    # a lerp segment between opposite keyframes had been decoded (zero-vector frames) before the
    # render refused it; now pacing refuses it first, naming the segment, whatever the method
    e = tag(torch.eye(8)[:1], "snap-space")
    path = Trajectory.interpolate(e, -e, frames=6, method=method)
    dec = SnapDecoder()
    with pytest.raises(ArgumentError, match=r"segment 0 \(keyframes\[0\] -> keyframes\[1\]\) cannot be paced: .*antipodal"):
        even_pacing(path, None, dec, metric="pixel", progress=False)
    assert dec.decoded == 0


def test_render_spec_refuses_models_of_another_presets_space(tmp_path, tiny_encoder, tiny_decoder, images):
    """A batch loop reusing one set of loaded models rendered a spec of another preset with them,
    into a folder whose manifest named the spec's preset; refused before anything is written."""
    spec = {"preset": "mini", "frames": 2, "steps": 1, "format": "gif", "keyframes": [{"image": str(images[0])},
            {"image": str(images[1])}]}  # fmt: skip
    for given in ({"encoder": tiny_encoder, "decoder": tiny_decoder}, {"decoder": tiny_decoder}, {"encoder": tiny_encoder}):
        with pytest.raises(SpaceError, match=r"preset 'mini' works in CLIP space 'latentlab-mini', but the "
                                             r"(decoder|encoder) given works in 'tiny-random'.*preset = 'tiny'"):
            ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, **given)
        assert not (tmp_path / "r").exists()
    res = ll.render_spec({**spec, "preset": "tiny"}, out_dir=tmp_path / "r", progress=False, encoder=tiny_encoder,
                         decoder=tiny_decoder)  # fmt: skip
    assert res.frames.shape[0] == 3
    own = copy.copy(tiny_decoder)
    own.space = "my-own-space"  # a user's model of a space no preset has: told how to name it
    with pytest.raises(SpaceError, match=r"register a preset of space 'my-own-space' \(latentlab.register_preset"):
        ll.render_spec(spec, out_dir=tmp_path / "r2", progress=False, decoder=own)


@pytest.mark.parametrize("kw", [{}, {"passes": 3, "relax": 2, "max_samples": 5}])
def test_even_pacing_bar_has_a_total_and_ends_full(capsys, kw):
    # an audit of long renders: the pacing bar counted with no total, so no time left, on what can be
    # the longest phase of a render (about ten decodes per frame for pacing = "fine")
    import re

    p = even_pacing(snap_path(frames=9), None, SnapDecoder(), metric="pixel", progress=True, **kw)
    err = capsys.readouterr().err
    start = re.search(r"pacing:\s+0%\|[^|]*\| 0/(\d+)", err)
    assert start and int(start.group(1)) >= p.decodes  # the most it could measure, from the start
    assert "pacing: 100%" in err and f"{p.decodes}/{p.decodes}" in err  # and what it did, at the end


def test_even_pacing_bar_in_a_notebook_gets_its_total_and_ends_full(monkeypatch):
    # a review: setting bar.total does not reach tqdm.notebook's widget, which kept a max of 1 (full after
    # the first decode, shown as an unknown-length bar); and max_samples=10**9 made a total of 10**9
    pytest.importorskip("ipywidgets")
    import contextlib
    import io

    import tqdm.auto
    import tqdm.notebook

    bars, seen = [], []

    class Bar(tqdm.notebook.tqdm):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            bars.append(self)

    class Dec(SnapDecoder):
        def _decode(self, *a, **k):
            widget = bars[0].container.children[1]
            seen.append((bars[0].n, widget.max))
            return super()._decode(*a, **k)

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    with contextlib.redirect_stdout(io.StringIO()):
        p = even_pacing(snap_path(frames=9), None, Dec(), metric="pixel", progress=True, batch_size=2, max_samples=10**9)
    first_max = seen[0][1]
    assert p.decodes < first_max <= 5 + 4 * 8 + 1  # coarse 5 samples, bisection at most 4 per frame
    assert all(m == first_max for _, m in seen)
    widget = bars[0].container.children[1]
    assert widget.value == widget.max == p.decodes  # full at the end


def test_the_inverted_noise_cache_of_a_non_square_picture_is_keyed_by_the_crop(mini, tmp_path, monkeypatch):
    # a review: pictures that are not square are inverted over their centre square since 2026-12-06, but a
    # folder's keyframe_noise.pt inverted before (squashed) was still reused, --overwrite included
    from latentlab import jobs
    from latentlab.spec import load_spec
    from latentlab.video import save_image

    enc, dec = mini
    scene = _scenes(1)[0]
    for name, picture, reused in (("square", scene, True), ("wide", np.concatenate([scene, scene], axis=1), False)):
        path = save_image(picture, tmp_path / f"{name}.png")
        assert jobs._inversion_marks([path]) == ({} if reused else {"crop": "centre square"})
        spec = load_spec({"preset": "mini", "steps": 2, "frames": 1, "noise": "inverted", "invert_refine": 0,
                          "keyframes": [{"image": str(path)}, {"image": str(path)}]})  # fmt: skip
        trajectory = spec.resolve(enc, None)
        folder = tmp_path / name
        with monkeypatch.context() as m:  # a cache written by a latentlab before the crop: no marks in its key
            m.setattr(jobs, "_inversion_marks", lambda paths: {})
            old = jobs.keyframe_noise(spec, trajectory, dec, directory=folder)
        data = torch.load(folder / "keyframe_noise.pt", weights_only=True)
        torch.save({"key": data["key"], "noise": torch.zeros_like(old)}, folder / "keyframe_noise.pt")  # recognisable
        now = jobs.keyframe_noise(spec, trajectory, dec, directory=folder)
        assert bool((now == 0).all()) is reused


def test_a_render_inverted_before_the_crop_is_refused_as_another_with_the_reason(mini, tmp_path, monkeypatch):
    # the other half of the review's finding: such a folder must not be continued with the new noise
    # (its frames drawn from the squashed noise), and the refusal says why in words, not two hashes
    from latentlab import jobs
    from latentlab.decoders import base
    from latentlab.errors import ArgumentError
    from latentlab.video import save_image

    enc, dec = mini
    scene = _scenes(1)[0]
    path = save_image(np.concatenate([scene, scene], axis=1), tmp_path / "wide.png")
    spec = {"preset": "mini", "steps": 2, "frames": 1, "noise": "inverted", "invert_refine": 0, "format": "gif",
            "keyframes": [{"image": str(path)}, {"text": "a blue square"}]}  # fmt: skip
    with monkeypatch.context() as m:  # as a latentlab before 2026-12-06 inverted it: squashed, no crop in the key
        m.setattr(jobs, "_inversion_marks", lambda paths: {})
        m.setattr(base, "centre_square", lambda images: images)
        ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec)
    with pytest.raises(ArgumentError, match=r"holds a different render \(the keyframes' inverted noise \(.*not square"):
        ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec)
    ll.render_spec(spec, out_dir=tmp_path / "r", progress=False, encoder=enc, decoder=dec, overwrite=True)


# ------------------------------------------------------------------------------------
# even pacing and iterative text diffs: behaviour a mutation test found unpinned (2026-12-07)
# ------------------------------------------------------------------------------------
def test_fine_pacing_settings_scale_with_the_longest_segment_and_the_whole_path():
    """coarse: one sample per frame of the *longest* segment (not of the path); max_samples: three
    per frame of the path, its closing frame included (3 * 25 for 24 moving frames)."""
    two = fine_pacing_settings(Trajectory(torch.eye(3), [Segment(5), Segment(20)]))
    assert two["coarse"] == 20
    assert two["max_samples"] == 3 * (5 + 20 + 1)
    assert fine_pacing_settings(Trajectory(torch.eye(2), [Segment(24)]))["max_samples"] == 75
    assert fine_pacing_settings(Trajectory(torch.eye(2), [Segment(3)]))["max_samples"] == 39  # at least 39


def test_clip_distance_of_identical_pictures_is_zero_not_nan():
    """The cosine of an embedding with itself can round to just above 1 (1 + 2e-16); the angle is
    clamped, 0, not NaN (arccos of more than 1)."""
    unit = torch.nn.functional.normalize
    # a row whose cosine with itself, computed as pacing computes it, rounds above 1 on this machine
    # (arange(1, 11) here; the search keeps the test meaningful where the sums round otherwise)
    z = next((v for k in range(3, 400) for v in [torch.arange(1.0, k)[None]] if float((unit(v.double(), dim=-1) ** 2).sum()) > 1), None)
    assert z is not None
    enc = types.SimpleNamespace(encode_image=lambda f: z.expand(len(f), -1))
    d = frame_distances(np.zeros((3, 4, 4, 3), np.uint8), metric="clip", encoder=enc)
    assert d.tolist() == [0.0, 0.0]


def test_frame_distances_refuses_a_single_frame():
    """One frame has no change to measure: refused by name, not an empty array that fails later."""
    with pytest.raises(ArgumentError, match="at least two frames"):
        frame_distances(np.zeros((1, 4, 4, 3), np.uint8), metric="pixel")


def _still_then_snap(frames=(4, 4)):
    e = tag(torch.eye(8)[:2], "snap-space")
    return Trajectory.chain([e[:1], e[:1], e[1:]], frames=list(frames))  # a still segment, then the snap


def test_the_smallest_frame_budget_gives_each_segment_one_frame():
    """frames= n_segments + 1 (+ holds) is allowed: one moving frame per segment and the closing one."""
    paced = even_pacing(_still_then_snap(), None, SnapDecoder(), metric="pixel", frames=3)
    assert [s.frames for s in paced.trajectory.segments] == [1, 1] and len(paced.trajectory) == 3


def test_inverse_cumulative_puts_a_frame_that_lands_on_a_still_stretch_in_its_middle():
    """Where the measured change is 0 over a stretch, the cumulative distance is made strictly
    increasing, so a frame whose target falls there has one place: the stretch's middle (not
    whichever end np.interp picks on a flat)."""
    ts = _inverse_cumulative(np.array([0.0, 1 / 3, 2 / 3, 1.0]), np.array([1.0, 0.0, 1.0]), 2)
    assert ts == pytest.approx([0.0, 0.5], abs=1e-6)


def test_one_relaxation_round_measures_the_moved_frames_and_can_keep_them():
    """relax=1 is two measured placements (the sample solve and one moved placement): on a morph
    whose distances do not add up it ends more even than the sample solve alone."""
    path = snap_path(frames=13)
    plain = even_pacing(path, None, SlideDecoder(), metric="pixel")
    plain_cv = ll.pacing_stats(render(plain.trajectory, SlideDecoder(), progress=False))["cv"]
    one = even_pacing(path, None, SlideDecoder(), metric="pixel", relax=1)
    assert one.frame_stats["cv"] < plain_cv - 0.01
    frames = render(one.trajectory, SlideDecoder(), progress=False)
    assert one.frame_stats["cv"] == pytest.approx(ll.pacing_stats(frames)["cv"], abs=1e-9)


def test_the_coarse_pass_takes_half_a_segments_frames_rounded_up():
    """Default coarse: ceil(frames / 2) intervals; 7 moving frames -> 4 intervals (5 samples)."""
    paced = even_pacing(snap_path(frames=8), None, SnapDecoder(), metric="pixel", max_samples=0)
    assert paced.samples[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0] and paced.decodes == 5


def test_a_still_segment_is_not_bisected():
    """Bisection splits intervals that change *more* than (1 + tol) x the mean; a segment with no
    change at all (every distance 0) keeps its coarse samples, even with tol=0."""
    for tol in (0.25, 0.0):
        paced = even_pacing(_still_then_snap((4, 12)), None, SnapDecoder(), metric="pixel", tol=tol)
        assert paced.samples[0].tolist() == [0.0, 0.5, 1.0]
        assert len(paced.samples[1]) > 3  # the snap was bisected


def _off_centre_snap():
    """A slerp whose picture snaps at about t = 0.85, so coarse intervals change unequally."""
    a, b = torch.zeros(1, 8), torch.zeros(1, 8)
    a[0, 0], b[0, 0], b[0, 1] = 1.0, 0.6, 0.8
    return Trajectory.interpolate(tag(a, "snap-space"), tag(b, "snap-space"), frames=9)


def test_bisection_spends_a_small_budget_on_the_largest_interval_first():
    """With max_samples=1 and two intervals over the threshold, the one that changes most is split."""
    kw = dict(metric="pixel", coarse=6, tol=0.0)
    coarse = even_pacing(_off_centre_snap(), None, SnapDecoder(), max_samples=0, **kw)
    d = coarse.distances[0]
    over = np.flatnonzero(d > d.mean())
    assert len(over) >= 2 and over[0] != int(np.argmax(d))  # (the first one over is not the largest)
    j = int(np.argmax(d))
    one = even_pacing(_off_centre_snap(), None, SnapDecoder(), max_samples=1, **kw)
    added = sorted(set(one.samples[0].tolist()) - set(coarse.samples[0].tolist()))
    assert added == pytest.approx([(coarse.samples[0][j] + coarse.samples[0][j + 1]) / 2])


def test_bisection_never_decodes_more_than_max_samples():
    """max_samples caps the extra decodes in all, across bisection rounds."""
    for ms in range(6):
        paced = even_pacing(_off_centre_snap(), None, SnapDecoder(), metric="pixel", coarse=6, tol=0.0, max_samples=ms)
        assert 7 <= paced.decodes <= 7 + ms, ms


def test_the_picture_where_two_segments_meet_is_decoded_once():
    """The end of one segment is the start of the next: one decode, shared by both."""
    paced = even_pacing(_still_then_snap(), None, SnapDecoder(), metric="pixel", max_samples=0)
    assert [len(s) for s in paced.samples] == [3, 3] and paced.decodes == 5


def test_pacing_measures_the_pictures_the_render_draws_at_that_seed(fake_decoder):
    """The shared starting noise is seeded by seed=: the picture measured at t = 0 is the render's
    first frame at that seed (and not the seed-0 one)."""
    e = tag(torch.eye(8)[:2], "fake-space")
    path = Trajectory.interpolate(e[:1], e[1:], frames=5)
    measured: dict = {}
    paced = even_pacing(path, None, fake_decoder, metric="pixel", seed=5, max_samples=0, measured=measured)
    frames = render(paced.trajectory, fake_decoder, seed=5, progress=False)
    assert np.array_equal(measured[(0, 0.0)][0], frames[0])
    assert not np.array_equal(measured[(0, 0.0)][0], render(path, fake_decoder, seed=0, progress=False)[0])


def test_lengths_are_the_sums_of_the_distances_after_further_passes():
    """Pacing.lengths is each segment's total measured change: the sum of its (final) distances,
    also when further passes re-measured the segment."""
    for kw in ({}, {"passes": 2}, {"passes": 3}):
        paced = even_pacing(snap_path(frames=13), None, SlideDecoder(), metric="pixel", **kw)
        assert paced.lengths == pytest.approx([float(d.sum()) for d in paced.distances], rel=1e-12), kw


def test_a_pacing_record_keeps_lengths_decodes_and_coarse_stats():
    """Pacing.to_dict / from_dict (what pacing.json holds) keep every field, not only the trajectory."""
    paced = even_pacing(snap_path(frames=13), None, SnapDecoder(), metric="pixel", relax=1)
    again = ll.Pacing.from_dict(json.loads(json.dumps(paced.to_dict())))
    assert again.lengths == paced.lengths and len(again.lengths) == 1
    assert again.decodes == paced.decodes > 0
    assert again.coarse_stats == paced.coarse_stats and again.metric == "pixel"
    assert all(np.array_equal(a, b) for a, b in zip(again.samples, paced.samples))
    assert all(np.array_equal(a, b) for a, b in zip(again.distances, paced.distances))


class _BigThenSmallSnapDecoder(ll.Decoder):
    """Grey = 0.9 sigmoid(12 (z0 - z1)) + 0.1 sigmoid(12 (z2 - z3)): along the chain below the
    first segment snaps by 0.9, the second by only 0.1."""

    name, space, dim, resolution = "big-small", "snap-space", 8, 8
    default_steps, default_guidance, default_batch_size = 1, 1.0, 8

    def noise_shape(self):
        return (1, 8, 8)

    def _decode(self, z, noise, *, seeds, steps, guidance_scale):
        g = 0.9 * torch.sigmoid(12 * (z[:, 0] - z[:, 1])) + 0.1 * torch.sigmoid(12 * (z[:, 2] - z[:, 3]))
        return (g[:, None, None, None].expand(-1, 8, 8, 3).numpy() * 255).round().astype(np.uint8)


def test_each_segment_is_bisected_against_its_own_mean_change():
    """The bisection threshold is (1 + tol) x the mean coarse interval *of the segment*: a small
    snap in a segment after a big one is refined too (against the whole path's mean it would not be)."""
    k = torch.zeros(3, 8)
    k[0, 1] = k[0, 3] = k[1, 0] = k[1, 3] = k[2, 0] = k[2, 2] = 1.0
    chain = Trajectory.chain(list(tag(k, "snap-space").split(1)), frames=[12, 12])
    paced = even_pacing(chain, None, _BigThenSmallSnapDecoder(), metric="pixel", coarse=6)
    assert paced.lengths[1] < 0.2 * paced.lengths[0]
    for s in paced.samples:
        assert len(s) > 7 and np.diff(s).min() < 1 / 6 - 1e-9  # both refined beyond the 7 coarse samples


def test_more_relaxation_rounds_never_end_less_even():
    """relax keeps the most even placement measured, not the last round's: a later round that
    overshoots (here round 5 and 6 of 25 frames) does not make the result worse than fewer rounds."""
    path = snap_path(frames=25)
    three = even_pacing(path, None, SlideDecoder(), metric="pixel", relax=3)
    six = even_pacing(path, None, SlideDecoder(), metric="pixel", relax=6)
    assert six.frame_stats["cv"] <= three.frame_stats["cv"]
    frames = render(six.trajectory, SlideDecoder(), progress=False)
    assert six.frame_stats["cv"] == pytest.approx(ll.pacing_stats(frames)["cv"], abs=1e-9)


def test_min_gain_zero_keeps_a_step_that_redraws_the_same_picture():
    """A step is kept when its cosine rose by *at least* min_gain: with min_gain=0 a step that
    leaves the picture as it was (no rise) is kept, at theta_step, and nothing is retried."""
    enc, dec = _AngleEncoder(), _BasinDecoder()
    run = ll.iterative_text_diff(enc, dec, enc.encode_text(["a"]), "a", "b", theta_step=0.15, max_steps=2, min_gain=0.0)
    assert [(round(t, 2), k) for t, _, k in run.tries] == [(0.15, True), (0.15, True)]
    assert len(run) == 3 and run.similarity[1] == run.similarity[0]


def test_a_stalled_step_grows_up_to_the_full_angle_then_the_run_stops():
    """From a picture even the whole diff cannot move, the angle grows by `grow` up to 1 (never
    beyond), and the run stops after trying 1, however many steps are left."""
    enc, dec = _AngleEncoder(), _BasinDecoder()
    run = ll.iterative_text_diff(enc, dec, enc.encode_text(["b"]), "a", "b", theta_step=0.15, max_steps=20)
    thetas = [t for t, _, _ in run.tries]
    assert thetas == pytest.approx([0.15, 0.24, 0.384, 0.6144, 0.98304, 1.0])
    assert not any(k for _, _, k in run.tries) and len(run) == 1 and not run.reached


def test_thetas_record_the_angle_of_each_kept_step():
    """IterativeEdit.thetas[k] is the angle that produced frame k: the grown one when the first try stalled."""
    enc, dec = _AngleEncoder(), _BasinDecoder()
    run = ll.iterative_text_diff(enc, dec, enc.encode_text(["a"]), "a", "b", theta_step=0.15, max_steps=8)
    assert run.thetas[1:] == [t for t, _, kept in run.tries if kept]
    assert run.thetas[1] == pytest.approx(0.24)


def test_a_start_embedding_is_normalised():
    """An embedding given as the start is used as a unit vector (row 0 of .embeddings), as encoders give them."""
    enc, dec = _AngleEncoder(), _BasinDecoder()
    z = enc.encode_text(["a"])
    run = ll.iterative_text_diff(enc, dec, z * 3.0, "a", "b", max_steps=0)
    assert torch.allclose(run.embeddings[0].norm(), torch.tensor(1.0))
    assert torch.allclose(run.embeddings[:1], z)


@pytest.mark.parametrize("bad", [{"target": math.nan}, {"min_gain": math.nan}, {"grow": math.nan}])
def test_iterative_text_diff_refuses_nan_settings(bad):
    """NaN is not a number these settings take: refused by name (NaN target never stops, NaN grow
    never grows)."""
    enc, dec = _AngleEncoder(), _BasinDecoder()
    with pytest.raises(ArgumentError, match=next(iter(bad))):
        ll.iterative_text_diff(enc, dec, enc.encode_text(["a"]), "a", "b", max_steps=1, **bad)


def test_iterative_text_diff_starts_from_one_picture(tiny_encoder, tiny_decoder):
    """Two pictures as the start are refused: the edit follows one picture."""
    two = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ArgumentError, match="one image"):
        ll.iterative_text_diff(tiny_encoder, tiny_decoder, two, "a photo", "a drawing", max_steps=0, steps=1)



def test_iterative_text_diff_warns_of_an_animated_picture_once(mini, tmp_path):
    """An animated gif given to iterative_text_diff(noise='inverted') is read twice (encoded, then
    inverted) but said once (the second read warned again from another line of the library, so
    Python's default filter showed the warning twice)."""
    from PIL import Image

    enc, dec = mini
    img = _scenes(1)[0]
    path = tmp_path / "two.gif"
    Image.fromarray(img).save(path, save_all=True, append_images=[Image.fromarray(255 - img)], duration=100)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ll.iterative_text_diff(enc, dec, str(path), "a red circle", "a blue circle", noise="inverted",
                               max_steps=0, steps=2, adaptive=False)  # fmt: skip
    said = [w for w in seen if "animated picture" in str(w.message)]
    assert len(said) == 1, [(w.filename, w.lineno) for w in said]
