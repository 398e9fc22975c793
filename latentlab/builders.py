"""Imports every module that registers preset builders (kept separate so that
``import latentlab`` does not import diffusers or open_clip)."""

from __future__ import annotations

import importlib

# each module registers its builders with the register_*_builder decorators of presets.py
for _mod in ("latentlab.encoders", "latentlab.decoders.unclip", "latentlab.priors"):
    try:
        importlib.import_module(_mod)
    except ModuleNotFoundError as exc:  # a module that does not exist yet in this checkout
        if exc.name != _mod:
            raise
