"""Attributions over Captum for image, table and text models, scored for faithfulness and localisation.

`METHODS` is the one registry (an entry per method, with how it runs on each kind of data); importing
the package fills it with the image/table ways (`image.methods`) and the text ways (`text.methods`).
`explain(method, model, inputs, target, baseline=..., **params)` explains tensors, `explain_text` a sentence;
`embeddings(run_id, split="test", layer=None)` a run's penultimate-layer embeddings (dlx.explain.projector).
"""
from dlx.explain.image.methods import Attribution, explain
from dlx.explain.methods import METHODS, available_methods, get_method, get_way, methods_for, register_method
from dlx.explain.text.methods import TokenAttribution, explain_text

__all__ = ["METHODS", "Attribution", "TokenAttribution", "available_methods", "embeddings", "explain",
           "explain_text", "get_method", "get_way", "methods_for", "register_method"]


def __getattr__(name: str):
    """`embeddings` on first use: its module registers a job kind and loads runs, which `import dlx.explain`
    need not pay for."""
    if name == "embeddings":
        from dlx.explain.projector import embeddings

        return embeddings
    raise AttributeError(f"module 'dlx.explain' has no attribute {name!r}")
