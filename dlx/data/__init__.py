"""Data sets: import the registry from here; importing registers every built-in entry."""
from dlx.data import sklearn_sets, torchvision_sets  # noqa: F401  (registers entries)
from dlx.data import patterns, text_sentiment  # noqa: F401,I001  (generated, listed after the real data sets)
from dlx.data import user_sets  # noqa: F401,I001  (users' own sets, from the database)
from dlx.data.registry import DATASETS, DataBundle, DatasetMeta, Split, load_dataset, register_dataset

__all__ = ["DATASETS", "DataBundle", "DatasetMeta", "Split", "load_dataset", "register_dataset"]
