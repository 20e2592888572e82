"""A long value someone typed or logged (a param, a note, an error), shown cut, with the whole of it a click away.

Not a page: pages import it. Sending a 10 MB param in a cell or a code block froze the browser; the cut
value is what the page draws, and the whole one travels only when asked for (a download, or an expander
for what is still readable on a page).
"""
from __future__ import annotations

import streamlit as st

from dlx.views.text import LONG

READABLE = 20_000  # characters an expander shows in full; beyond this only the download has it all


def whole(label: str, text: str, key: str, limit: int = LONG, container=st) -> None:
    """Nothing for a value of at most `limit` characters; else the whole of it to read or download."""
    if len(text) <= limit:
        return
    if len(text) <= READABLE:
        with container.expander(f"{label}: all {len(text):,} characters", icon=":material/unfold_more:"):
            st.code(text, language=None, wrap_lines=True)
    else:
        container.download_button(f"Download {label} ({len(text):,} characters)", text.encode(),
                                  f"{key.rsplit('.', 1)[-1]}.txt", "text/plain", key=key,
                                  icon=":material/download:")
