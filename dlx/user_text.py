"""What people type (run, experiment, sweep, tag, metric and class names, notes, error texts), shown as
text: escaped for Streamlit's Markdown and for Plotly's text, and cut where it is too long to draw.

Streamlit renders Markdown in almost every string it shows (bodies, labels, help, toasts): a run named
`[Log in again](https://evil.example)` became a live link, `![b](http://host/x.png)` an image the viewer's
browser fetched, `:red[...]`, `$math$` and `:smile:` formatting. Plotly renders a subset of HTML (`<a href>`,
`<b>`, `<span style>`) in titles, legends, ticks and hover labels. No Streamlit or Plotly import here.
"""
from __future__ import annotations

import re

# CommonMark lets a backslash escape every ASCII punctuation character, and an escaped one starts nothing:
# no link, image, emphasis, code, HTML, autolink, table, directive (:red[...]), math ($) or emoji (:x:).
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# Some text is rewritten after parsing, escaped or not: GFM makes URLs ('https://', 'www.') and e-mail
# addresses links; Streamlit turns ':streamlit:' into its logo (an <img>), ':material_icon:' into an icon,
# ' -> ', ' <= ' ... into arrows and signs. A word joiner (invisible) after the first character stops each.
_REWRITTEN = re.compile(r":(?=//|streamlit:|material_)|(?i:www)(?=\.)|@(?=[-\w])"
                        r"|(?:(?<=\s)|^)[<\-~>](?=(?:->|>|-|=)(?:\s|$))", re.MULTILINE)
_JOINER = "\u2060"

LONG = 200  # characters of a value shown in a table cell or a line; the whole of it one click away


def md(text: object) -> str:
    """`text` as Streamlit Markdown that shows exactly it: every punctuation mark escaped, each line its own."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    escaped = [_PUNCTUATION.sub(r"\\\1", _REWRITTEN.sub(lambda m: m.group(0) + _JOINER, line.strip()))
               for line in lines]
    return "  \n".join(escaped)  # a hard break per line; stripped, so no line is an indented code block


def plot(text: object) -> str:
    """`text` for a Plotly title, legend entry, tick or hover label: its HTML-like markup shown, not drawn."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def template(text: object) -> str:
    """`text` inside a Plotly hovertemplate: as `plot`, and its `%{...}` left alone (not a field to fill)."""
    return plot(text).replace("%", "&#37;")


def shorten(text: object, limit: int = LONG) -> str:
    """At most `limit` characters, the cut marked with an ellipsis and the length left out."""
    value = str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}… ({len(value) - limit:,} more characters)"
