"""What people type (run, experiment, sweep, tag, metric and class names, notes, error texts), shown as
text: escaped for Streamlit's Markdown and for Plotly's text, and cut where it is too long to draw.

Streamlit renders Markdown in almost every string it shows (bodies, labels, help, toasts): a run named
`[Log in again](https://evil.example)` became a live link, `![b](http://host/x.png)` an image the viewer's
browser fetched, `:red[...]`, `$math$` and `:smile:` formatting. Plotly renders a subset of HTML (`<a href>`,
`<b>`, `<span style>`) in titles, legends, ticks and hover labels. No Streamlit or Plotly import here.
"""
from __future__ import annotations

import re

# CommonMark lets a backslash escape any ASCII punctuation, and an escaped one starts nothing. Escaped:
# what can open a link, image, code, HTML, autolink, entity, emphasis, strikethrough, table, directive
# (:red[...]), math ($) or emoji (:x:); at a line's start also what opens a list, heading or quote.
# The rest (- , . ' " ( ) / % # ! ...) is left as it is, so plain text stays as readable in the source:
# ':' before a space and '_' inside a word (DLX_STALE_AFTER) start nothing.
_MARKUP = re.compile(r"([\\`*\[\]<$~|]|&(?=#?\w+;)|:(?=\S)|(?<![^\W_])_|_(?![^\W_]))")
_SHORTCODE_END = re.compile(r"(\\:[\w+\-]+):")  # ...and an emoji's closing ':' (':smile: ') too
_LINE_START = re.compile(r"^(?:([-+=#>])|(\d+)([.)]))")
# Some text is rewritten after parsing, escaped or not: GFM makes URLs ('https://', 'www.') and e-mail
# addresses links; Streamlit turns ':streamlit:' into its logo (an <img>), ':material_icon:' into an icon,
# ' -> ', ' <= ' ... into arrows and signs. A word joiner (invisible) after the first character stops each.
_REWRITTEN = re.compile(r":(?=//|streamlit:|material[_/])|(?i:www)(?=\.)|@(?=[-\w])"
                        r"|(?:(?<=\s)|^)[<\-~>](?=(?:->|>|-|=)(?:\s|$))", re.MULTILINE)
_JOINER = "\u2060"

LONG = 200  # characters of a value shown in a table cell or a line; the whole of it one click away


def md(text: object) -> str:
    """`text` as Streamlit Markdown that shows exactly it, each line its own: markup characters escaped."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    escaped = [_LINE_START.sub(_escape_start, _SHORTCODE_END.sub(r"\1\\:", _MARKUP.sub(
        r"\\\1", _REWRITTEN.sub(_join, line.strip())))) for line in lines]
    return "  \n".join(escaped)  # a hard break per line; stripped, so no line is an indented code block


def _join(match: re.Match) -> str:
    return match.group(0) + _JOINER


def _escape_start(match: re.Match) -> str:
    return "\\" + match.group(1) if match.group(1) else f"{match.group(2)}\\{match.group(3)}"


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
