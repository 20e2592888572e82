"""The model registry: a name maps to a builder(meta, **options) -> nn.Module.

An entry names its builder as "module:function" and imports it only when a model is built, so
pages that list models, their options and defaults, or validate a config import no torch (issue
18): the options are read from the builder's signature in its source, and a process without torch
counts parameters in a child process (dlx.models.size).
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import TypeAdapter, ValidationError

from dlx import settings
from dlx.data.registry import DatasetMeta, Kind
from dlx.errors import DlxError

if TYPE_CHECKING:
    from torch import nn

Builder = Callable[..., "nn.Module"]


@dataclass(frozen=True)
class Option:
    """One builder option (a parameter after `meta`): its default and declared type."""

    name: str
    default: Any  # inspect.Parameter.empty when it has none
    annotation: Any  # a type pydantic validates against; Any when the signature names none


@dataclass(frozen=True)
class ModelEntry:
    name: str
    kinds: tuple[Kind, ...]  # the data set kinds this model accepts
    description: str
    target: str  # "package.module:function", imported when a model is built

    @property
    def builder(self) -> Builder:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)

    @property
    def options(self) -> tuple[Option, ...]:
        return _options(self.target)


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, kinds: tuple[Kind, ...], description: str, target: str) -> None:
    """Add a model: `target` is its builder, "module:function", taking (meta, **options)."""
    MODELS[name] = ModelEntry(name, kinds, description, target)


@functools.lru_cache(maxsize=64)
def _options(target: str) -> tuple[Option, ...]:
    """The builder's parameters after `meta`, read from its module's source without importing it.

    Type names a signature uses besides builtins (e.g. `Pooling = Literal[...]`) are looked up
    among the top-level assignments of the module and of the dlx modules it imports from."""
    module, _, function = target.partition(":")
    tree = _source_tree(module)
    node = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function), None)
    if node is None:
        raise DlxError(f"model: {target} names no function in {module}", field="model")
    names = _type_names(module, tree)
    args = node.args.args
    defaults = [None] * (len(args) - len(node.args.defaults)) + list(node.args.defaults)
    return tuple(Option(arg.arg, ast.literal_eval(default) if default is not None else inspect.Parameter.empty,
                        _annotation(arg.annotation, names))
                 for arg, default in list(zip(args, defaults))[1:])


def _source_tree(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise DlxError(f"model: module {module} is not installed", field="model")
    return ast.parse(Path(spec.origin).read_text())


def _type_names(module: str, tree: ast.Module) -> dict[str, ast.expr]:
    """Top-level `Name = <expr>` of this module, and of the dlx modules it imports names from."""
    names: dict[str, ast.expr] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dlx."):
            imported = {alias.name for alias in node.names}
            theirs = _type_names(node.module, _source_tree(node.module))
            names.update({key: value for key, value in theirs.items() if key in imported})
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            names[node.targets[0].id] = node.value
    return names


def _annotation(node: ast.expr | None, names: dict[str, ast.expr]) -> Any:
    """The annotation as a type, or Any where it cannot be evaluated without importing the module."""
    if node is None:
        return Any
    scope: dict[str, Any] = {"Literal": Literal, "Optional": Optional, "Any": Any}
    for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} & names.keys():
        scope[name] = _annotation(names[name], names)
    try:
        return eval(compile(ast.Expression(node), "<signature>", "eval"), scope)  # noqa: S307 (our own source)
    except Exception:  # noqa: BLE001 (a type only the module knows: accept any value here)
        return Any


def check_model_fits(model: str, kind: Kind) -> None:
    """Raise a DlxError naming the field when a model cannot take this kind of data."""
    if model not in MODELS:
        raise DlxError(f"model: unknown model {model!r}; choose one of {sorted(MODELS)}", field="model")
    if kind not in MODELS[model].kinds:
        fits = sorted(name for name, entry in MODELS.items() if kind in entry.kinds)
        raise DlxError(f"model: {model!r} does not take {kind} data; for {kind} data use one of {fits}",
                       field="model")


def check_options(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options converted to the types the builder's signature declares; an unknown name or a
    value of the wrong type is a DlxError naming `model_options.<name>`."""
    declared = {option.name: option for option in MODELS[name].options}
    accepted = list(declared)
    checked = {}
    for key, value in options.items():
        if key not in accepted:
            takes = f"it takes {', '.join(accepted)}" if accepted else "it takes none"
            raise DlxError(f"model_options.{key}: model {name!r} has no option {key!r}; {takes}",
                           field="model_options")
        try:
            checked[key] = TypeAdapter(declared[key].annotation).validate_python(value)
        except ValidationError as err:
            raise DlxError(f"model_options.{key}: {value!r} is not valid for {name!r} "
                           f"({err.errors()[0]['msg'].lower()})", field="model_options") from None
    return checked


def count_parameters(name: str, meta: DatasetMeta, options: dict[str, Any]) -> int:
    """The model's parameter count, built on the meta device: shapes only, no memory, so a huge
    width is measured without allocating it. A process that has not imported torch (the app's
    pages) asks a child process, so torch's hundreds of MB never enter it."""
    key = _count_key(name, meta, options)
    if "torch" in sys.modules:
        return _count(*key)
    if key not in _CHILD_COUNTS:
        _CHILD_COUNTS.update(_SAVED_COUNTS.read(key))
    if key not in _CHILD_COUNTS:
        # One child for this config and every model's defaults on the same data: its start
        # (importing torch) is most of the cost, and the form's next model choice is then known.
        others = [_count_key(model, meta, {}) for model, entry in MODELS.items() if meta.kind in entry.kinds]
        _count_in_child([key, *(other for other in others if other not in _CHILD_COUNTS)])
    answer = _CHILD_COUNTS[key]
    if isinstance(answer, DlxError):
        raise answer
    return answer


def _count_key(name: str, meta: DatasetMeta, options: dict[str, Any]) -> tuple:
    """What a count depends on, options completed with the builder's defaults (given or not, same model)."""
    defaults = {o.name: o.default for o in MODELS[name].options if o.default is not inspect.Parameter.empty}
    return (name, meta.kind, tuple(meta.input_shape), meta.num_classes,
            tuple(sorted({**defaults, **options}.items())))


@functools.lru_cache(maxsize=256)
def _count(name: str, kind: Kind, shape: tuple[int, ...], classes: int,
           options: tuple[tuple[str, Any], ...]) -> int:
    """Cached: a meta build of ResNet-18 takes 0.3 s, and a sweep checks every config."""
    import torch

    meta = DatasetMeta(name, kind, tuple(map(str, range(classes))), shape)
    try:
        with torch.device("meta"):
            model = MODELS[name].builder(meta, **dict(options))
    except (ValueError, RuntimeError, TypeError) as err:
        raise DlxError(f"model_options: {name!r} cannot be built with {dict(options)} ({err})",
                       field="model_options") from None
    return sum(p.numel() for p in model.parameters())


_CHILD_COUNTS: dict[tuple, int | DlxError] = {}  # per config, in processes without torch


def _count_in_child(keys: list[tuple]) -> None:
    """`_count` for each key in `python -m dlx.models.size`; the answers go to _CHILD_COUNTS."""
    done = subprocess.run([sys.executable, "-m", "dlx.models.size"], input=json.dumps(keys),
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise DlxError(f"model_options: counting {keys[0][0]!r}'s parameters failed "
                       f"({done.stderr.strip()[-300:]})", field="model_options")
    counted = {}
    for key, answer in zip(keys, json.loads(done.stdout)):
        _CHILD_COUNTS[key] = (answer["count"] if "count" in answer
                              else DlxError(answer["error"], field=answer["field"]))
        if "count" in answer:
            counted[key] = answer["count"]
    _SAVED_COUNTS.write(counted)


class _SavedCounts:
    """Counts kept in `DLX_HOME/cache/parameter_counts.json` across server restarts: a child costs
    a torch import (seconds, 17 s on a loaded machine), which the Launch page's first view of a
    data kind would otherwise wait for after every restart.

    Each count is filed under a fingerprint of what it depends on besides the key: the builder
    module's source and the installed torch, torchvision and transformers. A damaged or foreign
    file is ignored (it is only a cache) and replaced atomically on the next write.
    """

    FILE = "parameter_counts.json"

    def path(self) -> Path:
        return settings.home() / "cache" / self.FILE

    def read(self, key: tuple) -> dict[tuple, int]:
        """Every saved count of this key's model (one file read per miss; the caller keeps them)."""
        saved = self._load()
        prefix = _fingerprint(MODELS[key[0]].target)
        counts = {}
        for text, count in saved.items():
            fingerprint, _, entry = text.partition(" ")
            if fingerprint == prefix and isinstance(count, int):
                try:
                    counts[_as_key(json.loads(entry))] = count
                except (ValueError, TypeError, IndexError):
                    continue
        return counts

    def write(self, counts: dict[tuple, int]) -> None:
        if not counts:
            return
        saved = self._load()
        for key, count in counts.items():
            try:
                saved[f"{_fingerprint(MODELS[key[0]].target)} {json.dumps(key)}"] = count
            except TypeError:
                continue  # an option value JSON cannot hold is counted again next time
        path = self.path()
        try:
            path.parent.mkdir(exist_ok=True)
            temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            temporary.write_text(json.dumps(saved))
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only data directory only costs the next start a child

    def _load(self) -> dict[str, Any]:
        try:
            saved = json.loads(self.path().read_text())
        except (OSError, ValueError):
            return {}
        return saved if isinstance(saved, dict) else {}


_SAVED_COUNTS = _SavedCounts()


def _as_key(entry: list) -> tuple:
    """A key read back from JSON: lists become the tuples `_count_key` makes."""
    name, kind, shape, classes, options = entry
    return (name, kind, tuple(shape), classes, tuple((option, value) for option, value in options))


@functools.lru_cache(maxsize=64)
def _fingerprint(target: str) -> str:
    """A digest of the builder module's source and the installed libraries a count depends on."""
    module = target.partition(":")[0]
    spec = importlib.util.find_spec(module)
    source = Path(spec.origin).read_bytes() if spec and spec.origin else b""
    versions = []
    for distribution in ("torch", "torchvision", "transformers"):
        try:
            versions.append(importlib.metadata.version(distribution))
        except importlib.metadata.PackageNotFoundError:
            versions.append("-")
    return hashlib.sha256(source + " ".join(versions).encode()).hexdigest()[:16]


def check_size(name: str, meta: DatasetMeta, options: dict[str, Any]) -> None:
    """Refuse a model over `DLX_MAX_PARAMS` parameters before any memory is spent on it."""
    count, cap = count_parameters(name, meta, options), settings.max_params()
    if count > cap:
        raise DlxError(f"model_options: {name!r} with {options or 'its defaults'} has {count:,} parameters, "
                       f"more than the {cap:,} allowed (DLX_MAX_PARAMS); use smaller options",
                       field="model_options")


def build_model(name: str, meta: DatasetMeta, **options) -> nn.Module:
    check_model_fits(name, meta.kind)
    options = check_options(name, options)
    check_size(name, meta, options)
    return MODELS[name].builder(meta, **options)
