"""`run.log_model(model, builder="mypkg.nets:make_net", input="digits", **builder_kwargs)`: a model from the user's
own script stored so the Explain page can rebuild it: its weights as safetensors, and the import path of the
function that builds it (called with `builder_kwargs`), and `input`, the registered data set whose kind (image,
table or text) and test split it is explained on.

The builder is the user's own code: it is imported and called only where dlx runs, and only from modules the
setting `DLX_MODEL_BUILDERS` allows (module prefixes separated by commas; unset: any, unless the app is exposed
to the network, where none is until its owner names them). See docs/security.md.
"""
from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from dlx import settings
from dlx.errors import DlxError

if TYPE_CHECKING:
    from torch import nn


class Indexes(Protocol):
    """What log_model needs of a run (dlx.tracking.Run): its id and its artifacts' index."""

    id: int

    def log_artifacts(self, entries: Iterable[tuple[str, str, str, Mapping[str, Any] | None]]) -> None: ...

FORMAT = "builder"  # the checkpoint artifact's meta["format"] of a logged script model
BUILDER = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*")


def log_model(run: Indexes, model: nn.Module, builder: str, input: str, **builder_kwargs: Any) -> None:
    """Write `model`'s weights (safetensors) as the run's best and last checkpoint, with how to rebuild it."""
    import torch  # heavy: only where a model is logged
    from safetensors.torch import save_file

    if not BUILDER.fullmatch(builder):
        raise DlxError(f"builder: {builder!r} is not an import path 'package.module:function'", field="builder")
    try:
        json.dumps(builder_kwargs)
    except (TypeError, ValueError) as err:
        raise DlxError(f"builder_kwargs: must be JSON values (numbers, strings, lists...): {err}",
                       field="builder_kwargs") from None
    if not isinstance(model, torch.nn.Module):
        raise DlxError(f"model: expected a torch.nn.Module, got {type(model).__name__}", field="model")
    folder = settings.run_dir(run.id)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "logged_model.safetensors"
    tmp = path.with_suffix(".tmp")
    save_file({k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    meta = {"format": FORMAT, "builder": builder, "kwargs": builder_kwargs, "input": input}
    where = str(path.relative_to(settings.home()))
    run.log_artifacts([("checkpoint", name, where, meta) for name in ("best", "last")])


def allowed(builder: str) -> bool:
    """Whether `DLX_MODEL_BUILDERS` lets dlx import this builder's module (see the module's docstring)."""
    module = builder.partition(":")[0]
    setting = os.environ.get("DLX_MODEL_BUILDERS", "").strip()
    if not setting:
        return not settings.exposed()
    prefixes = [p.strip() for p in setting.split(",") if p.strip()]
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def builder_function(builder: str) -> Callable[..., Any]:
    """The function `builder` names, imported (the user's code: only where `allowed`)."""
    if not BUILDER.fullmatch(builder):
        raise DlxError(f"builder: {builder!r} is not an import path 'package.module:function'", field="builder")
    if not allowed(builder):
        raise DlxError(f"builder: {builder} is not among the modules DLX_MODEL_BUILDERS allows; set it to the "
                       "package of your model code to rebuild this run's model here", field="builder")
    module, _, name = builder.partition(":")
    try:
        function = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise DlxError(f"builder: {builder} cannot be imported here ({err}); install your package or put it "
                       "on PYTHONPATH where dlx runs", field="builder") from None
    if not callable(function):
        raise DlxError(f"builder: {builder} is not a function", field="builder")
    return function
