"""Attention of transformers: text models (`text`), vision transformers (`vit`), and the rollout and
relevance rules both use (`rollout`)."""
