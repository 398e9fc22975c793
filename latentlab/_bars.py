"""The progress bars of latentlab's long work, in one place."""

from __future__ import annotations

from typing import Any


def progress_bar(progress: bool, iterable: Any = None, **kwargs: Any) -> Any:
    """A ``tqdm.auto`` bar, switched off where ``progress`` is false. Otherwise ``disable`` is
    left to tqdm, so its environment settings hold: ``TQDM_DISABLE=1`` turns every bar off
    for a batch job's log (an explicit ``disable=False`` overrode it), ``TQDM_MININTERVAL=30``
    thins their updates."""
    from tqdm.auto import tqdm

    if not progress:
        kwargs["disable"] = True
    return tqdm(iterable, **kwargs)
