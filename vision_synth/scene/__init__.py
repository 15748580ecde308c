"""Procedural scene compositor: backgrounds, objects, defects, placement with occlusion, blending."""

import importlib


def __getattr__(name: str):
    """`scene.kernels` (the compiled loops) is imported on first use: numba takes ~0.3 s to import,
    which commands that compose nothing (validate, check, split, export) need not pay."""
    if name == "kernels":
        return importlib.import_module(f"{__name__}.kernels")  # also sets it as this package's attribute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
