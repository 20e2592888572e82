"""Data sets: import the registry from here; importing registers every built-in entry."""
# The order of these imports is the order the Launch page lists the data sets in.
# isort: off
from dlx.data import sklearn_sets, torchvision_sets  # noqa: F401  (registers entries)
from dlx.data import patterns, text_sentiment  # noqa: F401  (generated, listed after the real data sets)
from dlx.data import user_sets  # noqa: F401  (users' own sets, from the database)
# isort: on
from dlx.data.registry import DATASETS, DataBundle, DatasetMeta, Split, load_dataset, register_dataset

__all__ = ["DATASETS", "DataBundle", "DatasetMeta", "Split", "load_dataset", "register_dataset"]
