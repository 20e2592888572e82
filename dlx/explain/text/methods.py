"""How the methods run on text: token attributions for one sentence, one call shape, like the image methods.

`explain_text(method, model, encoded, target, **params)` returns one value per word piece
(specials included, zero there) for any method, so the page, the word merging and the scores
never branch on a method's name. Every method explains the target's logit (as the image methods
do); the baseline is the sentence with each word piece replaced by the padding token, [CLS] and
[SEP] kept, so a special token never carries attribution.

Word-level methods (ablation) give each piece its word's value divided by the word's number of
pieces, so summing the pieces (the default merge) gives the word's value back.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from captum.attr import FeatureAblation, LayerGradientXActivation, LayerIntegratedGradients
from torch import Tensor, nn

from dlx.errors import DlxError
from dlx.explain.attention.rollout import relevance, rollout
from dlx.explain.attention.text import attention_and_gradients, attention_maps, token_scores
from dlx.explain.methods import Param, get_way, register_method
from dlx.explain.text.tokens import Encoded, Merge, embedding_layer, merge_tokens, pooling_of, text_forward


@dataclass
class TokenAttribution:
    """What one method said about one sentence."""

    method: str
    values: Tensor  # (T,) one value per word piece, on the CPU
    delta: float | None  # convergence delta (Layer IG), else None
    seconds: float
    signed: bool  # whether the sign means something (diverging colours) or not
    params: dict[str, Any] = field(default_factory=dict)

    def words(self, encoded: Encoded, how: Merge = "sum") -> Tensor:
        """(W,) one value per word of the sentence."""
        return merge_tokens(self.values, encoded.word_of_token, len(encoded.words), how)


def baseline_ids(encoded: Encoded) -> Tensor:
    """(1, T): every word piece replaced by padding, the special tokens kept."""
    base = torch.full_like(encoded.input_ids, encoded.pad_id)
    special = torch.tensor(encoded.special)[None]
    return torch.where(special, encoded.input_ids, base)


def explain_text(method: str, model: nn.Module, encoded: Encoded, target: int, /, **params: Any) -> TokenAttribution:
    """Attribute `model`'s logit for class `target` to the word pieces of one sentence."""
    entry = get_way(method, "text")
    params = entry.resolve(params)
    classes = _n_classes(model, encoded)
    if not isinstance(target, int) or not 0 <= target < classes:
        raise DlxError(f"target: {target!r} is not a class index in [0, {classes - 1}]", field="target")
    device = next(model.parameters()).device
    start = time.perf_counter()
    values, delta = entry.run(model, encoded, target, baseline_ids(encoded).to(device), params)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    values = values.detach().float().cpu().reshape(-1)
    values[torch.tensor(encoded.special)] = 0.0
    return TokenAttribution(method, values, None if delta is None else float(delta), seconds,
                            entry.signed(params), params)


def _n_classes(model: nn.Module, encoded: Encoded) -> int:
    device = next(model.parameters()).device
    with torch.no_grad():
        return int(text_forward(model, encoded.input_ids.to(device),
                                encoded.attention_mask.to(device))[0].shape[-1])


def _logits_of(model: nn.Module) -> Callable[[Tensor, Tensor], Tensor]:
    def forward(input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        return text_forward(model, input_ids, attention_mask)[0]
    return forward


def _inputs(encoded: Encoded, device: torch.device) -> tuple[Tensor, Tensor]:
    return encoded.input_ids.to(device), encoded.attention_mask.to(device)


# -- the entries ---------------------------------------------------------------------------------
@register_method(
    "layer_integrated_gradients", "Layer Integrated Gradients", ("text",),
    "gradients at the token embeddings averaged along the path from the padded baseline to the "
    "sentence, times the embedding difference, summed over the embedding; they add up to "
    "logit(sentence) - logit(baseline) (the convergence delta is how far from that)",
    params=(Param("n_steps", 50, "points on the path", 2, 1000),
            Param("method", "gausslegendre", "quadrature rule",
                  choices=("gausslegendre", "riemann_trapezoid", "riemann_left", "riemann_right", "riemann_middle")),
            Param("internal_batch_size", 64, "path points per forward pass", 1, 4096)))
def _layer_integrated_gradients(model, encoded, target, baseline, p):
    ids, mask = _inputs(encoded, baseline.device)
    lig = LayerIntegratedGradients(_logits_of(model), embedding_layer(model))
    values, delta = lig.attribute(ids, baselines=baseline, target=target, additional_forward_args=(mask,),
                                  n_steps=p["n_steps"], method=p["method"],
                                  internal_batch_size=p["internal_batch_size"], return_convergence_delta=True)
    return values.sum(dim=-1)[0], delta[0]


@register_method(
    "saliency", "Saliency", ("text",),
    "gradient of the target's logit at each token's embedding: the norm of gradient × embedding "
    "(default), the norm of the gradient, or their dot product (signed)",
    params=(Param("mode", "grad_x_input_norm", "how a token's gradient becomes one number",
                  choices=("grad_x_input_norm", "grad_norm", "grad_dot_input")),),
    signed=lambda p: p["mode"] == "grad_dot_input")
def _saliency(model, encoded, target, baseline, p):
    ids, mask = _inputs(encoded, baseline.device)
    per_dim = LayerGradientXActivation(_logits_of(model), embedding_layer(model),
                                       multiply_by_inputs=p["mode"] != "grad_norm"
                                       ).attribute(ids, target=target, additional_forward_args=(mask,))[0]
    return (per_dim.sum(dim=-1) if p["mode"] == "grad_dot_input" else per_dim.norm(dim=-1)), None


@register_method(
    "word_ablation", "Feature Ablation (words)", ("text",),
    "the drop in the target's logit when all pieces of one word are replaced by padding "
    "(occlusion with a one-word window)",
    params=(Param("perturbations_per_eval", 32, "ablated copies per forward pass", 1, 4096),))
def _word_ablation(model, encoded, target, baseline, p):
    ids, mask = _inputs(encoded, baseline.device)
    groups = torch.tensor([len(encoded.words) if w is None else w for w in encoded.word_of_token],
                          device=ids.device)[None]
    values = FeatureAblation(_logits_of(model)).attribute(
        ids, baselines=baseline, target=target, additional_forward_args=(mask,), feature_mask=groups,
        perturbations_per_eval=p["perturbations_per_eval"])[0].float()
    pieces = torch.bincount(groups[0]).float()
    return values / pieces[groups[0]], None


@register_method(
    "attention_rollout", "Attention rollout", ("text",),
    "attention flowing from [CLS] (for a mean-pooled model, from all tokens) to each token through "
    "all layers (Abnar & Zuidema 2020): heads averaged, identity added for the residual, rows "
    "renormalised, layers multiplied; the same for every class", signed=lambda p: False)
def _attention_rollout(model, encoded, target, baseline, p):
    return token_scores(rollout(attention_maps(model, encoded)), encoded, pooling_of(model)), None


@register_method(
    "attention_relevance", "Attention relevance (Chefer)", ("text",),
    "attention weighted by its gradient for the target, positive part, averaged over heads and "
    "accumulated over layers (Chefer et al. 2021); the row of [CLS] (the mean of rows for a "
    "mean-pooled model)", signed=lambda p: False)
def _attention_relevance(model, encoded, target, baseline, p):
    maps, grads, _ = attention_and_gradients(model, encoded, target)
    return token_scores(relevance(maps, grads), encoded, pooling_of(model)), None
