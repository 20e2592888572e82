"""dlx: launch, watch, compare and explain deep-learning experiments."""
from dlx.errors import DlxError

__all__ = ["DlxError", "Run", "Store", "start_run"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import dlx.settings` (used by db/) does not pull in the store and SQLAlchemy.
    if name in ("Run", "start_run"):
        from dlx import tracking

        return getattr(tracking, name)
    if name == "Store":
        from dlx.store import Store

        return Store
    raise AttributeError(name)
