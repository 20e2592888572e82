"""Plotly figure builders, one module per subject: training curves, compare, explanations, attention."""
