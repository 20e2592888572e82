"""Computed explanations of every kind, stored in the run's store (`store.explanations`) and shown again
without recomputing.

A key is the sha256 of everything that determines the result: run, checkpoint file, the
sample's bytes, method, its resolved parameters, the baseline (for methods that use one) and
the target. Tensors are stored as safetensors bytes, never pickles. Jobs store their results
(global importance, faithfulness over many samples) here too, under a key of their task.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from torch import Tensor

from dlx.explain.image.baselines import make_baseline
from dlx.explain.image.methods import Attribution, explain
from dlx.explain.methods import get_method, get_way
from dlx.explain.models_cache import LoadedRun
from dlx.explain.text.methods import TokenAttribution, explain_text
from dlx.explain.text.tokens import Encoded
from dlx.store.explanations import Stored


def digest(value: Any) -> str:
    """sha256 of a JSON-able value, independent of dict order."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def tensor_digest(x: Tensor) -> str:
    """sha256 of a tensor's shape and float32 bytes: an uploaded image and a test sample alike."""
    data = x.detach().to("cpu", torch.float32).contiguous()
    sha = hashlib.sha256(str(tuple(data.shape)).encode())
    sha.update(data.numpy().data)  # the array's buffer as it is: no copy of its bytes
    return sha.hexdigest()


def explanation_key(loaded: LoadedRun, sample: Tensor, method: str, params: dict[str, Any],
                    baseline: str, target: int) -> str:
    return _key(loaded, tensor_digest(sample), method, get_method(method).on_tensors.resolve(params), baseline, target)


def _key(loaded: LoadedRun, sample_digest: str, method: str, resolved: dict[str, Any], baseline: str,
         target: int) -> str:
    return digest({"run": loaded.run_id, "checkpoint": loaded.checkpoint_id, "sample": sample_digest,
                   "method": method, "params": resolved,
                   "baseline": baseline if get_method(method).on_tensors.uses_baseline else None, "target": int(target)})


def explain_cached(loaded: LoadedRun, inputs: Tensor, targets: list[int], method: str,
                   baseline: str = "zeros", params: dict[str, Any] | None = None) -> Attribution:
    """Explain a batch with one method: stored samples are read back, only the others computed."""
    return explain_cached_many(loaded, inputs, targets, [method], baseline, {method: params or {}})[method]


def explain_cached_many(loaded: LoadedRun, inputs: Tensor, targets: list[int], methods: list[str],
                        baseline: str = "zeros",
                        params: dict[str, dict[str, Any]] | None = None,
                        wait: bool = True) -> dict[str, Attribution]:
    """Explain a batch with several methods through the cache of the run's store: one lookup for
    every method's samples, Captum for the missing ones, one statement to store them; with
    `wait=False` (the page) that statement is the store's background writer's (dlx.store.explanations)."""
    resolved = {method: get_method(method).on_tensors.resolve((params or {}).get(method) or {}) for method in methods}
    digests = [tensor_digest(x) for x in inputs]
    keys = {method: [_key(loaded, sample, method, resolved[method], baseline, t) for sample, t in zip(digests, targets)]
            for method in methods}
    found = loaded.store.explanations.load_many([key for method_keys in keys.values() for key in method_keys])
    target_tensor = torch.tensor(targets, dtype=torch.long, device=loaded.device)  # once for every method
    fresh: dict[str, dict[str, Stored]] = {}
    result = {}
    for method in methods:
        missing = [i for i, key in enumerate(keys[method]) if key not in found]
        if missing:
            fresh[method] = _compute(loaded, inputs, targets, target_tensor, method, resolved[method], baseline,
                                     missing, keys[method])
            found.update(fresh[method])
        stored = [found[key] for key in keys[method]]
        deltas = [tensors.get("delta") for _, tensors in stored]
        result[method] = Attribution(
            method, torch.stack([tensors["values"] for _, tensors in stored]),
            torch.cat([d for d in deltas if d is not None]) if all(d is not None for d in deltas) else None,
            sum(meta["seconds"] for meta, _ in stored), get_method(method).on_tensors.signed(resolved[method]),
            resolved[method], cached=not missing)
    loaded.store.explanations.save_many(loaded.run_id, fresh, wait)
    return result


def _compute(loaded: LoadedRun, inputs: Tensor, targets: list[int], target_tensor: Tensor, method: str,
             params: dict[str, Any], baseline: str, missing: list[int], keys: list[str]) -> dict[str, Stored]:
    """The missing samples' maps with one Captum call, as cache entries."""
    entry = get_method(method).on_tensors
    if len(missing) == len(inputs):  # a first look: the batch as it is (indexing copies it)
        rows, row_targets = inputs, target_tensor
    else:
        rows, row_targets = inputs[missing], target_tensor[missing]
    base = make_baseline(baseline, rows, loaded.meta.mean) if entry.uses_baseline else None
    with loaded.lock:
        fresh = explain(method, loaded.model, rows, row_targets, base, **params)
    per_sample = fresh.seconds / len(missing)
    entries: dict[str, Stored] = {}
    for j, i in enumerate(missing):
        tensors = {"values": fresh.values[j]}
        if fresh.delta is not None:
            tensors["delta"] = fresh.delta[j:j + 1]
        meta = {"seconds": per_sample, "signed": fresh.signed, "params": params,
                "baseline": baseline, "target": int(targets[i]), "checkpoint": loaded.checkpoint}
        entries[keys[i]] = (meta, tensors)
    return entries


def explain_text_cached(loaded: LoadedRun, encoded: Encoded, method: str, target: int, **params: Any) -> TokenAttribution:
    """`explain_text` for a run's model, stored in the explanation cache of its store under the checkpoint, sentence, method, its resolved parameters and target, so
    the page's reruns (every widget change) do not recompute Layer IG."""
    resolved = get_way(method, "text").resolve(params)
    key = digest({"text": encoded.text, "ids": encoded.input_ids[0].tolist(), "method": method,
                        "params": resolved, "target": int(target), "checkpoint_id": loaded.checkpoint_id})
    stored = loaded.store.explanations.load(key)
    if stored is not None:
        meta, tensors = stored
        return TokenAttribution(method, tensors["values"], meta["delta"], meta["seconds"], meta["signed"], resolved)
    with loaded.lock:
        result = explain_text(method, loaded.model, encoded, target, **resolved)
    meta = {"delta": result.delta, "seconds": result.seconds, "signed": result.signed}
    loaded.store.explanations.save(key, loaded.run_id, method, meta, {"values": result.values})
    return result
