"""The app under streamlit.testing: opened on a page, everything it says, the Launch form's values."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dlx.views import launch

APP = Path(__file__).resolve().parents[2] / "streamlit_app.py"


def open_app(page: str | None = None, **query: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=60)
    at.query_params.update(query)
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(at: AppTest) -> str:
    """Everything the page says, in one string to search."""
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "warning", "error", "title")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def form(**changes) -> dict:
    return {**launch.to_form(launch.defaults_for("digits", "cnn")), **changes}
