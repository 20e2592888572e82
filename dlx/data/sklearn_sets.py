"""Data sets that ship inside scikit-learn, so dlx works with no network.

scikit-learn is imported by the loaders, not here: listing the registry stays light (issue 18)."""
from __future__ import annotations

from dlx.data.registry import DataBundle, DatasetMeta, register_dataset, split_arrays


@register_dataset("digits", "image", "scikit-learn handwritten digits, 1×8×8, 10 classes, 1,797 images",
                  shape=(1, 8, 8), classes=10, rows=1797)
def digits(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
    from sklearn import datasets as sk

    raw = sk.load_digits()
    x = raw.data.reshape(-1, 1, 8, 8) / 16.0
    meta = DatasetMeta("digits", "image", tuple(str(c) for c in raw.target_names), (1, 8, 8),
                       description="handwritten digits")
    return split_arrays(x, raw.target, meta, seed, val_fraction, test_fraction)


def _table(name: str, loader: str, description: str, features: int, classes: int, rows: int):
    @register_dataset(name, "table", description, shape=(features,), classes=classes, rows=rows)
    def load(seed: int, val_fraction: float, test_fraction: float, download: bool = False) -> DataBundle:
        from sklearn import datasets as sk

        raw = getattr(sk, loader)()
        meta = DatasetMeta(name, "table", tuple(str(c) for c in raw.target_names),
                           (raw.data.shape[1],), tuple(str(f) for f in raw.feature_names),
                           description=description)
        return split_arrays(raw.data, raw.target, meta, seed, val_fraction, test_fraction,
                            standardize=True)

    return load


_table("breast_cancer", "load_breast_cancer",
       "scikit-learn breast cancer (Wisconsin), 30 features, 2 classes, 569 rows", 30, 2, 569)
_table("wine", "load_wine", "scikit-learn wine, 13 features, 3 classes, 178 rows", 13, 3, 178)
_table("iris", "load_iris", "scikit-learn iris, 4 features, 3 classes, 150 rows", 4, 3, 150)
