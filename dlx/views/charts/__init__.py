"""Plotly figure builders, one module per subject: training curves, compare, explanations, attention; and
`style`, the colours they all use."""
