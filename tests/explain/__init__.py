"""Attributions, attention, faithfulness, the explanation cache and explain jobs."""
