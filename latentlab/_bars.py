"""The progress bars of latentlab's long work, in one place."""

from __future__ import annotations

from typing import Any


def progress_bar(progress: bool, iterable: Any = None, **kwargs: Any) -> Any:
    """A ``tqdm.auto`` bar, switched off where ``progress`` is false. Otherwise ``disable`` is
    left to tqdm, so its environment settings hold: ``TQDM_DISABLE=1`` turns every bar off
    for a batch job's log (an explicit ``disable=False`` overrode it), ``TQDM_MININTERVAL=30``
    thins their updates."""
    from tqdm.auto import tqdm

    from .errors import check_bool

    if not check_bool(progress, "progress"):  # (an array's truth value raised numpy's own error)
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)


def set_total(bar: Any, total: int) -> None:
    """Set a bar's ``total`` once it is known (or, at the end, to what was done), where
    ``tqdm.notebook``'s widget keeps a maximum of its own that ``bar.total`` does not reach."""
    bar.total = total
    widgets = getattr(getattr(bar, "container", None), "children", ())
    if len(widgets) == 3 and hasattr(widgets[1], "max"):
        widgets[1].max = max(total, 1)
    bar.refresh()
