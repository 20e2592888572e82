"""Runs and a data set whose every user-typed field is a Markdown and HTML payload, made through the
library as a user would: shared by the AppTest checks (tests/views/test_user_text_pages.py) and the Chromium
journey (tests/browser/test_browser_user_text.py)."""
from __future__ import annotations

import re
from collections.abc import Iterable

from dlx.data.tables import import_table
from dlx.store import default_store
from dlx.tracking import start_run

HOSTS = ("evil.example", "beacon.example", "img.example", "anchor.example")
PAYLOAD = ("[Log in again](https://evil.example) ![b](http://beacon.example/b.png) "
           "<img src=\"http://img.example/i.png\"> <a href=\"https://anchor.example\">a</a> "
           ":red[red] $x^2$ :smile: `code` **b** :material/star: :streamlit: www.evil.example")
SHORT = "![p](http://beacon.example/s.png)<a href='https://anchor.example'>:red[x]</a>$y$"  # fits a cell


def seed_runs() -> list[int]:
    """Two finished runs (the first failed, the payload its reason) whose name, experiment, sweep, config,
    params, metric keys, class names, tags and note are payloads; they differ in a param, so the Compare
    page shows the params."""
    store = default_store()
    ids = []
    for i in range(2):
        run_id = store.create_run({"lr": 0.1 * (i + 1), SHORT: f"{SHORT} {i}"}, experiment=PAYLOAD,
                                  name=PAYLOAD, sweep=SHORT, status="queued")
        run = start_run(run_id=run_id, handle_signals=False)
        run.log_params({SHORT: f"{PAYLOAD} {i}", "lr": 0.1 * (i + 1)})
        for step in range(5):
            run.log_metrics({SHORT: step * 0.1, "val_acc": step / 10 + i / 100, PAYLOAD: 1.0 / (step + 1)},
                            step=step)
        run.update_summary({"confusion_matrix": [[3, 1], [0, 4]], "classes": [SHORT, PAYLOAD], "test_acc": 0.875})
        run.finish("failed", error=PAYLOAD) if i == 0 else run.finish()
        store.set_tags(run_id, {"owner": PAYLOAD})
        store.set_note(run_id, PAYLOAD)
        ids.append(run_id)
    return ids


def seed_table() -> str:
    """A user table data set whose class names and a column name are payloads; returns its name."""
    header = '"' + SHORT.replace('"', '""') + '",y,label'
    body = [f"{i},{i % 3},{'=HYPERLINK(1)' if i % 2 else SHORT}" for i in range(30)]
    import_table(default_store(), ("\n".join([header, *body]) + "\n").encode(), "hostile", "label", "hostile.csv")
    return "hostile"


def payload_links(hrefs: Iterable[str]) -> list[str]:
    """The URLs among `hrefs` that lead to a payload's host."""
    return [h for h in hrefs if any(host in (h or "") for host in HOSTS)]


EMOJI = re.compile(r":(?!material/|streamlit:)[\w+-][\w_+-]*:")  # Streamlit loads remark-emoji on this
MATH = re.compile(r"(?<!\$)\$(?![\s$])[^$\n]*?[^\s$]\$(?!\d)")  # ... and KaTeX on this (escapes removed first)
