"""Imports every module that registers preset builders (kept separate so that
``import latentlab`` does not import diffusers or open_clip)."""

from __future__ import annotations

import importlib

# each module registers its builders with the register_*_builder decorators of presets.py
for _mod in (
    "latentlab.encoders",
    "latentlab.hf_clip",
    "latentlab.priors",
    "latentlab.decoders.unclip",
    "latentlab.decoders.kandinsky",
    "latentlab.decoders.karlo",
    "latentlab.mini.runtime",
):
    importlib.import_module(_mod)
