"""Parameter counts in a child process: `python -m dlx.models.size` reads a JSON list of
[model, kind, input shape, classes, options as [name, value] pairs] on stdin and writes one
{"count": n} or {"error": message, "field": field} per entry, so the app's server can check
DLX_MAX_PARAMS without importing torch itself (issue 18)."""
from __future__ import annotations

import json
import sys

from dlx.errors import DlxError
from dlx.models.registry import _count


def main() -> None:
    answers: list[dict[str, int | str | None]] = []
    for name, kind, shape, classes, options in json.load(sys.stdin):
        try:
            count = _count(name, kind, tuple(shape), classes, tuple((k, v) for k, v in options))
            answers.append({"count": count})
        except DlxError as err:
            answers.append({"error": str(err), "field": err.field})
        except Exception as err:  # noqa: BLE001 (one model that cannot be built must not hide the others' counts)
            answers.append({"error": f"model_options: {name!r} cannot be built ({err})", "field": "model_options"})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main()
