"""What users type is shown as text on every page (AppTest): every string Streamlit renders as Markdown
parses to no link, image or HTML from a payload and shows the payload as typed; Plotly figures carry
it escaped. Then the CSV side: cells a spreadsheet would run are written with a leading ' and read back."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from streamlit.testing.v1 import AppTest

from dlx.data import csv_cells, load_dataset
from dlx.data.browse import to_csv as browse_csv
from dlx.data.tables import read_table_csv
from dlx.data.text_csv import read_text_csv
from dlx.store import default_store
from dlx.tracking import start_run
from dlx.views import export
from dlx.views.text import md, plot, shorten, template
from tests.helpers.hostile_text import EMOJI, HOSTS, MATH, PAYLOAD, SHORT, payload_links, seed_runs, seed_table

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"
AUTOLINK = re.compile(r"(https?://|www\.)[-.\w]*example", re.IGNORECASE)
MARKDOWN = MarkdownIt("commonmark", {"linkify": False}).enable(["table", "strikethrough"])


@pytest.fixture(autouse=True)
def no_worker(monkeypatch):
    monkeypatch.setenv("DLX_AUTOSTART_WORKER", "0")
    monkeypatch.setenv("DLX_STALE_AFTER", "86400")


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def rendered_strings(at: AppTest) -> tuple[list[str], list[str]]:
    """Every string of the page Streamlit renders as Markdown (bodies, labels, help), and every Plotly spec."""
    markdown, figures = [], []
    for node in _walk(at._tree):
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        if type(proto).__name__ == "PlotlyChart":
            figures.append(proto.spec)
            continue
        kind = type(proto).__name__
        for field in ("body", "label", "help"):
            if field == "body" and kind not in ("Markdown", "Alert", "Toast"):
                continue  # st.text and st.json bodies are plain text
            if field in proto.DESCRIPTOR.fields_by_name and getattr(proto, field):
                markdown.append(getattr(proto, field))
    return markdown, figures


def _inline(tokens):
    for token in tokens:
        yield token
        yield from _inline(token.children or [])


def check_page(at: AppTest) -> str:
    """Assert no payload became markup; returns all the text the page's Markdown shows, for `in` checks."""
    assert not at.exception, at.exception
    markdown, figures = rendered_strings(at)
    shown = []
    for source in markdown:
        tokens = list(_inline(MARKDOWN.parse(source)))
        hrefs = [t.attrGet("href") for t in tokens if t.type == "link_open"]
        images = [t.attrGet("src") for t in tokens if t.type == "image"]
        html = [t.content for t in tokens if t.type in ("html_inline", "html_block")]
        assert not payload_links(hrefs + images + html), source
        if any(host in source for host in HOSTS):  # a payload's text: no emoji, math or colour directive
            assert not EMOJI.search(source), source
            assert not MATH.search(source.replace("\\$", "_")), source
            assert ":red[" not in source.replace("\\:red\\[", ""), source
        text = "".join(t.content for t in tokens if t.type in ("text", "code_inline"))
        assert not AUTOLINK.search(text), source  # GFM would make these links in Streamlit
        shown.append(text.replace("\u2060", ""))  # the word joiners that stop those rewrites are invisible
    for spec in figures:
        assert "<a href" not in spec and "<img" not in spec and "<a href='" not in spec, spec[:300]
    return "\n".join(shown) + "\n".join(figures)


def open_app(page: str = "pages/runs.py", **query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=90)
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    return at


def test_md_escapes_every_markup():
    for text in (PAYLOAD, SHORT, "a -> b <= c", ":streamlit: :material_star:", "1. x\n    code\n# h"):
        tokens = list(_inline(MARKDOWN.parse(md(text))))
        assert {t.type for t in tokens} <= {"paragraph_open", "paragraph_close", "inline", "text", "hardbreak"}
        shown = "".join(t.content for t in tokens if t.type == "text").replace("\u2060", "")
        assert shown == "".join(line.strip() for line in text.split("\n"))
    assert not EMOJI.search(md(":smile: :material_star:")) and not MATH.search(md("$x$").replace("\\$", "_"))
    assert plot("<a href='x'>&</a>") == "&lt;a href='x'&gt;&amp;&lt;/a&gt;"
    assert template("%{y}") == "&#37;{y}"
    assert shorten("x" * 300).startswith("x" * 200) and "100 more characters" in shorten("x" * 300)


def test_runs_pages_show_payloads_as_text():
    first, second = seed_runs()
    at = open_app()
    check_page(at)
    assert shorten(PAYLOAD) in list(at.dataframe[0].value["name"])
    one = check_page(open_app(run=str(first)))
    assert PAYLOAD in one  # the headline and the error, as typed
    assert SHORT in check_page(open_app(sweep=SHORT))
    check_page(open_app(run=str(second)))


def test_compare_and_data_pages_show_payloads_as_text():
    seed_runs()
    at = open_app("pages/compare.py")
    check_page(at)
    frame = at.dataframe[0].value
    assert shorten(PAYLOAD) in list(frame["note"]) and shorten(PAYLOAD) in list(frame["experiment"])
    seed_table()
    at.switch_page("pages/data.py").run()
    at.selectbox(key="data.browsed").select("hostile").run()
    text = check_page(at)
    assert SHORT in text  # a class name, in a caption


def test_export_csv_escapes_formulas_and_reads_back():
    store = default_store()
    run_id = store.create_run({"lr": -1.5}, experiment="=cmd|' /C calc'!A0", name='=HYPERLINK("http://evil.example")')
    with start_run(run_id=run_id, handle_signals=False) as run:
        run.log_params({"@SUM(A1)": "+1+1", "neg": -1.5, "quoted": "'=x"})
        run.log_metrics({"=1+1": -1.5, "\tkey": 2.0}, step=0)
    data = export.selection(store, [run_id])
    text = export.to_csv(data)
    for row in csv.reader(io.StringIO(text)):
        for cell in row:
            assert not cell or cell[0] not in "=+@\t\r" and not (cell[0] == "-" and not _number(cell)), row
    assert "-1.5" in [row[4] for row in csv.reader(io.StringIO(text))]  # a negative number stays a number
    back = export.from_csv(text)
    assert back[run_id]["run"] == {k: (None if v is None else v) for k, v in data[run_id]["run"].items()}
    assert back[run_id]["params"] == data[run_id]["params"]
    assert set(back[run_id]["history"]) == {"=1+1", "\tkey"} and back[run_id]["final"]["=1+1"] == -1.5


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_dlx_export_command_escapes_keys(dlx_home):
    import subprocess
    import sys

    store = default_store()
    run_id = store.create_run({}, name="x")
    with start_run(run_id=run_id, handle_signals=False) as run:
        run.log_metrics({'=HYPERLINK("http://evil.example")': -1.5}, step=0)
    out = subprocess.run([sys.executable, "-m", "dlx.cli", "export", str(run_id)], capture_output=True, text=True,
                         check=True).stdout
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[1][0] == '\'=HYPERLINK("http://evil.example")' and rows[1][2] == "-1.5"
    assert list(csv_cells.reader(io.StringIO(out)))[1][0] == '=HYPERLINK("http://evil.example")'


def test_dlx_readers_take_the_escape_off(tmp_path):
    values = ["=HYPERLINK(1)", "+1", "@SUM(A1)", "-x", "'=y", "plain", "-1.5"]
    buffer = io.StringIO()
    writer = csv_cells.writer(buffer)
    writer.writerow(["=col", "text", "label"])
    for i in range(12):
        writer.writerow([i, values[i % len(values)] + " words", values[i % 2]])
    written = buffer.getvalue()
    assert "'=col" in written and "\n-1.5" not in written
    table = read_table_csv(written.encode(), "label")
    assert set(table.classes) == {values[0], values[1]}
    (tmp_path / "t.csv").write_text(written)
    texts = read_text_csv(tmp_path / "t.csv", "text", "label")
    assert texts.classes == tuple(sorted({values[0], values[1]}))
    assert texts.texts[:len(values)] == [v + " words" for v in values]
    assert [csv_cells.unescape(csv_cells.escape(v)) for v in values] == values
    assert csv_cells.escape(-1.5) == -1.5 and csv_cells.escape("-1.5") == "-1.5"


def test_browse_download_escapes_cells():
    seed_table()
    bundle = load_dataset("hostile")
    from dlx.data.browse import class_balance

    text = browse_csv(class_balance(bundle))
    assert "\n'=HYPERLINK(1)," in text
    assert [row[0] for row in csv_cells.reader(io.StringIO(text))][1:] == list(bundle.meta.classes)
