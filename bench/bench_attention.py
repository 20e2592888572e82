"""Attention maps, rollout and Layer IG for one sentence on MiniLM, against direct transformers/Captum calls.

MiniLM-L6 (6 layers x 12 heads = 72 maps), pretrained from the bundled package, a fresh
2-class head (random: timings do not depend on training), one sentence of about 20 pieces.
- maps: dlx's `attention_maps` + `rollout` (all 72 maps on the CPU as one tensor, then the
  rollout), against one `model(..., output_attentions=True)` call plus the same products written
  out inline;
- Layer IG: `explain_text("layer_integrated_gradients")` (50 steps, with the convergence delta)
  against Captum's LayerIntegratedGradients called directly on the word embeddings with the same
  baseline and steps.
Each figure is the best of the repeats after a warm-up (on a shared machine noise only slows a
call down); the ratio is dlx / direct (1.00 = no overhead).

Run: python bench/bench_attention.py [--repeats 5] [--threads 1]
"""
from __future__ import annotations

import argparse
import time

from common import machine, report, setup

setup()

import torch  # noqa: E402
from captum.attr import LayerIntegratedGradients  # noqa: E402

from dlx.explain.attention.rollout import rollout  # noqa: E402
from dlx.explain.attention.text import attention_maps  # noqa: E402
from dlx.explain.text.methods import baseline_ids, explain_text  # noqa: E402
from dlx.explain.text.tokens import encode  # noqa: E402
from dlx.models.text_pretrained import minilm_dir, quiet_transformers, tokenizer  # noqa: E402

SENTENCE = "Honestly, the soundtrack of this film was not unbelievably good in the second half, by most accounts."


def best(call, repeats: int) -> float:
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 gives steadier figures on a busy machine")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers import AutoModelForSequenceClassification

    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(
            str(minilm_dir()), local_files_only=True, attn_implementation="eager", num_labels=2).eval()
    e = encode(tokenizer(), SENTENCE)
    ids, mask, base = e.input_ids, e.attention_mask, baseline_ids(e)

    def dlx_maps():
        rollout(attention_maps(model, e))

    def direct_maps():
        with torch.no_grad():
            maps = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
        flow = torch.eye(ids.shape[1])
        for a in maps:
            a = a[0].mean(0) + torch.eye(ids.shape[1])
            flow = (a / a.sum(-1, keepdim=True)) @ flow

    def dlx_lig():
        explain_text("layer_integrated_gradients", model, e, 1, n_steps=50)

    def direct_lig():
        lig = LayerIntegratedGradients(lambda i, m: model(input_ids=i, attention_mask=m).logits,
                                       model.get_input_embeddings())
        lig.attribute(ids, baselines=base, target=1, additional_forward_args=(mask,), n_steps=50,
                      internal_batch_size=64, return_convergence_delta=True)

    maps_dlx, maps_direct = best(dlx_maps, args.repeats), best(direct_maps, args.repeats)
    lig_dlx, lig_direct = best(dlx_lig, args.repeats), best(direct_lig, args.repeats)
    print(machine())
    report(f"MiniLM, one sentence of {ids.shape[1]} pieces (best of {args.repeats})", [
        ("72 attention maps + rollout, dlx", f"{maps_dlx * 1e3:.1f} ms"),
        ("same, transformers direct", f"{maps_direct * 1e3:.1f} ms"),
        ("ratio dlx / direct", f"{maps_dlx / maps_direct:.2f}"),
        ("Layer IG (50 steps), dlx", f"{lig_dlx * 1e3:.1f} ms"),
        ("same, Captum direct", f"{lig_direct * 1e3:.1f} ms"),
        ("ratio dlx / direct", f"{lig_dlx / lig_direct:.2f}"),
    ])


if __name__ == "__main__":
    main()
