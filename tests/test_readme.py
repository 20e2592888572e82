"""The README's Python, run as a user runs it, and every Store method it and docs/ name exists."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import dlx.store
from dlx.store import Store

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readmes_python_snippets_run(tmp_path, dlx_home):
    # The store the second snippet opens holds a run it finds (final metrics in its summary, as a
    # training run keeps them), so its loop body runs too.
    seed = ("import dlx\nstore = dlx.Store('sqlite:///experiments.db')\n"
            "with dlx.start_run(experiment='seed', store=store, handle_signals=False,\n"
            "                   config={'model': 'cnn', 'dataset': 'digits'}) as run:\n"
            "    run.log_metrics({'val_acc': 0.95, 'val_loss': 0.2}, step=1)\n"
            "    run.update_summary({'val_acc': 0.95})\n")
    found = snippets()
    assert len(found) >= 2 and "list_runs" in found[1]
    for code in (seed, *found):
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                                timeout=120, env={**os.environ, "DLX_HOME": str(dlx_home)})
        assert result.returncode == 0, code + result.stderr
    assert re.fullmatch(r"1 0\.95 0\.2\n", result.stdout), result.stdout  # id, val_acc, last val_loss


def test_every_store_call_the_readme_and_docs_name_exists():
    text = "\n".join(path.read_text() for path in (README, *sorted((ROOT / "docs").glob("*.md"))))
    for name in re.findall(r"\bdlx\.store\.(\w+)\(", text):
        assert hasattr(dlx.store, name), f"README names dlx.store.{name}(), which does not exist"
    methods = set(re.findall(r"\bstore\.(\w+)\(", text))
    assert {"list_runs", "metric_history"} <= set(re.findall(r"\bstore\.(\w+)\(", README.read_text()))
    assert {"list_runs", "count_runs", "metric_history"} <= methods
    for name in methods:
        assert callable(getattr(Store, name, None)), f"README names store.{name}(), not a Store method"


def test_the_readmes_links_and_images_lead_to_files():
    text = README.read_text() + "".join(path.read_text() for path in (ROOT / "docs").glob("*.md"))
    targets = re.findall(r"\]\(((?:\.\./|docs/)?[\w./-]+\.(?:md|png))(?:#[\w-]+)?\)", text)
    assert len(targets) >= 15
    for target in targets:
        found = [base / target for base in (ROOT, ROOT / "docs") if (base / target).is_file()]
        assert found, f"{target} is linked but is not a file"
