"""The shapes world: procedural scenes of one or two coloured shapes, their captions, and a
pixel checker that reads colour and shape back off an image.

Everything is deterministic from a seed (``numpy.random.Generator``) and rendered with PIL
(4x supersampled, so edges are antialiased). It is the training data of the embedded
``mini`` unCLIP stack and the ground truth of its semantic tests.

>>> from latentlab.mini.shapes import sample_scene, render_scene, caption, check_image
>>> scene = sample_scene(0, n_objects=1)
>>> img = render_scene(scene)              # uint8 (64, 64, 3)
>>> found = check_image(img)
>>> (found[0]["colour"], found[0]["shape"]) == (scene.objects[0].colour, scene.objects[0].shape)
True
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ArgumentError, check_int, check_number, is_finite_real

__all__ = [
    "COLOURS",
    "SHAPES",
    "BACKGROUNDS",
    "STYLES",
    "RELATIONS",
    "ShapeObject",
    "Scene",
    "sample_scene",
    "sample_scenes",
    "relation_scenes",
    "render_scene",
    "caption",
    "captions_for",
    "check_image",
    "check_agreement",
    "check_relation",
    "check_layout",
]

#: shape colours, name -> RGB; chosen far apart in RGB so that a nearest-entry lookup is safe
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (245, 220, 20),
    "green": (30, 160, 50),
    "cyan": (20, 200, 220),
    "blue": (30, 60, 220),
    "purple": (130, 40, 180),
    "pink": (255, 120, 200),
}
#: backgrounds, name -> RGB (never a shape colour)
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "black": (0, 0, 0),
    "gray": (128, 128, 128),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "star", "cross")
STYLES: tuple[str, ...] = ("filled", "outline")
#: relation of the first object to the second in two-object scenes
RELATIONS: tuple[str, ...] = ("above", "below", "left of", "right of")

_SS = 4  # supersampling factor of the renderer


@dataclass(frozen=True)
class ShapeObject:
    """One shape: its kind, colour, style and bounding square in unit coordinates
    (``cx, cy`` centre in [0, 1] from the top-left, ``size`` side as a fraction of the image)."""

    shape: str
    colour: str
    style: str
    cx: float
    cy: float
    size: float


@dataclass(frozen=True)
class Scene:
    """A scene: 1-2 objects on a plain background. ``relation`` says where the first object
    is relative to the second (``None`` for one object). ``seed`` made it."""

    objects: tuple[ShapeObject, ...]
    background: str
    relation: str | None = None
    seed: int | None = None
    meta: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        return asdict(self)


# -- sampling -----------------------------------------------------------------------------


def sample_scene(
    seed: int | np.random.Generator,
    *,
    n_objects: int | None = None,
    backgrounds: tuple[str, ...] | None = None,
    styles: tuple[str, ...] | None = None,
    p_two: float = 0.4,
) -> Scene:
    """A random scene, deterministic from ``seed`` (an int or a numpy Generator).

    ``n_objects`` 1 or 2 (random with ``P(2) = p_two`` if ``None``); ``backgrounds`` and
    ``styles`` restrict the choices. Two objects differ in colour or shape, sit in opposite
    halves of the image (so they never overlap) and ``relation`` describes their placement.

    >>> sample_scene(3, n_objects=1) == sample_scene(3, n_objects=1)
    True
    """
    # (numpy refused a negative seed with a bare ValueError, and a float seed was truncated)
    int_seed = None if isinstance(seed, np.random.Generator) else check_int(seed, "seed", minimum=0)
    rng = seed if int_seed is None else np.random.default_rng(int_seed)
    if not (is_finite_real(p_two) and 0 <= p_two <= 1):
        raise ArgumentError(f"p_two (the chance of two objects) must be a number in [0, 1], got {p_two!r}.")
    if n_objects is None:
        n_objects = 2 if rng.random() < p_two else 1
    if isinstance(n_objects, bool) or n_objects not in (1, 2):
        raise ArgumentError(f"n_objects must be 1 or 2, got {n_objects!r}.")
    backgrounds, styles = ((x,) if isinstance(x, str) else x for x in (backgrounds, styles))  # a name, not letters
    bgs = tuple(backgrounds) if backgrounds else tuple(BACKGROUNDS)
    sts = tuple(styles) if styles else STYLES
    for b in bgs:
        if b not in BACKGROUNDS:
            raise ArgumentError(f"unknown background {b!r}; choose from {list(BACKGROUNDS)}.")
    for st in sts:
        if st not in STYLES:
            raise ArgumentError(f"unknown style {st!r}; choose from {list(STYLES)}.")
    background = bgs[rng.integers(len(bgs))]
    colours = list(COLOURS)

    def pick() -> tuple[str, str, str]:
        return (
            SHAPES[rng.integers(len(SHAPES))],
            colours[rng.integers(len(colours))],
            sts[rng.integers(len(sts))],
        )

    if n_objects == 1:
        shape, colour, style = pick()
        size = float(rng.uniform(0.38, 0.62))
        half = size / 2 + 0.04
        cx = float(rng.uniform(half, 1 - half))
        cy = float(rng.uniform(half, 1 - half))
        return Scene((ShapeObject(shape, colour, style, cx, cy, size),), background, None, int_seed)

    a = pick()
    b = pick()
    while (b[0], b[1]) == (a[0], a[1]):
        b = pick()
    relation = RELATIONS[rng.integers(len(RELATIONS))]
    objs = []
    for k, (shape, colour, style) in enumerate((a, b)):
        size = float(rng.uniform(0.28, 0.4))
        half = size / 2 + 0.03
        # along the relation axis: first object in its half, second in the other
        lo_half = (half, 0.5 - size / 2 - 0.01)
        hi_half = (0.5 + size / 2 + 0.01, 1 - half)
        first_low = relation in ("above", "left of")
        lo, hi = lo_half if (k == 0) == first_low else hi_half
        along = float(rng.uniform(lo, max(lo, hi)))
        across = float(rng.uniform(half, 1 - half))
        if relation in ("above", "below"):
            cx, cy = across, along
        else:
            cx, cy = along, across
        objs.append(ShapeObject(shape, colour, style, cx, cy, size))
    return Scene(tuple(objs), background, relation, int_seed)


def sample_scenes(seed: int, n: int, **kwargs) -> list[Scene]:
    """``n`` scenes; scene ``i`` is ``sample_scene(seed * 1_000_003 + i)`` so any slice reproduces."""
    seed, n = check_int(seed, "seed", minimum=0), check_int(n, "n", minimum=0)
    return [sample_scene(seed * 1_000_003 + i, **kwargs) for i in range(n)]


def relation_scenes(seed: int, n: int) -> list[Scene]:
    """Up to ``n`` two-object scenes of two different colours, what a relation prompt needs (the
    checker tells the objects apart by colour): the first such among ``sample_scenes(seed, 4 * n,
    n_objects=2)``, as evaluate and the benchmarks draw their relation prompts."""
    n = check_int(n, "n", minimum=0)
    scenes = sample_scenes(seed, 4 * n, n_objects=2)
    return [sc for sc in scenes if sc.objects[0].colour != sc.objects[1].colour][:n]


# -- rendering ----------------------------------------------------------------------------


def _polygon(shape: str, x0: float, y0: float, s: float) -> list[tuple[float, float]] | None:
    """Vertices of ``shape`` inscribed in the square (x0, y0, side s); None for the circle."""
    if shape == "square":
        return [(x0, y0), (x0 + s, y0), (x0 + s, y0 + s), (x0, y0 + s)]
    if shape == "triangle":
        return [(x0 + s / 2, y0), (x0 + s, y0 + s), (x0, y0 + s)]
    if shape == "diamond":
        return [(x0 + s / 2, y0), (x0 + s, y0 + s / 2), (x0 + s / 2, y0 + s), (x0, y0 + s / 2)]
    if shape == "star":
        cx, cy, r_out = x0 + s / 2, y0 + s / 2, s / 2
        r_in = r_out * 0.45
        pts = []
        for k in range(10):
            r = r_out if k % 2 == 0 else r_in
            ang = -math.pi / 2 + k * math.pi / 5
            pts.append((cx + r * math.cos(ang), cy + r * math.sin(ang) + s * 0.06))
        return pts
    if shape == "cross":
        a, b = s / 3, 2 * s / 3
        return [
            (x0 + a, y0), (x0 + b, y0), (x0 + b, y0 + a), (x0 + s, y0 + a), (x0 + s, y0 + b),
            (x0 + b, y0 + b), (x0 + b, y0 + s), (x0 + a, y0 + s), (x0 + a, y0 + b), (x0, y0 + b),
            (x0, y0 + a), (x0 + a, y0 + a),
        ]  # fmt: skip
    if shape == "circle":
        return None
    raise ArgumentError(f"unknown shape {shape!r}; choose from {list(SHAPES)}.")


def _draw_shape(draw, shape: str, box: tuple[float, float, float], fill, outline, width: int) -> None:
    x0, y0, s = box
    poly = _polygon(shape, x0, y0, s)
    if poly is None:
        draw.ellipse([x0, y0, x0 + s, y0 + s], fill=fill, outline=outline, width=width)
    elif fill is not None:
        draw.polygon(poly, fill=fill)
    else:
        draw.line(poly + [poly[0], poly[1]], fill=outline, width=width, joint="curve")


def _check_names(scene: Scene) -> None:
    """Refuse a hand-built scene naming a shape, colour, style or background the world does not
    have (rendering raised a bare ``KeyError``, or drew an unknown style as an outline)."""
    for what, value, choices in [("background", scene.background, BACKGROUNDS)] + [
        (f"object {k}'s {attr}", getattr(o, attr), table)
        for k, o in enumerate(scene.objects)
        for attr, table in (("shape", SHAPES), ("colour", COLOURS), ("style", STYLES))
    ]:
        if not isinstance(value, str) or value not in choices:
            raise ArgumentError(f"scene: {what} {value!r} is not one of {list(choices)}.")


def render_scene(scene: Scene, size: int = 64) -> np.ndarray:
    """Render ``scene`` to uint8 RGB ``(size, size, 3)``, antialiased by 4x supersampling.

    >>> render_scene(sample_scene(0), size=32).shape
    (32, 32, 3)
    """
    from PIL import Image, ImageDraw

    if not isinstance(size, (int, np.integer)) or size < 8:
        raise ArgumentError(f"size must be an int >= 8, got {size!r}.")
    _check_names(scene)
    big = int(size) * _SS
    img = Image.new("RGB", (big, big), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    for o in scene.objects:
        s = o.size * big
        box = (o.cx * big - s / 2, o.cy * big - s / 2, s)
        rgb = COLOURS[o.colour]
        if o.style == "filled":
            _draw_shape(draw, o.shape, box, rgb, None, 0)
        else:
            width = max(_SS * 2, int(round(s * 0.14)))
            _draw_shape(draw, o.shape, box, None, rgb, width)
    img = img.resize((int(size), int(size)), Image.Resampling.BOX)
    return np.asarray(img, dtype=np.uint8).copy()


# -- captions -----------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _np(o: ShapeObject, with_style: bool) -> str:
    words = ([{"filled": "filled", "outline": "outlined"}[o.style]] if with_style else []) + [o.colour, o.shape]
    return f"{_article(words[0])} {' '.join(words)}"


#: caption templates; ``caption(scene, k)`` uses template ``k`` (0 is the canonical one)
N_TEMPLATES = 6


def caption(scene: Scene, template: int = 0) -> str:
    """Caption ``scene`` with template ``template`` (0..5; 0 is the short canonical one).

    >>> s = Scene((ShapeObject("circle", "red", "filled", 0.5, 0.5, 0.5),), "white")
    >>> [caption(s, k) for k in (0, 1, 2)]
    ['a red circle', 'a red circle on a white background', 'a filled red circle']
    """
    k = check_int(template, "template") % N_TEMPLATES
    _check_names(scene)
    objs = scene.objects
    if len(objs) not in (1, 2) or (len(objs) == 2 and scene.relation not in RELATIONS):
        raise ArgumentError(f"scene must hold one object, or two and a relation from {list(RELATIONS)}; got "
                            f"{len(objs)} object(s) and relation {scene.relation!r}.")  # fmt: skip
    with_style = k in (2, 3)
    with_bg = k in (1, 3, 5)
    if len(objs) == 1:
        text = _np(objs[0], with_style)
    else:
        text = f"{_np(objs[0], with_style)} {scene.relation} {_np(objs[1], with_style)}"
    if k == 4:
        text = f"a picture of {text}"
    if k == 5:
        text = f"a drawing of {text}"
    if with_bg:
        text = f"{text} on {_article(scene.background)} {scene.background} background"
    return text


def captions_for(scene: Scene) -> list[str]:
    """Every template's caption of ``scene``."""
    return [caption(scene, k) for k in range(N_TEMPLATES)]


# -- the pixel checker --------------------------------------------------------------------

_PALETTE = np.array(list(COLOURS.values()), dtype=np.float32)
_PALETTE_NAMES = list(COLOURS)
# (a dict of every box size ever checked grew without bound in a process that checks many
# frames, by up to 6 * W * H masks: megabytes per hundred 256 px frames, gigabytes at 512 px)
@functools.lru_cache(maxsize=1024)
def _template(shape: str, w: int, h: int) -> np.ndarray:
    """Filled mask of ``shape`` stretched to a w x h box (bool (h, w)); read-only, as it is shared."""
    from PIL import Image, ImageDraw

    n = 48
    img = Image.new("L", (n * _SS, n * _SS), 0)
    d = ImageDraw.Draw(img)
    _draw_shape(d, shape, (0, 0, n * _SS), 255, None, 0)
    # the star's drawing is shifted down a little: crop to its own bounding box
    arr = np.asarray(img) > 127
    ys, xs = np.nonzero(arr)
    img = img.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)).resize((w, h), Image.Resampling.BOX)
    mask = np.asarray(img) > 127
    mask.flags.writeable = False
    return mask


def _as_uint8_image(image: object) -> np.ndarray:
    if hasattr(image, "convert"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3 or 0 in arr.shape:
        raise ArgumentError(f"image must be an RGB array (H, W, 3) of at least one pixel, got shape {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ArgumentError("image holds NaN or infinite values; the checker reads colours in [0, 1] or [0, 255].")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max() <= 1.0 + 1e-6:
            arr = (arr * 255).round()
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def check_image(image: object, *, max_objects: int = 2, min_area: float = 0.01) -> list[dict]:
    """Read the objects of a shapes-world image off its pixels.

    ``image`` is uint8 (H, W, 3) (or a PIL image; images under 64 px are upsampled first).
    Returns up to ``max_objects`` dicts ``{"colour", "shape", "bbox": (x0, y0, x1, y1),
    "area": fraction of the image, "iou": template fit}``, largest first, plus the key
    ``"background"`` on each. Colour: nearest palette entry to the median of the object's
    inner pixels. Shape: best intersection-over-union of the hole-filled mask against each
    shape's template stretched to the object's bounding box.

    >>> img = render_scene(Scene((ShapeObject("star", "blue", "filled", .5, .5, .5),), "white"))
    >>> [(o["colour"], o["shape"]) for o in check_image(img)]
    [('blue', 'star')]
    """
    from PIL import Image
    from scipy import ndimage

    max_objects = check_int(max_objects, "max_objects", minimum=0)
    min_area = check_number(min_area, "min_area", minimum=0)
    arr = _as_uint8_image(image)
    if arr.shape[0] < 64 or arr.shape[1] < 64:
        scale = int(math.ceil(64 / min(arr.shape[:2])))
        arr = np.asarray(
            Image.fromarray(arr).resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.Resampling.BICUBIC)
        )
    h, w = arr.shape[:2]
    px = arr.astype(np.float32)
    border = np.concatenate([px[0], px[-1], px[:, 0], px[:, -1]])
    bg_rgb = np.median(border, axis=0)
    bg_names = list(BACKGROUNDS)
    bg_name = bg_names[int(np.argmin([np.abs(bg_rgb - np.array(BACKGROUNDS[b])).sum() for b in bg_names]))]
    dist = np.sqrt(((px - bg_rgb) ** 2).sum(-1))
    fg = dist > 60.0
    labels, n = ndimage.label(fg)
    if n == 0:
        return []
    areas = ndimage.sum(fg, labels, index=np.arange(1, n + 1))
    order = np.argsort(-areas)
    found = []
    for idx in order[: max_objects * 3]:
        area = float(areas[idx]) / (h * w)
        if area < min_area:
            break
        mask = labels == (idx + 1)
        core = ndimage.binary_erosion(mask)
        sel = core if core.sum() >= 4 else mask
        rgb = np.median(px[sel], axis=0)
        colour = _PALETTE_NAMES[int(np.argmin(((_PALETTE - rgb) ** 2).sum(-1)))]
        filled = ndimage.binary_fill_holes(mask)
        ys, xs = np.nonzero(filled)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        crop = filled[y0:y1, x0:x1]
        best, best_iou = None, -1.0
        for shape in SHAPES:
            t = _template(shape, int(x1 - x0), int(y1 - y0))
            iou = float((t & crop).sum()) / max(1.0, float((t | crop).sum()))
            if iou > best_iou:
                best, best_iou = shape, iou
        found.append(
            {
                "colour": colour,
                "shape": best,
                "bbox": (int(x0), int(y0), int(x1), int(y1)),
                "area": area,
                "iou": best_iou,
                "background": bg_name,
            }
        )
        if len(found) == max_objects:
            break
    return found


def check_agreement(image: object, scene: Scene) -> dict[str, bool]:
    """Whether the checker reads ``scene``'s objects off ``image``: ``{"colour", "shape", "both"}``
    (for two objects: each ground-truth object has a detected match, in any order)."""
    found = check_image(image, max_objects=len(scene.objects))
    got = [(f["colour"], f["shape"]) for f in found]
    want = [(o.colour, o.shape) for o in scene.objects]
    colour_ok = sorted(c for c, _ in got) == sorted(c for c, _ in want)
    shape_ok = sorted(s for _, s in got) == sorted(s for _, s in want)
    both = sorted(got) == sorted(want)
    return {"colour": colour_ok, "shape": shape_ok, "both": both}


def _holds(relation: str, a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether centre ``a`` is ``relation`` centre ``b`` (image coordinates, y down)."""
    (ax, ay), (bx, by) = a, b
    if relation == "above":
        return ay < by
    if relation == "below":
        return ay > by
    if relation == "left of":
        return ax < bx
    if relation == "right of":
        return ax > bx
    raise ArgumentError(f"relation must be one of {RELATIONS}, got {relation!r}.")


def check_relation(image: object, scene: Scene) -> dict[str, bool]:
    """Whether ``image`` shows ``scene``'s two objects in ``scene.relation`` (the first object
    relative to the second), read off the pixels with :func:`check_image`.

    Returns ``{"objects", "relation", "both"}``: ``objects`` when both objects are found with
    the right colour and shape; ``relation`` when the objects matched *by colour* (distinct
    colours) sit in the stated relation; ``both`` when the two hold at once, the bar of
    prompts such as "a red circle above a blue square".

    >>> s = Scene((ShapeObject("circle", "red", "filled", .5, .25, .4),
    ...            ShapeObject("square", "blue", "filled", .5, .75, .4)), "white", "above")
    >>> check_relation(render_scene(s), s)
    {'objects': True, 'relation': True, 'both': True}
    """
    if len(scene.objects) != 2 or scene.relation not in RELATIONS:
        raise ArgumentError(f"scene must hold two objects and a relation from {list(RELATIONS)} (sample_scene(..., "
                            f"n_objects=2)), got {len(scene.objects)} object(s) and relation {scene.relation!r}.")
    found = check_image(image, max_objects=2)
    want = [(o.colour, o.shape) for o in scene.objects]
    objects_ok = sorted((f["colour"], f["shape"]) for f in found) == sorted(want)

    def centre(colour: str) -> tuple[float, float] | None:
        hits = [f for f in found if f["colour"] == colour]
        if len(hits) != 1:
            return None
        x0, y0, x1, y1 = hits[0]["bbox"]
        return ((x0 + x1) / 2, (y0 + y1) / 2)

    a, b = centre(want[0][0]), centre(want[1][0])
    relation_ok = want[0][0] != want[1][0] and a is not None and b is not None and _holds(scene.relation, a, b)
    return {"objects": objects_ok, "relation": bool(relation_ok), "both": bool(objects_ok and relation_ok)}


def check_layout(image: object, scene: Scene) -> dict[str, bool]:
    """Where ``image`` puts ``scene``'s two colours, split the way a relation can fail:
    ``found`` when each of the two (distinct) colours is found in exactly one object;
    ``axis`` when, found, the two lie along the relation's axis (farther apart vertically
    than horizontally for "above" / "below", the other way for "left of" / "right of");
    ``order`` when, on that axis, the first object is on the stated side. Shapes are not
    read: this tells a decoder that draws both objects but ignores "above" (``axis`` right
    about half the time, by chance) from one that places them and swaps them.

    >>> s = Scene((ShapeObject("circle", "red", "filled", .5, .25, .4),
    ...            ShapeObject("square", "blue", "filled", .5, .75, .4)), "white", "above")
    >>> check_layout(render_scene(s), s), check_layout(render_scene(s), Scene(s.objects, "white", "below"))
    ({'found': True, 'axis': True, 'order': True}, {'found': True, 'axis': True, 'order': False})
    """
    if len(scene.objects) != 2 or scene.relation not in RELATIONS:
        raise ArgumentError(f"scene must hold two objects and a relation from {list(RELATIONS)} (sample_scene(..., "
                            f"n_objects=2)), got {len(scene.objects)} object(s) and relation {scene.relation!r}.")
    found = check_image(image, max_objects=2)
    hits = [[f for f in found if f["colour"] == o.colour] for o in scene.objects]
    if scene.objects[0].colour == scene.objects[1].colour or not all(len(h) == 1 for h in hits):
        return {"found": False, "axis": False, "order": False}
    (ax0, ay0, ax1, ay1), (bx0, by0, bx1, by1) = hits[0][0]["bbox"], hits[1][0]["bbox"]
    a, b = ((ax0 + ax1) / 2, (ay0 + ay1) / 2), ((bx0 + bx1) / 2, (by0 + by1) / 2)
    vertical = abs(b[1] - a[1]) > abs(b[0] - a[0])
    axis = vertical == (scene.relation in ("above", "below"))
    return {"found": True, "axis": axis, "order": axis and _holds(scene.relation, a, b)}
