"""Attributions over Captum for image and table models, scored for faithfulness and localisation.

`explain(method, model, inputs, target, baseline=..., **params)` is the one call shape; the
registry `METHODS` is what the Explain page lists.
"""
from dlx.explain.methods import METHODS, Attribution, available_methods, explain, get_method, register_method

__all__ = ["METHODS", "Attribution", "available_methods", "explain", "get_method", "register_method"]
