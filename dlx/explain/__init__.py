"""Attributions over Captum for image, table and text models, scored for faithfulness and localisation.

`METHODS` is the one registry (an entry per method, with how it runs on each kind of data); importing
the package fills it with the image/table ways (`image.methods`) and the text ways (`text.methods`).
`explain(method, model, inputs, target, baseline=..., **params)` explains tensors, `explain_text` a sentence.
"""
from dlx.explain.image.methods import Attribution, explain
from dlx.explain.methods import METHODS, available_methods, get_method, get_way, methods_for, register_method
from dlx.explain.text.methods import TokenAttribution, explain_text

__all__ = ["METHODS", "Attribution", "TokenAttribution", "available_methods", "explain", "explain_text",
           "get_method", "get_way", "methods_for", "register_method"]
