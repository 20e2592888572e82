"""A search's Optuna study, kept in the store's own database (Optuna's RDB storage on the store's URL).

Optuna's tables (`studies`, `trials`, ...) sit beside dlx's; both use Alembic, and Optuna would read dlx's
`alembic_version` row as its own schema version, so its check is skipped: its tables are created by
itself, at its own head, the first time a search opens the database.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from dlx.errors import DlxError
from dlx.search.spec import SearchSpec

if TYPE_CHECKING:
    import optuna

    from dlx.store import Store

SPEC_ATTR, STARTED_ATTR, STOPPED_ATTR = "dlx_spec", "dlx_started", "dlx_stopped"


def storage(store: Store) -> optuna.storages.RDBStorage:
    """Optuna's storage on the store's database (one per URL and process: it holds an engine)."""
    # optuna: imported by the processes that search, not the server
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    found = _storages.get(store.url)
    if found is None:
        found = _storages[store.url] = optuna.storages.RDBStorage(store.url, skip_compatibility_check=True)
    return found


_storages: dict[str, optuna.storages.RDBStorage] = {}


def sampler(spec: SearchSpec, asked: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler, seeded by the spec's seed and the trials asked so far: the driver loads the study
    afresh each step, and a sampler seeded alike each time would propose the same trial again."""
    import optuna

    seed = (spec.seed + 7919 * asked) % 2**32

    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        grid = {name: d.grid() for name, d in spec.dimensions().items()}
        return optuna.samplers.GridSampler(grid, seed=spec.seed)
    if spec.sampler == "cmaes":
        try:
            import cmaes  # noqa: F401  (Optuna's CMA-ES runs on it)
        except ImportError:
            raise DlxError("sampler: CMA-ES needs the cmaes package, which is not installed "
                           "(pip install cmaes); use tpe or random", field="sampler") from None
        return optuna.samplers.CmaEsSampler(seed=seed)
    if len(spec.objectives) > 1:
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, (spec.budget() or 20) // 3)))


def pruner(spec: SearchSpec) -> optuna.pruners.BasePruner:
    import optuna

    epochs = int(spec.base.get("epochs", 1))
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 2), reduction_factor=3)
    return optuna.pruners.NopPruner()


def create(store: Store, name: str, spec: SearchSpec) -> optuna.Study:
    """A new study named `name` holding its spec; a DlxError if the name is taken."""
    import optuna

    try:
        study = optuna.create_study(storage=storage(store), study_name=name, directions=spec.directions,
                                    sampler=sampler(spec), pruner=pruner(spec))
    except optuna.exceptions.DuplicatedStudyError:
        raise DlxError(f"name: a search named {name!r} exists already; choose another name", field="name") from None
    study.set_user_attr(SPEC_ATTR, spec.model_dump(mode="json"))
    study.set_user_attr(STARTED_ATTR, time.time())
    return study


def load(store: Store, name: str) -> tuple[optuna.Study, SearchSpec]:
    """The study and its spec, with the spec's sampler and pruner."""
    import optuna

    rdb = storage(store)
    try:
        attrs = rdb.get_study_user_attrs(rdb.get_study_id_from_name(name))
    except KeyError:
        raise DlxError(f"study: there is no search named {name!r}", field="study") from None
    if SPEC_ATTR not in attrs:
        raise DlxError(f"study: the Optuna study {name!r} was not made by a dlx search", field="study")
    spec = SearchSpec(**attrs[SPEC_ATTR])
    asked = len(rdb.get_all_trials(rdb.get_study_id_from_name(name), deepcopy=False))
    study = optuna.load_study(study_name=name, storage=rdb, sampler=sampler(spec, asked), pruner=pruner(spec))
    return study, spec


def teller(store: Store, name: str) -> optuna.Study:
    """The study for telling results only: a sampler with nothing to do after a trial. The grid sampler
    calls `study.stop()` after the last point's trial, which Optuna allows inside `optimize` alone."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage(store), sampler=optuna.samplers.RandomSampler())


def set_attr(store: Store, name: str, key: str, value: object) -> None:
    """Set one of a study's attributes (stopped, the spec when extended) without loading its sampler."""
    rdb = storage(store)
    rdb.set_study_user_attr(rdb.get_study_id_from_name(name), key, value)


def names(store: Store) -> list[str]:
    """Every search's study name, newest first."""
    studies = storage(store).get_all_studies()
    return [s.study_name for s in sorted(studies, key=lambda s: s._study_id, reverse=True) if SPEC_ATTR in s.user_attrs]
