"""The colours of every figure and page: one palette, the status colours and the colour scales of maps.

The palette is Plotly's default cycle (what training curves and compare always drew), continued with
six darker colours from Plotly's Dark24 so that every attribution method and a MiniLM's 12 heads
keep a colour of their own.
"""
from __future__ import annotations

PALETTE = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880",
           "#ff97ff", "#fecb52", "#0d2a63", "#862a16", "#6c7c32", "#b68100", "#750d86", "#00a08b")
# Runs cycle over the first ten: a run's colour comes from its id, and the Runs and Compare pages have
# always drawn run #n and run #n+10 alike.
RUN_PALETTE = PALETTE[:10]

BLUE, ORANGE, GREEN, RED = "#1c83e1", "#f08c00", "#21a354", "#e0393e"
GREY = "#808495"  # queued runs, the random reference, what is not a method, a hint on an empty chart
DARK_GREY = "#5c6370"  # the top-k probability bars beside a sample: not a method

# Run status -> colour (charts) and badge colour (Streamlit's names).
STATUS_COLORS = {"queued": GREY, "running": BLUE, "succeeded": GREEN, "failed": RED, "cancelled": ORANGE,
                 "pruned": "#9467bd"}
STATUS_BADGES = {"queued": "gray", "running": "blue", "succeeded": "green", "failed": "red",
                 "cancelled": "orange", "pruned": "violet"}
TRAIN, VAL, TEST = BLUE, ORANGE, GREEN
FOR, AGAINST = RED, BLUE  # attribution bars: evidence for the target, against it
FOR_RGB, AGAINST_RGB = (178, 24, 43), (33, 102, 172)  # a sentence's words, their opacity the strength
HIGHLIGHT = "rgba(255, 189, 69, 0.25)"  # table cells that differ between runs

# Attribution maps fade to transparent at zero, so the input shows through where a map says nothing.
DIVERGING = [[0.0, "rgb(5,48,97)"], [0.25, "rgba(67,147,195,0.85)"], [0.5, "rgba(247,247,247,0)"],
             [0.75, "rgba(214,96,77,0.85)"], [1.0, "rgb(103,0,31)"]]
REDS = [[0.0, "rgba(254,224,144,0)"], [0.35, "rgba(253,174,97,0.65)"], [0.7, "rgba(244,109,67,0.9)"],
        [1.0, "rgb(165,0,38)"]]
BLUES = [[0.0, "rgba(224,243,248,0)"], [0.4, "rgba(116,173,209,0.7)"], [1.0, "rgb(49,54,149)"]]
MAGNITUDE = [[0.0, "rgba(68,1,84,0)"], [0.3, "rgba(59,82,139,0.65)"], [0.6, "rgba(33,145,140,0.85)"],
             [1.0, "rgb(253,231,37)"]]
SEQUENTIAL = {"positive": REDS, "negative": BLUES, "absolute": MAGNITUDE}
MASK = [[0, "rgba(0,0,0,0)"], [1, "rgba(33,163,84,1)"]]  # a ground-truth mask, in GREEN

# Plotly's named scales: attention weights, their agreement with attributions, a ViT's maps over the
# image, a feature's value in a beeswarm, a confusion matrix's shares, a metric over parallel coordinates.
ATTENTION, AGREEMENT, VIT_MAP, FEATURE_VALUE, SHARES, METRIC = "Blues", "RdBu_r", "Inferno", "Bluered", "Blues", "Viridis"
