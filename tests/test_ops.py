"""Tests for latentlab.ops: interpolation, text diffs, arithmetic, spherical means."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from latentlab import ops
from latentlab.errors import ArgumentError, LatentlabError, SpaceError
from latentlab.ops import (
    amplify,
    arithmetic,
    combine,
    cosine,
    lerp,
    nlerp,
    project_out,
    similarity_matrix,
    slerp,
    spherical_mean,
    text_diff,
    text_diff_direction,
)
from latentlab.priors import IdentityPrior
from latentlab.space import check_embeddings, common_space, normalize, refuse_zero_rows, space_of, tag

PROPS = settings(max_examples=50, deadline=None, derandomize=True)

seeds = st.integers(0, 2**31 - 1)
dims = st.integers(2, 48)
ts = st.floats(-1.0, 2.0, allow_nan=False)


def randn(seed: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)


def unit(seed: int, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return normalize(randn(seed, *shape, dtype=torch.float64)).to(dtype)


def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Accurate angle between rows (float64)."""
    a, b = normalize(a.double()), normalize(b.double())
    return 2 * torch.atan2((a - b).norm(dim=-1), (a + b).norm(dim=-1))


def not_antipodal(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool((cosine(a.double(), b.double()) > -0.99).all())


# ----------------------------------------------------------------------------------
# slerp geometry
# ----------------------------------------------------------------------------------
@PROPS
@given(seed=seeds, d=dims, n=st.integers(1, 4))
def test_slerp_exact_endpoints(seed, d, n):
    a, b = 3.0 * randn(seed, n, d), 0.5 * randn(seed + 1, n, d)
    assume(not_antipodal(a, b))
    torch.testing.assert_close(slerp(a, b, 0.0), normalize(a), atol=1e-6, rtol=0)
    torch.testing.assert_close(slerp(a, b, 1.0), normalize(b), atol=1e-6, rtol=0)


@PROPS
@given(seed=seeds, d=dims, t=ts)
def test_slerp_keeps_unit_norm(seed, d, t):
    a, b = randn(seed, 3, d), randn(seed + 1, 3, d)
    assume(not_antipodal(a, b))
    out = slerp(a, b, t)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3), atol=1e-5, rtol=0)


@PROPS
@given(seed=seeds, d=dims, t=ts)
def test_slerp_symmetry(seed, d, t):
    a, b = randn(seed, 2, d), randn(seed + 1, 2, d)
    assume(not_antipodal(a, b))
    torch.testing.assert_close(slerp(a, b, t), slerp(b, a, 1.0 - t), atol=2e-5, rtol=0)


@PROPS
@given(seed=seeds, d=dims, steps=st.integers(3, 12))
def test_slerp_constant_angular_speed(seed, d, steps):
    a, b = randn(seed, 1, d, dtype=torch.float64), randn(seed + 1, 1, d, dtype=torch.float64)
    assume(not_antipodal(a, b))
    path = slerp(a, b, torch.linspace(0, 1, steps, dtype=torch.float64))
    assert path.shape == (steps, d)
    gaps = angle(path[:-1], path[1:])
    total = angle(a, b)
    torch.testing.assert_close(gaps, (total / (steps - 1)).expand(steps - 1), atol=1e-9, rtol=0)
    # every point lies on the great circle: angle from a plus angle to b equals the total
    torch.testing.assert_close(angle(a, path) + angle(path, b), total.expand(steps), atol=1e-9, rtol=0)


def test_slerp_known_values_and_extrapolation():
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[math.cos(0.3), math.sin(0.3)]], dtype=torch.float64)
    for t in (-1.0, 0.25, 0.5, 2.0, 3.0):
        expected = torch.tensor([[math.cos(0.3 * t), math.sin(0.3 * t)]], dtype=torch.float64)
        torch.testing.assert_close(slerp(a, b, t), expected, atol=1e-12, rtol=0)


def test_slerp_row_wise_angle_regression_against_elementwise_acos():
    """The community unCLIP interpolation scripts took acos element-wise; that leaves the sphere."""

    def slerp_elementwise_acos(a, b, t):  # the wrong variant, kept here as a witness
        a, b = normalize(a), normalize(b)
        omega = torch.acos((a * b).clamp(-1, 1))  # element-wise: wrong
        so = torch.sin(omega)
        return torch.sin((1 - t) * omega) / so * a + torch.sin(t * omega) / so * b

    d = 64
    a = unit(0, 1, d, dtype=torch.float64)
    r = normalize(randn(1, 1, d, dtype=torch.float64) - (randn(1, 1, d, dtype=torch.float64) * a).sum() * a)
    r = normalize(r - (r * a).sum() * a)  # orthogonal to a
    b = 0.8 * a + 0.6 * r  # cosine(a, b) = 0.8
    assert cosine(a, b).item() == pytest.approx(0.8, abs=1e-9)
    wrong = slerp_elementwise_acos(a, b, 0.5)
    assert abs(wrong.norm().item() - 1.0) > 0.1  # the broken variant leaves the sphere
    good = slerp(a, b, 0.5)
    assert good.norm().item() == pytest.approx(1.0, abs=1e-12)
    assert angle(a, good).item() == pytest.approx(math.acos(0.8) / 2, abs=1e-12)


# ----------------------------------------------------------------------------------
# broadcasting, dtypes, degenerate inputs
# ----------------------------------------------------------------------------------
def test_broadcast_shapes_and_values():
    d = 8
    a1, b1 = unit(0, 1, d), unit(1, 1, d)
    assert slerp(a1, b1, torch.linspace(0, 1, 5)).shape == (5, d)
    assert slerp(a1[0], b1[0], 0.3).shape == (d,)
    an, bn = unit(2, 4, d), unit(3, 4, d)
    assert slerp(an, b1, 0.3).shape == (4, d)
    assert slerp(an, bn, torch.rand(4)).shape == (4, d)
    grid = slerp(an, bn, torch.linspace(0, 1, 3)[:, None])
    assert grid.shape == (3, 4, d)
    torch.testing.assert_close(grid[1, 2], slerp(an[2], bn[2], 0.5))
    torch.testing.assert_close(slerp(an, b1, 0.3)[3], slerp(an[3], b1[0], 0.3))
    assert lerp(an, bn, torch.linspace(0, 1, 3)[:, None]).shape == (3, 4, d)
    assert nlerp(a1, b1, torch.linspace(0, 1, 7)).shape == (7, d)
    assert text_diff(an, b1, a1, torch.linspace(0, 0.5, 6)[:, None]).shape == (6, 4, d)
    assert amplify(an, b1, torch.tensor([[0.0], [1.0]])).shape == (2, 4, d)
    assert cosine(an, b1).shape == (4,)
    assert similarity_matrix(an, unit(4, 3, d)).shape == (4, 3)
    with pytest.raises(ArgumentError, match=r"\(4, 8\).*\(3, 8\)"):
        slerp(an, unit(5, 3, d), 0.5)
    with pytest.raises(ArgumentError, match="t of shape"):
        slerp(an, bn, torch.rand(3))


@pytest.mark.parametrize("dtype,atol", [(torch.float16, 2e-3), (torch.bfloat16, 1.6e-2)])
def test_low_precision_preserves_dtype_and_matches_fp32(dtype, atol):
    d = 32
    a, b, c = (unit(s, 3, d).to(dtype) for s in range(3))
    af, bf, cf = a.float(), b.float(), c.float()
    cases = [
        (lerp(a, b, 0.3), lerp(af, bf, 0.3)),
        (nlerp(a, b, 0.3), nlerp(af, bf, 0.3)),
        (slerp(a, b, torch.linspace(0, 1, 5)[:, None]), slerp(af, bf, torch.linspace(0, 1, 5)[:, None])),
        (text_diff(a, b, c, 0.3), text_diff(af, bf, cf, 0.3)),
        (arithmetic([(1.0, a), (-1.0, b), (1.0, c)]), arithmetic([(1.0, af), (-1.0, bf), (1.0, cf)])),
        (spherical_mean(torch.stack([a, b, c], dim=1)), spherical_mean(torch.stack([af, bf, cf], dim=1))),
        (project_out(a, b), project_out(af, bf)),
        (amplify(a, b, 0.5), amplify(af, bf, 0.5)),
        (cosine(a, b), cosine(af, bf)),
        (similarity_matrix(a, b), similarity_matrix(af, bf)),
    ]
    for low, ref in cases:
        assert low.dtype == dtype
        torch.testing.assert_close(low.float(), ref, atol=atol, rtol=0)


def test_float64_stays_float64_and_mixed_dtypes_promote():
    a, b = unit(0, 2, 8, dtype=torch.float64), unit(1, 2, 8)
    assert slerp(a, b, 0.5).dtype == torch.float64
    assert slerp(b.half(), b, 0.5).dtype == torch.float32


@PROPS
@given(seed=seeds, d=dims, t=st.floats(0.0, 1.0))
def test_slerp_near_parallel_falls_back_cleanly(seed, d, t):
    a = unit(seed, 2, d)
    b = a + 1e-7 * randn(seed + 1, 2, d)
    for out in (slerp(a, b, t), slerp(a, a, t), slerp(a, a.clone() * 2.0, t)):
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.norm(dim=-1), torch.ones(2), atol=1e-6, rtol=0)
        torch.testing.assert_close(out, a, atol=1e-5, rtol=0)


def test_slerp_with_eps_zero_stays_finite_on_identical_rows():
    a = unit(0, 2, 8)
    out = slerp(a, a, torch.tensor([0.0, 0.5, 1.0]).view(3, 1))
    out0 = slerp(a, a, torch.tensor([0.0, 0.5, 1.0]).view(3, 1), eps=0.0)
    assert torch.isfinite(out0).all()
    torch.testing.assert_close(out0, out, atol=1e-6, rtol=0)


def test_slerp_antipodal_raises():
    a = unit(0, 3, 16)
    b = a.clone()
    b[1] = -a[1]
    with pytest.raises(ArgumentError, match=r"antipodal.*rows \[1\].*third keyframe"):
        slerp(a, b, 0.5)
    nearly = normalize(-a[0] + 1e-3 * unit(1, 16))  # cosine about -1 + 5e-7
    with pytest.raises(ArgumentError, match="antipodal"):
        slerp(a[0], nearly, 0.2)
    # well away from antipodal is fine
    assert torch.isfinite(slerp(a[0], normalize(-a[0] + 0.1 * unit(1, 16)), 0.5)).all()


def test_bad_inputs_raise_argument_errors():
    a = unit(0, 2, 8)
    with pytest.raises(ArgumentError, match="must be a torch.Tensor"):
        slerp(a.tolist(), a, 0.5)
    with pytest.raises(ArgumentError, match="floating"):
        slerp(torch.ones(2, 8, dtype=torch.long), a, 0.5)
    bad = a.clone()
    bad[1, 3] = float("nan")
    with pytest.raises(ArgumentError, match=r"b contains NaN.*rows \[1\]"):
        slerp(a, bad, 0.5)
    with pytest.raises(ArgumentError, match=r"a is the zero vector.*rows \[0\]"):
        slerp(torch.zeros(1, 8), a, 0.5)
    with pytest.raises(ArgumentError, match="t contains NaN"):
        slerp(a, a, float("nan"))
    with pytest.raises(ArgumentError, match="t must be a float or a tensor"):
        slerp(a, a, "half")
    with pytest.raises(ArgumentError, match="zero vector"):
        nlerp(a[0], -a[0], 0.5)


# ----------------------------------------------------------------------------------
# CLIP space tags and sizes
# ----------------------------------------------------------------------------------
def _embedding_ops(a, b, c):
    return {
        "lerp": lambda: lerp(a, b, 0.5),
        "nlerp": lambda: nlerp(a, b, 0.5),
        "slerp": lambda: slerp(a, b, 0.5),
        "text_diff": lambda: text_diff(a, b, c, 0.3),
        "text_diff_direction": lambda: text_diff_direction(b, c),
        "arithmetic": lambda: arithmetic([(1.0, a), (-1.0, b), (1.0, c)]),
        "combine": lambda: combine((1.0, a), (1.0, b)),
        "spherical_mean": lambda: spherical_mean(tag(torch.stack([a, b], dim=1), space_of(a))),
        "project_out": lambda: project_out(a, b),
        "amplify": lambda: amplify(a, b, 0.5),
    }


def test_space_tags_propagate():
    a, b, c = (tag(unit(s, 3, 8), "mini") for s in range(3))
    for name, fn in _embedding_ops(a, b, c).items():
        assert space_of(fn()) == "mini", name
    # an untagged input takes the tag of the tagged one
    assert space_of(slerp(unit(5, 3, 8), b, 0.5)) == "mini"
    assert space_of(slerp(unit(5, 3, 8), unit(6, 3, 8), 0.5)) is None



def test_a_check_does_not_tag_the_callers_tensor():
    # an untagged tensor, once checked for one space (as decode, render and the priors do), had
    # been tagged in place, so the same tensor was then refused by a decoder of another space
    from latentlab.space import check_embeddings

    mine = unit(0, 3, 8)
    checked = check_embeddings(mine, dim=8, space="X")
    assert space_of(checked) == "X" and space_of(mine) is None
    assert space_of(check_embeddings(mine, dim=8, space="Y")) == "Y"
    assert torch.equal(checked, mine)


def test_a_list_of_embeddings_is_told_to_join_them_not_to_encode_them():
    # a list of encoder outputs is already embeddings: "Encode inputs with an Encoder first" misled
    from latentlab.space import check_embeddings

    rows = [torch.ones(1, 8), torch.ones(1, 8)]
    with pytest.raises(ArgumentError, match=r"references must be one torch.Tensor .* list of 2 tensors "
                                            r"\(shapes \(1, 8\), \(1, 8\)\)\. Fix: pass torch.cat\(references\)"):
        check_embeddings(rows, name="references")
    with pytest.raises(ArgumentError, match=r"tuple of 5 tensors .*, \.\.\.\).*torch.stack\(z\)"):
        check_embeddings(tuple(torch.ones(8) for _ in range(5)), name="z")
    with pytest.raises(ArgumentError, match="Encode inputs with an Encoder"):
        check_embeddings(["a red circle"], name="z")  # not embeddings at all


def test_space_mismatch_raises_space_error():
    a, c = tag(unit(0, 3, 8), "mini"), tag(unit(2, 3, 8), "mini")
    b = tag(unit(1, 3, 8), "openai/ViT-L-14")
    for name, fn in _embedding_ops(a, b, c).items():
        if name == "spherical_mean":
            continue  # one input: nothing to mix
        with pytest.raises(SpaceError, match="different CLIP spaces"):
            fn()
    with pytest.raises(SpaceError):
        cosine(a, b)
    with pytest.raises(SpaceError):
        similarity_matrix(a, b)


def test_dim_mismatch_raises_space_error_naming_shapes():
    a, b = unit(0, 3, 8), unit(1, 3, 12)
    with pytest.raises(SpaceError, match=r"\(3, 8\).*\(3, 12\)"):
        slerp(a, b, 0.5)
    with pytest.raises(SpaceError, match=r"\(3, 8\).*\(3, 12\)"):
        text_diff(a, a[:1] * 0.5, b, 0.5)
    with pytest.raises(SpaceError):
        arithmetic([(1.0, a), (1.0, b)])
    with pytest.raises(SpaceError):
        similarity_matrix(a, b)
    with pytest.raises(SpaceError):
        project_out(a, b)


# ----------------------------------------------------------------------------------
# spherical mean
# ----------------------------------------------------------------------------------
@PROPS
@given(seed=seeds, d=dims, s=st.floats(0.0, 1.0))
def test_spherical_mean_of_two_points_is_slerp(seed, d, s):
    a, b = unit(seed, d), unit(seed + 1, d)
    assume(not_antipodal(a, b) and cosine(a, b).item() > -0.9)
    mean = spherical_mean(torch.stack([a, b]), torch.tensor([1.0 - s, s]))
    torch.testing.assert_close(mean, slerp(a, b, s), atol=2e-5, rtol=0)


def test_spherical_mean_of_symmetric_set_is_its_centre():
    d = 10
    centre = unit(0, d, dtype=torch.float64)
    pts = []
    for k in range(3):  # pairs mirrored through the centre, at different angles
        off = normalize(randn(k + 1, d, dtype=torch.float64))
        off = normalize(off - (off * centre).sum() * centre)
        ang = 0.3 + 0.4 * k
        pts += [math.cos(ang) * centre + math.sin(ang) * off, math.cos(ang) * centre - math.sin(ang) * off]
    mean = spherical_mean(torch.stack(pts))
    torch.testing.assert_close(mean, centre, atol=1e-10, rtol=0)
    # the Euclidean mean direction differs from the Karcher mean for unequal weights;
    # the Karcher mean satisfies the stationarity condition sum_i w_i log_q(p_i) = 0
    w = torch.tensor([1.0, 2.0, 0.5, 0.1, 3.0, 1.0], dtype=torch.float64)
    q = spherical_mean(torch.stack(pts), w)
    P = torch.stack(pts)
    theta = angle(P, q.expand_as(P))
    logs = (P - (P @ q)[:, None] * q) * (theta / torch.sin(theta))[:, None]
    assert (w[:, None] * logs).sum(0).norm().item() < 1e-9
    assert (q - normalize((w[:, None] * P).sum(0))).norm().item() > 1e-4


@PROPS
@given(seed=seeds, d=dims, k=st.integers(1, 6), scale=st.floats(1e-3, 1e3))
def test_spherical_mean_invariant_to_weight_scaling(seed, d, k, scale):
    pts = normalize(unit(seed, d) + 0.8 * randn(seed + 1, k, d))
    w = torch.rand(k, generator=torch.Generator().manual_seed(seed)) + 0.05
    torch.testing.assert_close(
        spherical_mean(pts, w), spherical_mean(pts, w * scale), atol=1e-5, rtol=0
    )


def test_spherical_mean_batched_matches_rows_and_ignores_zero_weights():
    pts = normalize(unit(0, 1, 1, 12) + 0.7 * randn(1, 4, 3, 12))  # (4, 3, 12)
    w = torch.tensor([[1.0, 2.0, 3.0], [0.0, 1.0, 1.0], [5.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    batched = spherical_mean(pts, w)
    assert batched.shape == (4, 12)
    for i in range(4):
        torch.testing.assert_close(batched[i], spherical_mean(pts[i], w[i]), atol=1e-6, rtol=0)
    torch.testing.assert_close(batched[1], slerp(pts[1, 1], pts[1, 2], 0.5), atol=1e-5, rtol=0)
    torch.testing.assert_close(batched[2], pts[2, 0], atol=1e-6, rtol=0)
    # shared weights (K,) broadcast over a batch of point sets
    assert spherical_mean(pts, w[0]).shape == (4, 12)
    torch.testing.assert_close(spherical_mean(pts[:1]), spherical_mean(pts[0])[None], atol=1e-6, rtol=0)


def test_spherical_mean_errors():
    pts = unit(0, 3, 8)
    with pytest.raises(ArgumentError, match="non-negative"):
        spherical_mean(pts, torch.tensor([1.0, -0.5, 1.0]))
    with pytest.raises(ArgumentError, match="all zero"):
        spherical_mean(pts, torch.zeros(3))
    with pytest.raises(ArgumentError, match="K=3"):
        spherical_mean(pts, torch.ones(4))
    with pytest.raises(ArgumentError, match=r"\(K, d\)"):
        spherical_mean(pts[0])
    with pytest.raises(ArgumentError, match="cancel out"):
        spherical_mean(torch.stack([pts[0], -pts[0]]))


def test_spherical_mean_refuses_points_outside_an_open_hemisphere():
    f64 = torch.float64
    e1, e2 = torch.eye(3, dtype=f64)[:2]
    # opposite points with unequal weights: the weighted sum does not cancel, but the
    # iteration would stop at the heavier point (a zero tangent for the opposite one)
    with pytest.raises(ArgumentError, match="open hemisphere"):
        spherical_mean(torch.stack([e1, -e1]), torch.tensor([0.7, 0.3], dtype=f64))
    # three points 120 degrees apart on a great circle: the start is a saddle
    ring = torch.stack([math.cos(a) * e1 + math.sin(a) * e2 for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)])
    with pytest.raises(ArgumentError, match="open hemisphere"):
        spherical_mean(ring, torch.tensor([0.4, 0.3, 0.3], dtype=f64))
    # the offending batch row is named
    batch = torch.stack([torch.stack([e1, e2]), torch.stack([e1, -e1])])
    with pytest.raises(ArgumentError, match=r"open hemisphere \(rows \[1\]\)"):
        spherical_mean(batch, torch.tensor([[1.0, 1.0], [0.6, 0.4]], dtype=f64))
    # inside an open hemisphere, however close to its edge, the mean is found: two points
    # 179 degrees apart with weights (0.99, 0.01) give slerp at 0.01
    far = math.cos(math.radians(179)) * e1 + math.sin(math.radians(179)) * e2
    torch.testing.assert_close(
        spherical_mean(torch.stack([e1, far]), torch.tensor([0.99, 0.01], dtype=f64)),
        slerp(e1, far, 0.01),
        atol=1e-10,
        rtol=0,
    )
    # a point of zero weight does not count
    torch.testing.assert_close(
        spherical_mean(torch.stack([e1, -e1, e2]), torch.tensor([1.0, 0.0, 1.0], dtype=f64)),
        slerp(e1, e2, 0.5),
        atol=1e-10,
        rtol=0,
    )


# ----------------------------------------------------------------------------------
# arithmetic and directions
# ----------------------------------------------------------------------------------
def test_arithmetic_of_known_vectors():
    a, b, c = torch.eye(3)
    expected = torch.tensor([1.0, -1.0, 1.0]) / math.sqrt(3)
    torch.testing.assert_close(arithmetic([(1.0, a), (-1.0, b), (1.0, c)]), expected)
    torch.testing.assert_close(combine((1.0, a), (-1.0, b), (1.0, c)), expected)
    torch.testing.assert_close(arithmetic([(3.0, a), (4.0, b)]), torch.tensor([0.6, 0.8, 0.0]))
    torch.testing.assert_close(arithmetic(iter([(2.0, c)])), c)
    # per-row tensor weights
    out = arithmetic([(torch.tensor([1.0, 0.0]), a), (torch.tensor([0.0, 2.0]), b)])
    torch.testing.assert_close(out, torch.stack([a, b]))
    with pytest.raises(ArgumentError, match="cancel out"):
        arithmetic([(1.0, a), (-1.0, a)])
    with pytest.raises(ArgumentError, match="empty"):
        arithmetic([])
    with pytest.raises(ArgumentError, match=r"terms\[1\].*\(weight, embedding\)"):
        arithmetic([(1.0, a), b])
    with pytest.raises(ArgumentError, match=r"\(weight, embedding\)"):
        arithmetic([(a, 1.0)])


@PROPS
@given(seed=seeds, d=dims)
def test_project_out_removes_the_component(seed, d):
    z, u = unit(seed, 3, d), 5.0 * randn(seed + 1, 3, d)
    out = project_out(z, u)
    torch.testing.assert_close((out * normalize(u)).sum(-1), torch.zeros(3), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3), atol=1e-6, rtol=0)
    # what remains is the old orthogonal part: cosine(out, z) = sin(angle(z, u))
    expected = torch.sin(angle(z, u)).float()
    torch.testing.assert_close(cosine(out, z), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(amplify(z, u, -1.0), out, atol=1e-6, rtol=0)


def test_project_out_and_direction_errors():
    z = unit(0, 8)
    with pytest.raises(ArgumentError, match="parallel"):
        project_out(z, 3.0 * z)
    with pytest.raises(ArgumentError, match="direction is the zero vector"):
        project_out(z, torch.zeros(8))


def test_amplify_definition():
    z = unit(0, 2, 16)
    u = unit(1, 16)
    torch.testing.assert_close(amplify(z, u, 0.0), z, atol=1e-6, rtol=0)
    amounts = torch.tensor([-0.9, -0.5, 0.0, 1.0, 3.0])[:, None]
    cos_u = cosine(amplify(z, u, amounts), u)  # (5, 2)
    sign = torch.sign(cosine(z, u))
    assert ((sign * cos_u).diff(dim=0) > 0).all()  # larger amount, more of u
    # the component along u is scaled by (1 + amount) before renormalising
    alpha = (z * u).sum(-1, keepdim=True)
    torch.testing.assert_close(amplify(z, u, 2.0), normalize(z + 2.0 * alpha * u))
    flipped = amplify(z, u, -2.0)  # reflection through the hyperplane orthogonal to u
    torch.testing.assert_close(cosine(flipped, u), -cosine(z, u), atol=1e-6, rtol=0)


# ----------------------------------------------------------------------------------
# text diffs
# ----------------------------------------------------------------------------------
def test_text_diff_theta_zero_returns_image_and_one_returns_direction():
    image, src, tgt = unit(0, 4, 16), unit(1, 1, 16), unit(2, 1, 16)
    torch.testing.assert_close(text_diff(image, src, tgt, 0.0), image, atol=1e-6, rtol=0)
    z_d = text_diff_direction(src, tgt)
    torch.testing.assert_close(z_d, normalize(tgt - src))
    torch.testing.assert_close(text_diff(image, src, tgt, 1.0), z_d.expand(4, 16), atol=1e-6, rtol=0)
    torch.testing.assert_close(text_diff(image, src, tgt, 0.3), slerp(image, z_d, 0.3))


@PROPS
@given(seed=seeds, d=st.integers(3, 48))
def test_text_diff_moves_monotonically_towards_the_diff(seed, d):
    image, src, tgt = unit(seed, 2, d), unit(seed + 1, 2, d), unit(seed + 2, 2, d)
    z_d = text_diff_direction(src, tgt)
    assume(bool((cosine(image, z_d) > -0.99).all()))
    thetas = torch.linspace(0, 1, 11)[:, None]
    cos = cosine(text_diff(image, src, tgt, thetas), z_d)  # (11, 2)
    assert (cos.diff(dim=0) > 0).all()
    # and away from the original image
    assert (cosine(text_diff(image, src, tgt, thetas), image).diff(dim=0) < 0).all()


def test_text_diff_errors():
    image, cap = unit(0, 2, 8), unit(1, 1, 8)
    with pytest.raises(ArgumentError, match="encode.*a photo"):
        text_diff(image, None, cap, 0.3)
    with pytest.raises(ArgumentError, match="same caption"):
        text_diff(image, cap, cap.clone(), 0.3)
    with pytest.raises(ArgumentError, match="same caption"):
        text_diff_direction(cap, cap)
    z_d = text_diff_direction(cap, unit(2, 1, 8))
    with pytest.raises(ArgumentError, match="antipodal"):
        text_diff(-z_d, cap, unit(2, 1, 8), 0.3)


# ----------------------------------------------------------------------------------
# similarities, lerp, nlerp
# ----------------------------------------------------------------------------------
def test_cosine_and_similarity_matrix_values():
    a, b = randn(0, 5, 12), randn(1, 3, 12)
    ref = torch.nn.functional.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    torch.testing.assert_close(similarity_matrix(a, b), ref, atol=1e-6, rtol=0)
    torch.testing.assert_close(cosine(a[:3], b), ref.diagonal()[:3], atol=1e-6, rtol=0)
    torch.testing.assert_close(cosine(a, b[0]), ref[:, 0], atol=1e-6, rtol=0)
    assert similarity_matrix(a[0], b).shape == (1, 3)
    assert space_of(cosine(tag(a, "mini"), b[0])) is None  # a similarity is not an embedding


def test_lerp_and_nlerp_values():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(lerp(a, b, 0.25), torch.tensor([[1.5, 0.25]]))
    torch.testing.assert_close(lerp(a, b, torch.tensor([0.0, 1.0])), torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    torch.testing.assert_close(nlerp(a, b, 0.25), normalize(torch.tensor([[1.5, 0.25]])))
    # nlerp and slerp agree at the midpoint of unit vectors, differ elsewhere
    ua, ub = unit(0, 1, 8), unit(1, 1, 8)
    torch.testing.assert_close(nlerp(ua, ub, 0.5), slerp(ua, ub, 0.5), atol=1e-6, rtol=0)
    assert (nlerp(ua, ub, 0.2) - slerp(ua, ub, 0.2)).abs().max() > 1e-4


def test_docstring_examples():
    result = doctest.testmod(ops, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 10
    assert result.failed == 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_device_follows_inputs_on_cuda():
    a, b = unit(0, 3, 16).cuda(), unit(1, 3, 16).cuda()
    t = torch.linspace(0, 1, 4)[:, None]  # a CPU t is moved to the inputs' device
    out = slerp(a, b, t)
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), slerp(a.cpu(), b.cpu(), t), atol=1e-6, rtol=0)
    assert spherical_mean(torch.stack([a, b], 1)).device.type == "cuda"
    assert text_diff(a, b, b.flip(0), 0.3).device.type == "cuda"
    with pytest.raises(ArgumentError, match="device"):
        slerp(a, b.cpu(), 0.5)


def test_nlerp_moves_fastest_in_the_middle():
    # its docstring said points bunch up near the middle; they bunch up near the ends
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([math.cos(2.5), math.sin(2.5)])
    p = ops.nlerp(a, b, torch.linspace(0, 1, 11)[:, None])
    steps = torch.acos((p[1:] * p[:-1]).sum(-1).clamp(-1, 1))
    assert steps[5] > 3 * steps[0]
    assert "bunch up near the ends" in ops.nlerp.__doc__


def test_arithmetic_names_a_reversed_pair_with_a_0d_weight():
    x = torch.nn.functional.normalize(torch.ones(1, 4), dim=-1)
    with pytest.raises(ArgumentError, match="looks like \\(embedding, weight\\)"):
        ops.arithmetic([(x, torch.tensor(1.0))])


def test_norms_that_overflow_or_underflow_in_float32_keep_their_direction():
    # an audit: slerp(1e20 * a, b) came back with norm 0.707 and cosine(1e20 * a, 1e20 * b) was 0.0
    # (the norm overflowed to inf); 1e-25 * a was refused as the zero vector (its norm underflowed)
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 16, generator=g)
    want = float(cosine(a, b))
    assert float(cosine(1e20 * a, 1e20 * b)) == pytest.approx(want, abs=1e-6)
    assert float(cosine(1e-25 * a, b)) == pytest.approx(want, abs=1e-6)
    mid = slerp(1e20 * a, b, 0.5)
    assert float(mid.norm()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(mid, slerp(a, b, 0.5), atol=1e-6)
    with pytest.raises(ArgumentError, match="zero vector"):
        cosine(torch.zeros(16), b)
    # rows of ordinary size are divided by their norm alone, bit for bit as before the rescaling
    # existed: an ulp's change moves every render fingerprint, and a half-done render could not resume
    x = torch.randn(64, 128, generator=g)
    assert torch.equal(ops._unit(x, "x"), x / x.norm(dim=-1, keepdim=True))


def test_normalize_keeps_the_direction_of_rows_whose_norm_overflows():
    # space.normalize(1e20 * a) returned zeros (the norm overflowed to inf); ordinary rows keep their bits
    from latentlab.space import normalize

    g = torch.Generator().manual_seed(3)
    a = torch.randn(4, 32, generator=g)
    big = normalize(1e20 * a)
    assert torch.allclose(big, a / a.norm(dim=-1, keepdim=True), atol=1e-6)
    assert torch.equal(normalize(a), a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    # nlerp of such rows blamed "antipodal rows?" (an inf norm read as zero)
    assert torch.allclose(nlerp(1e20 * a[:1], a[1:2], 0.5), normalize(a[:1]), atol=1e-6)
    assert torch.equal(nlerp(a[:1], a[1:2], 0.3), normalize(0.7 * a[:1] + 0.3 * a[1:2]))


# ----------------------------------------------------------------------------------
# audit: antipodal nlerp, slerp's eps, text-diff norms, spherical_mean's arguments
# ----------------------------------------------------------------------------------
def test_nlerp_refuses_antipodal_endpoints_whatever_t():
    # only a frame exactly at t = 0.5 was refused: with an even frame count the path was a hard cut
    a = unit(0, 3, 16)
    b = a.clone()
    b[1] = -2.0 * a[1]  # any norm
    for t in (0.25, 0.5, torch.linspace(0, 1, 6)[:, None, None]):
        with pytest.raises(ArgumentError, match=r"a and b are antipodal \(rows \[1\]\).*third keyframe"):
            nlerp(a, b, t)
    nearly = normalize(-a[0] + 1e-3 * unit(1, 16))  # cosine about -1 + 5e-7, as slerp refuses
    with pytest.raises(ArgumentError, match="antipodal"):
        nlerp(3.0 * a[0], nearly, 0.2)
    far = normalize(-a[0] + 0.1 * unit(1, 16))  # well away from antipodal is fine
    assert torch.isfinite(nlerp(a[0], far, torch.linspace(0, 1, 6)[:, None])).all()
    assert "whatever ``t``" in nlerp.__doc__
    # lerp stays the plain formula and says it can give the zero vector
    assert torch.equal(lerp(a[0], -a[0], 0.5), torch.zeros(16))
    assert "zero vector" in lerp.__doc__


def test_slerp_checks_eps():
    a, b = unit(0, 1, 8), unit(1, 1, 8)
    for bad in ("x", None, -1e-3, float("nan"), float("inf"), True, 1j):
        with pytest.raises(ArgumentError, match=r"eps must be a finite number >= 0.*got"):
            slerp(a, b, 0.5, eps=bad)
    import numpy as np

    for ok in (0, 0.0, 1e-3, np.float64(1e-6)):
        torch.testing.assert_close(slerp(a, b, 0.3, eps=ok), slerp(a, b, 0.3), atol=1e-6, rtol=0)


def test_slerp_with_a_large_eps_keeps_nearly_antipodal_rows_on_the_great_circle():
    # sin(omega) < eps also caught nearly *antipodal* rows, whose nlerp fallback jumped across
    ang = math.pi - 0.03  # 178.3 degrees: slerp is well defined (refused only past cosine -1 + 1e-4)
    a = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[math.cos(ang), math.sin(ang)]], dtype=torch.float64)
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    for eps in (1e-6, 0.05, 0.5):
        p = slerp(a, b, t, eps=eps)
        got = torch.atan2(p[:, 1], p[:, 0])
        torch.testing.assert_close(got, t * ang, atol=1e-9, rtol=0)  # angles grow evenly
    # nearly parallel rows still fall back to nlerp below eps
    c = torch.tensor([[math.cos(0.01), math.sin(0.01)]], dtype=torch.float64)
    torch.testing.assert_close(slerp(a, c, 0.3, eps=0.05), nlerp(a, c, 0.3), atol=1e-12, rtol=0)


def test_text_diffs_normalise_the_captions_first():
    # the paper's diff is of unit CLIP embeddings; raw features (norms 9 and 10) pulled z_d 9.5 degrees away
    t0 = unit(0, 1, 64)
    t1 = normalize(t0 + 0.7 * unit(1, 1, 64))
    image = unit(2, 1, 64)
    zd = text_diff_direction(t0, t1)
    torch.testing.assert_close(text_diff_direction(9.0 * t0, 10.0 * t1), zd, atol=1e-6, rtol=0)
    torch.testing.assert_close(text_diff_direction(t0, 1e-3 * t1), zd, atol=1e-6, rtol=0)
    th = torch.linspace(0, 0.5, 4)[:, None]
    torch.testing.assert_close(text_diff(image, 9.0 * t0, 10.0 * t1, th), text_diff(image, t0, t1, th), atol=1e-6, rtol=0)
    # unit captions (an encoder's) are used as given, bit for bit: render fingerprints do not move
    assert torch.equal(zd, normalize(t1 - t0))
    with pytest.raises(ArgumentError, match="same caption"):  # the same direction is the same caption
        text_diff_direction(t0, 2.0 * t0)
    with pytest.raises(ArgumentError, match="source is the zero vector"):
        text_diff(image, torch.zeros(1, 64), t1, 0.3)
    for doc in (text_diff.__doc__, text_diff_direction.__doc__):
        assert "normalize(normalize(target) - normalize(source))" in doc


def test_spherical_mean_takes_numpy_ints_and_names_a_bad_tol():
    import numpy as np

    pts = unit(0, 3, 8)
    want = spherical_mean(pts, iters=50)
    for n in (np.int64(50), np.int32(50), torch.tensor(50)):
        assert torch.equal(spherical_mean(pts, iters=n), want)
    for bad in (50.0, True, "50", 0, np.int64(-1)):
        with pytest.raises(ArgumentError, match=r"iters must be a positive int .*got"):
            spherical_mean(pts, iters=bad)
    for bad in ("1e-6", float("nan"), -1.0, [1e-6], True):
        with pytest.raises(ArgumentError, match=r"tol must be a number >= 0 .*got"):
            spherical_mean(pts, tol=bad)
    assert torch.equal(spherical_mean(pts, tol=np.float64(1e-7)), spherical_mean(pts, tol=1e-7))
    assert torch.equal(spherical_mean(pts, tol=torch.tensor(1e-7)), spherical_mean(pts, tol=1e-7))


def test_operators_say_how_to_pass_numpy_rows_lists_of_tensors_and_combine_pairs():
    a, b = unit(0, 2, 4).unbind()
    with pytest.raises(ArgumentError, match=r"a must be a torch.Tensor .*got ndarray. Fix: pass torch.from_numpy\(a\)"):
        slerp(a.numpy(), b, 0.5)
    with pytest.raises(ArgumentError, match=r"got list. Fix: pass torch.stack\(a\)"):  # torch.as_tensor failed on it
        slerp([a, b], b, 0.5)
    assert torch.allclose(slerp(torch.stack([a, b]), b, 0.5)[1], b)  # the fix given works
    with pytest.raises(ArgumentError, match=r"separate arguments, got one list of pairs. Fix: combine\(\*pairs\)"):
        combine([(1.0, a), (1.0, b)])  # read as one pair, with a hint about raw numbers
    assert torch.equal(combine(*[(1.0, a), (1.0, b)]), arithmetic([(1.0, a), (1.0, b)]))


def test_the_annotations_take_the_sequences_and_arrays_that_work():
    # py.typed is shipped: a type checker refused slerp(a, b, np.linspace(0, 1, 5)), text_diff(...,
    # theta=[0.25, 0.5]) and spherical_mean(z, np.array(w)), which all work
    import typing

    import numpy as np

    assert {np.ndarray, typing.Sequence[float], torch.Tensor, float} <= set(typing.get_args(ops.Scalar))
    assert np.ndarray in typing.get_args(typing.get_type_hints(ops.spherical_mean)["weights"])
    a, b = unit(0, 1, 4), unit(1, 1, 4)
    assert ops.slerp(a, b, np.linspace(0, 1, 3)).shape == ops.slerp(a, b, [0.0, 0.5, 1.0]).shape == (3, 4)
    torch.testing.assert_close(ops.spherical_mean(torch.cat([a, b]), np.array([0.5, 0.5])),
                               ops.spherical_mean(torch.cat([a, b]), [0.5, 0.5]))


def test_slerp_takes_a_0d_tensor_eps_as_before():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.equal(ops.slerp(a, b, 0.5, eps=torch.tensor(1e-4)), ops.slerp(a, b, 0.5, eps=1e-4))
    with pytest.raises(ArgumentError, match="eps"):
        ops.slerp(a, b, 0.5, eps=torch.tensor([1e-4, 1e-4]))


# -- gaps found by mutation testing (2026-12-07): each test fails on a plausible bug the suite missed --


# (A gap that mutation testing found, ops.py nlerp:) scale = (1 - t)|a| + t|b| without .abs() -- for t outside [0, 1]
# the scale can cancel to ~0, so a blend that is the zero vector up to rounding is no longer
# refused and nlerp returns a normalised rounding error as a "direction".
def test_nlerp_refuses_a_near_zero_blend_when_t_extrapolates():
    b = torch.tensor([[0.3, 0.4, 0.5]])
    a = torch.nextafter(2 * b, torch.full_like(b, 10.0))  # 2 b up to one ulp per entry
    assert (-a + 2 * b).norm() > 0  # not exactly zero: only the relative check catches it
    with pytest.raises(ArgumentError, match="zero vector"):
        nlerp(a, b, 2.0)


# (A gap that mutation testing found, ops.py arithmetic:) mag = w * |x| without .abs() -- with a negative weight the
# scale cancels, so "a - a'" (a' equal to a up to rounding) is not refused as cancelling out
# and returns a normalised rounding error.
def test_arithmetic_refuses_terms_that_cancel_up_to_rounding():
    a = torch.tensor([[0.6, 0.8, 0.0]])
    b = torch.nextafter(a, torch.ones_like(a))
    assert (a - b).norm() > 0
    with pytest.raises(ArgumentError, match="cancel"):
        arithmetic([(1.0, a), (-1.0, b)])


# -- latentlab.space: tags, the mixed-space error, normalize and the embedding checks -----------


def test_tag_with_no_space_keeps_the_tag_a_tensor_has():
    """tag(z, None) leaves z as it was: re-tagging with space_of(an untagged tensor) keeps z's space."""
    z = tag(normalize(randn(0, 2, 8)), "mini")
    assert tag(z, None) is z and space_of(z) == "mini"
    assert space_of(tag(z, space_of(randn(1, 2, 8)))) == "mini"
    assert space_of(tag(randn(2, 2, 8), None)) is None


def test_mixed_space_error_names_the_first_argument_of_each_space():
    """The SpaceError names, for each space, the first argument found in it."""
    a, b = tag(randn(0, 1, 8), "mini"), tag(randn(1, 1, 8), "mini")
    c, d = tag(randn(2, 1, 8), "X"), tag(randn(3, 1, 8), "X")
    with pytest.raises(SpaceError, match=r"a is in 'mini', c is in 'X'\."):
        common_space(a, b, c, d, names=("a", "b", "c", "d"))
    with pytest.raises(SpaceError, match=r"argument 0 is in 'mini', argument 2 is in 'X'\."):
        common_space(a, b, c, d)
    assert common_space(randn(4, 1, 8), b, a) == "mini"


def test_half_precision_rows_are_normalised_in_float32():
    """float16 / bfloat16 rows are normalised in float32 and rounded once to their dtype."""
    z = randn(5, 64, 32)
    for dt in (torch.float16, torch.bfloat16):
        zh = z.to(dt)
        out = normalize(zh)
        assert out.dtype == dt
        assert torch.equal(out, normalize(zh.float()).to(dt)), dt


def test_normalize_leaves_a_zero_row_zero():
    """A zero row stays zero (the norm is clamped to eps), it does not become NaN."""
    z = torch.zeros(2, 8)
    z[1] = randn(6, 8)
    out = normalize(z)
    assert torch.equal(out[0], torch.zeros(8)) and torch.isfinite(out).all()
    torch.testing.assert_close(out[1].norm(), torch.tensor(1.0))


def test_normalize_rescales_only_the_rows_whose_norm_overflows():
    """In a batch holding an overflowing row, the other rows are divided by their norm alone, bit for bit."""
    a = randn(7, 6, 32)
    z = torch.cat([1e20 * a[:1], a[1:]])
    out = normalize(z)
    assert torch.equal(out[1:], a[1:] / a[1:].norm(dim=-1, keepdim=True))
    assert torch.allclose(out[0], a[0] / a[0].norm(), atol=1e-6)


def test_refuse_zero_rows_names_only_the_rows_that_are_all_zero():
    """A row with some zero entries has a direction; only all-zero rows are refused and named."""
    z = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.5, 0.0]])
    with pytest.raises(ArgumentError, match=r"^rows \[1\] are the zero vector, which has no direction\.$"):
        refuse_zero_rows(z, "rows", ".")
    refuse_zero_rows(torch.eye(3), "rows", ".")  # one-hot rows pass


def test_check_embeddings_refuses_rows_of_size_zero():
    """(n, 0) is empty too."""
    with pytest.raises(ArgumentError, match=r"z is empty \(shape \(3, 0\)\)"):
        check_embeddings(torch.zeros(3, 0), name="z")


def test_check_embeddings_refuses_integer_tensors():
    """Integer (or bool) tensors are not embeddings."""
    with pytest.raises(ArgumentError, match="z must be a floating tensor, got dtype torch.int64"):
        check_embeddings(torch.ones(2, 4, dtype=torch.int64), name="z")
    with pytest.raises(ArgumentError, match="floating tensor"):
        check_embeddings(torch.ones(2, 4, dtype=torch.bool), name="z")


def test_check_embeddings_refuses_infinite_values_naming_the_rows():
    """Infinity is refused like NaN, naming the rows that hold it."""
    z = torch.ones(3, 4)
    z[1, 2] = float("inf")
    z[2, 0] = -float("inf")
    with pytest.raises(ArgumentError, match=r"z contains NaN or infinite values \(rows \[1, 2\]\)"):
        check_embeddings(z, name="z")


def test_spherical_mean_takes_weights_whose_sum_overflows():
    """Weights each finite in float32 whose sum is not (2e38 twice) give the mean of their
    proportions, as [1, 1] does; they were read as cancelling out ('the weighted points cancel
    out'), in a batch beside ordinary rows too."""
    p = unit(0, 3, 8)
    torch.testing.assert_close(spherical_mean(p, torch.tensor([2e38, 2e38, 0.0])), spherical_mean(p, torch.tensor([1.0, 1.0, 0.0])))
    w = torch.tensor([[2e38, 1e38, 3e38], [1.0, 2.0, 3.0]])
    both = spherical_mean(p, w)
    torch.testing.assert_close(both[0], spherical_mean(p, torch.tensor([2.0, 1.0, 3.0])))
    torch.testing.assert_close(both[1], spherical_mean(p, w[1]))


def test_nlerp_between_rows_too_small_to_square_keeps_their_directions():
    """Ends of norm 1e-21 or 1e-25 (their squares underflow in float32): the blends are the unit
    blends of the directions, ends exact, not refused as cancelling out nor off by digits."""
    a, b = unit(1, 1, 8), unit(2, 1, 8)
    t = torch.tensor([0.0, 0.3, 1.0])
    want = nlerp(a, b, t)
    for s in (1e-21, 1e-25):
        torch.testing.assert_close(nlerp(a * s, b * s, t), want, atol=2e-6, rtol=0)


def test_normalize_gives_short_rows_unit_length_and_keeps_zero_rows():
    """space.normalize scales a row of norm 1e-14 (below its clamp) or 1e-30 (whose norm
    underflows in float32) to unit length, as it does one of 1e20; they came back 0.01 long, or
    zero. A zero row stays zero; ordinary rows keep their bits."""
    z = unit(3, 2, 8)
    for s in (1e-14, 1e-30, 1e20):
        torch.testing.assert_close(normalize(z * s), z, atol=1e-6, rtol=0)
    assert torch.equal(normalize(torch.zeros(1, 8)), torch.zeros(1, 8))
    assert torch.equal(normalize(z * 3.0), (z * 3.0) / (z * 3.0).norm(dim=-1, keepdim=True))


def test_numbers_too_large_for_a_float_are_refused_by_name():
    """A 400-digit integer (what a JSON file's number becomes) is not a finite number: the shared
    checks refuse it naming the argument (math.isfinite and float() raised a raw OverflowError)."""
    from latentlab.errors import check_number, is_finite_real
    from latentlab.video import _check_fps

    huge = 10**400
    assert not is_finite_real(huge) and not is_finite_real(True) and is_finite_real(torch.tensor(2.5).numpy()[()])
    with pytest.raises(ArgumentError, match="guidance_scale must be a finite number"):
        check_number(huge, "guidance_scale")
    with pytest.raises(ArgumentError, match="eps must be a finite number"):
        slerp(unit(0, 1, 4), unit(1, 1, 4), 0.5, eps=huge)
    with pytest.raises(ArgumentError, match="fps="):
        _check_fps(huge)


@pytest.mark.parametrize("check", ["check_int", "check_seed", "check_number"])
def test_an_integer_too_long_to_print_is_refused_by_its_size(check):
    """Over 4300 digits Python will not print an integer (repr raises a ValueError), so the shared
    checks' own messages raised a raw ValueError; they now say its size."""
    from latentlab import errors

    with pytest.raises(ArgumentError, match=r"steps must be .*got <an integer of 33220 bits>"):
        if check == "check_int":
            errors.check_int(-(10**10000), "steps", minimum=1)
        else:
            getattr(errors, check)(10**10000, "steps")


_HUGE = 10**400  # what a JSON file's 400-digit number becomes


# -- audit of 2026-12-07: huge and complex factors, tiny and huge rows, float8, empty batches, priors --
def test_blend_factors_too_large_for_a_float_are_refused_by_name():
    """t, amount, theta and arithmetic's weights of 10**400 (or a list holding one) raised a raw
    OverflowError from float() / torch.as_tensor."""
    a, b, c = unit(0, 1, 8), unit(1, 1, 8), unit(2, 1, 8)
    cases = [
        ("t must be a finite number", lambda: slerp(a, b, _HUGE)),
        ("t must be a finite number", lambda: lerp(a, b, -_HUGE)),
        ("t must be a finite number", lambda: nlerp(a, b, _HUGE)),
        ("t holds a number too large", lambda: slerp(a, b, [0.0, _HUGE])),
        ("amount must be a finite number", lambda: amplify(a, b, _HUGE)),
        ("theta must be a finite number", lambda: text_diff(a, b, c, _HUGE)),
        ("the weight of terms\\[1\\] must be a finite number", lambda: arithmetic([(1.0, a), (_HUGE, b)])),
        ("weights holds a number too large", lambda: spherical_mean(torch.cat([a, b]), [_HUGE, 1])),
    ]
    for match, call in cases:
        with pytest.raises(ArgumentError, match=match):
            call()
    # ordinary Python and numpy numbers are taken as before
    torch.testing.assert_close(slerp(a, b, 1), slerp(a, b, np.float64(1.0)))


def test_complex_numpy_blend_factors_and_weights_are_refused_like_complex_tensors():
    """A complex tensor t was refused ("must be real") but a complex numpy scalar or array had its
    imaginary part dropped with only a warning."""
    a, b = unit(0, 1, 8), unit(1, 1, 8)
    with pytest.raises(ArgumentError, match="t must be real"):
        slerp(a, b, np.array([0.5 + 0.5j]))
    with pytest.raises(ArgumentError, match="amount must be real"):
        amplify(a, b, np.complex128(0.5))
    with pytest.raises(ArgumentError, match="weights must be real"):
        spherical_mean(torch.cat([a, b]), np.array([1.0 + 1j, 1.0]))
    with pytest.raises(ArgumentError, match="t must be real"):
        slerp(a, b, torch.tensor(0.5 + 0j))  # (as before)


def test_spherical_mean_of_an_empty_batch_is_empty_as_for_the_other_operators():
    """An empty batch (points (0, K, d), or weights (0, K)) raised a raw RuntimeError from
    max() on the empty step tensor; slerp, arithmetic, ... return (0, d)."""
    p = unit(0, 3, 8)
    assert spherical_mean(torch.zeros(0, 3, 8)).shape == (0, 8)
    assert spherical_mean(p, torch.ones(0, 3)).shape == (0, 8)
    assert slerp(torch.zeros(0, 8), torch.zeros(0, 8), 0.5).shape == (0, 8)


def test_arithmetic_refuses_terms_that_are_not_a_list_by_name():
    """arithmetic(None) or arithmetic(3) raised a raw TypeError "object is not iterable"."""
    for bad in (None, 3, 2.5):
        with pytest.raises(ArgumentError, match="terms must be a list of \\(weight, embedding\\) pairs"):
            arithmetic(bad)  # type: ignore[arg-type]
    # a generator is read once, as before
    a, b = unit(0, 1, 8), unit(1, 1, 8)
    torch.testing.assert_close(arithmetic((w, x) for w, x in [(1.0, a), (1.0, b)]), arithmetic([(1.0, a), (1.0, b)]))


def test_project_out_and_amplify_keep_the_direction_of_rows_of_any_norm():
    """z of norm 1e-30 (its squares underflow in float32) was refused as "z is parallel to
    direction"; at 1e-20 the result was off unit norm (1.0000026); a row of 1e30 whose component
    off the direction is 1e25 was refused too. The other operators take such rows."""
    z = torch.tensor([[1.0, 1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0]])
    for s in (1e-30, 1e-20, 1e20, 1e30):
        torch.testing.assert_close(project_out(z * s, d), torch.tensor([[0.0, 1.0, 0.0]]), atol=1e-6, rtol=0)
        torch.testing.assert_close(amplify(z * s, d, 1.0), amplify(z, d, 1.0), atol=1e-6, rtol=0)
    far = project_out(torch.tensor([[1e30, 1e25]]), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(far, torch.tensor([[0.0, 1.0]]))
    # rows of ordinary size keep their bits
    x, u = unit(3, 16, 32) * 3.0, unit(4, 1, 32)
    along = (x * u).sum(-1, keepdim=True)
    perp = x - along * u
    perp = perp - (perp * u).sum(-1, keepdim=True) * u
    out = perp + 2.0 * along * u
    assert torch.equal(amplify(x, u, 1.0), out / out.norm(dim=-1, keepdim=True))


def test_project_out_and_amplify_name_a_zero_z():
    """A zero z was blamed on z being parallel to direction, or on amount = -1 (amount was 1.0)."""
    d = torch.tensor([[1.0, 0.0, 0.0]])
    z = torch.cat([unit(0, 1, 3), torch.zeros(1, 3)])
    with pytest.raises(ArgumentError, match=r"z is the zero vector \(rows \[1\]\)"):
        amplify(z, d, 1.0)
    with pytest.raises(ArgumentError, match=r"z is the zero vector \(rows \[1\]\)"):
        project_out(z, d)


def test_arithmetic_refuses_weights_whose_shapes_do_not_broadcast_by_name():
    """Weights of shapes (4,) and (5,) each broadcast against the embeddings' leading dims but not
    against each other: adding the terms raised a raw RuntimeError."""
    a, b = unit(0, 1, 8), unit(1, 1, 8)
    with pytest.raises(ArgumentError, match=r"the weight of terms\[0\] \(4,\), the weight of terms\[1\] \(5,\)"):
        arithmetic([(torch.ones(4), a), (torch.ones(5), b)])
    assert arithmetic([(torch.ones(4, 1), a), (torch.ones(5), b)]).shape == (4, 5, 8)  # (as before)


def test_arithmetic_of_tiny_or_huge_terms_keeps_their_direction():
    """Terms of norm 1e-30 (or 1e-40) were refused as "the terms cancel out" (the sum's norm and
    the scale underflowed to zero); weights of 1e-30 too."""
    z = torch.tensor([[1.0, 1.0, 0.0]])
    d = torch.tensor([[1.0, 0.0, 0.0]])
    want = arithmetic([(1.0, z), (0.5, d)])
    for s in (1e-40, 1e-30, 1e-20, 1e20, 1e30):
        torch.testing.assert_close(arithmetic([(1.0, z * s), (0.5, d * s)]), want, atol=1e-6, rtol=0)
    torch.testing.assert_close(arithmetic([(1e-30, z), (0.5e-30, d)]), want, atol=1e-6, rtol=0)
    # terms that do cancel are still refused, whatever their size
    for s in (1e-30, 1.0):
        with pytest.raises(ArgumentError, match="cancel out"):
            arithmetic([(1.0, z * s), (-1.0, z * s)])


def test_nlerp_names_a_zero_end_where_the_blend_is_zero():
    """nlerp(zeros, b, 0.0) was refused as "t outside [0, 1] extrapolates past the zero vector":
    t = 0 is inside; the zero end is at fault. (Where the blend is not zero, as at t = 0.5, it is
    b's direction, as before; a trajectory refuses a zero end keyframe itself.)"""
    a, b = torch.zeros(1, 4), unit(0, 1, 4)
    with pytest.raises(ArgumentError, match=r"a is the zero vector \(rows \[0\]\)") as info:
        nlerp(a, b, 0.0)
    assert "outside [0, 1]" not in str(info.value)
    with pytest.raises(ArgumentError, match=r"b is the zero vector \(rows \[0\]\)"):
        nlerp(b, a, 1.0)
    with pytest.raises(ArgumentError, match=r"a is the zero vector \(rows \[\(0, 0\)\]\)"):
        nlerp(a, b, torch.linspace(0, 1, 5)[:, None])
    torch.testing.assert_close(nlerp(a, b, 0.5), b)  # (as before)
    with pytest.raises(ArgumentError, match="t outside \\[0, 1\\] extrapolates"):  # (as before)
        nlerp(b, 2.0 * b, -1.0)


def test_spherical_mean_refuses_a_bool_or_1d_tensor_iters():
    """iters=torch.tensor(True) ran one iteration and torch.tensor([3]) three, though bools (and
    numpy's np.True_) are refused and the comment says 0-d tensors."""
    p = unit(0, 3, 8)
    for bad in (torch.tensor(True), torch.tensor([3]), np.bool_(True), True):
        with pytest.raises(ArgumentError, match="iters must be a positive int"):
            spherical_mean(p, iters=bad)
    torch.testing.assert_close(spherical_mean(p, iters=torch.tensor(50)), spherical_mean(p, iters=50))


def test_float8_embeddings_are_refused_by_name():
    """torch's float8 dtypes are floating, so they passed the dtype check and raised a raw
    NotImplementedError from isfinite."""
    a = unit(0, 2, 8).to(torch.float8_e4m3fn)
    with pytest.raises(ArgumentError, match=r"a must be a floating tensor, got dtype torch.float8_e4m3fn \(float16"):
        slerp(a, unit(1, 2, 8), 0.5)
    with pytest.raises(ArgumentError, match=r"embeddings must be a floating tensor, got dtype torch.float8_e4m3fn"):
        check_embeddings(a)
    with pytest.raises(ArgumentError, match=r"z must be a floating tensor, got dtype torch.int64"):  # (as before)
        check_embeddings(torch.ones(2, 3, dtype=torch.long), name="z")


def test_tag_refuses_what_is_not_a_tensor_by_name():
    """ll.tag(numpy_array, "mini") raised a raw AttributeError."""
    with pytest.raises(ArgumentError, match=r"got ndarray; pass torch.from_numpy\(z\)"):
        tag(np.zeros((1, 4), dtype=np.float32), "mini")
    with pytest.raises(ArgumentError, match="got list"):
        tag([1.0, 0.0], "mini")
    assert tag(None, None) is None  # (no space: returned as given, as before)  # type: ignore[arg-type]


def test_a_prior_takes_back_its_own_outputs_whatever_type_its_space_was_given_in():
    """Prior(space=5) tagged its outputs '5' (tag() records str(space)) but compared inputs with 5,
    so it refused its own outputs as being of another space."""
    p = IdentityPrior(name="p", space=5, dim=4)  # type: ignore[arg-type]
    out = p(torch.ones(1, 4))
    torch.testing.assert_close(p(out), out)
    assert space_of(out) == "5" and p.space == "5" and p.describe()["space"] == "5"


def test_a_prior_refuses_a_num_samples_no_tensor_can_hold_by_name():
    """num_samples=10**400 passed check_int (no upper bound) and raised a raw ValueError
    ("Overflow when unpacking long long") from repeat_interleave."""
    p = IdentityPrior(name="p", space="s", dim=4)
    for bad in (_HUGE, 2**62, 10**5000):
        with pytest.raises(ArgumentError, match="num_samples=.* asks for more than"):
            p(torch.ones(1, 4), num_samples=bad)
    assert p(torch.ones(2, 4), num_samples=3).shape == (6, 4)


def test_a_prior_takes_a_numpy_integer_dim():
    """Prior(dim=np.int64(4)) (e.g. an array's shape read through numpy) was refused as "dim must be a
    positive integer, got np.int64(4)"; num_samples and seed take numpy integers already."""
    p = IdentityPrior(name="p", space="s", dim=np.int64(4))  # type: ignore[arg-type]
    assert p.dim == 4 and type(p.dim) is int and p.describe()["dim"] == 4
    assert p(torch.ones(1, 4)).shape == (1, 4)
    for bad in (True, 4.0, 0, np.float64(4.0)):
        with pytest.raises(ArgumentError, match="dim must be a positive integer"):
            IdentityPrior(name="p", space="s", dim=bad)  # type: ignore[arg-type]


# -- property tests (the first and last pass before and after; the blend-factor one is a regression) --


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=seeds, d=st.integers(1, 40), t=st.floats(-2.0, 3.0), scale=st.sampled_from([1e-30, 1.0, 1e30]),
       dtype=st.sampled_from([torch.float16, torch.bfloat16, torch.float32, torch.float64]))
def test_slerp_endpoints_unit_norm_symmetry_and_dtype(seed, d, t, scale, dtype):
    if dtype in (torch.float16, torch.bfloat16):
        scale = 1.0  # (1e30 is beyond float16)
    a = (unit(seed, 2, d, dtype=torch.float64) * scale).to(dtype)
    b = (unit(seed + 1, 2, d, dtype=torch.float64) * scale).to(dtype)
    if bool((ops.cosine(a.double(), b.double()) < -0.999).any()):
        with pytest.raises(ArgumentError, match="antipodal"):
            slerp(a, b, t)
        return
    tol = {torch.float16: 4e-3, torch.bfloat16: 2e-2, torch.float32: 2e-5, torch.float64: 1e-12}[dtype]
    r = slerp(a, b, t)
    assert r.dtype == dtype and r.shape == (2, d)
    torch.testing.assert_close(r.double().norm(dim=-1), torch.ones(2, dtype=torch.float64), atol=tol, rtol=0)
    torch.testing.assert_close(slerp(b, a, 1.0 - t).double(), r.double(), atol=tol * 10, rtol=0)
    torch.testing.assert_close(slerp(a, b, 0.0).double(), normalize(a.double()), atol=tol, rtol=0)
    torch.testing.assert_close(slerp(a, b, 1.0).double(), normalize(b.double()), atol=tol, rtol=0)


@settings(max_examples=15, deadline=None, derandomize=True)
@given(t=st.one_of(st.integers(-(10**500), 10**500), st.floats(allow_nan=True, allow_infinity=True),
                   st.booleans(), st.complex_numbers(), st.text(max_size=3), st.none()))
def test_blend_factors_give_a_result_or_an_argument_error(t):
    a, b = unit(0, 1, 4), unit(1, 1, 4)
    for op in (lerp, nlerp, slerp):
        try:
            r = op(a, b, t)
        except LatentlabError as e:
            assert "t " in str(e)
        else:
            assert torch.isfinite(r).all()


@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=seeds, k=st.integers(1, 5), d=st.integers(2, 16), data=st.data())
def test_spherical_mean_is_unit_norm_and_scale_invariant_or_refused_by_name(seed, k, d, data):
    p = unit(seed, k, d)
    w = data.draw(st.lists(st.floats(-1.0, 10.0), min_size=k, max_size=k))
    try:
        m = spherical_mean(p, w)
    except ArgumentError as e:
        assert "weights" in str(e) or "points" in str(e)
        return
    assert abs(float(m.norm()) - 1.0) < 1e-5
    torch.testing.assert_close(spherical_mean(p, [3.0 * x for x in w]), m, atol=1e-5, rtol=0)
