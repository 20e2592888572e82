"""Where dlx keeps its files and database, read from the environment each time."""
from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import platformdirs

from dlx.errors import DlxError


def home() -> Path:
    """The data directory (`DLX_HOME`, default `default_home()`), created on first use."""
    path = _resolved(os.environ.get("DLX_HOME") or default_home(), os.getcwd())
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_home() -> str:
    """One store per user, wherever a script or the app starts: the platform's user data folder
    (`~/.local/share/dlx` on Linux, following `XDG_DATA_HOME`; `~/Library/Application Support/dlx` on macOS)."""
    return platformdirs.user_data_dir("dlx", appauthor=False)


def uses_default_store() -> bool:
    """Whether neither `DLX_HOME` nor `DLX_DATABASE_URL` chooses the store."""
    return not os.environ.get("DLX_HOME") and not os.environ.get("DLX_DATABASE_URL")


def stray_local_store() -> Path | None:
    """A `./dlx-data` store in the working folder (where dlx wrote by default before it kept one per
    user) that the default store is not: named so its runs are not silently left behind."""
    local = Path("dlx-data").resolve()
    if uses_default_store() and (local / "dlx.sqlite").is_file() and local != home():
        return local
    return None


@functools.lru_cache(maxsize=64)
def _resolved(path: str, cwd: str) -> Path:
    """`path` made absolute with its links resolved, once per setting and working directory (one
    lstat per component: a training run asks for the data directory a dozen times)."""
    return Path(cwd, path).resolve()


def stored_path(relative: str) -> Path:
    """The file a path read back from the database names, which must lie inside the data directory.

    Paths are stored relative to `DLX_HOME`; one that is absolute, climbs out with `..` or leads out
    through a symlink is refused, so a crafted row can never make dlx show or delete a file elsewhere.
    Every path read from the database goes through here, and so does every path logged into it.
    """
    root = home()
    if not isinstance(relative, str) or not relative.strip() or "\x00" in relative:
        raise DlxError(f"path: {relative!r} is not a file path relative to the data directory", field="path")
    path = (root / relative).resolve()
    if not path.is_relative_to(root) or path == root:
        raise DlxError(f"path: {relative!r} leads outside the data directory {root}; dlx only reads "
                       "files stored inside it", field="path")
    return path


def max_params() -> int:
    """The most parameters a model may have (`DLX_MAX_PARAMS`, default 50 million), checked before
    anything is queued so a mistyped width cannot make a job allocate tens of GB."""
    return _count("DLX_MAX_PARAMS", 50_000_000)


def database_url() -> str:
    """`DLX_DATABASE_URL`, or an SQLite file inside the data directory."""
    return os.environ.get("DLX_DATABASE_URL") or f"sqlite:///{home() / 'dlx.sqlite'}"


def datasets_root() -> Path:
    """Where torchvision data sets are looked for (`DLX_DATASETS`, default `<home>/datasets`)."""
    return Path(os.environ.get("DLX_DATASETS", home() / "datasets"))


def cpu_job_slots() -> int:
    """How many CPU jobs a worker runs at once (`DLX_CPU_JOBS`, default 1)."""
    return max(1, _count("DLX_CPU_JOBS", 1))


def standby_processes() -> int:
    """At most how many prewarmed job processes a worker keeps ready (`DLX_PREWARM`, default 2; 0: none).

    Each holds a job's imports (`standby_preload`: 0.5 GB, or 0.9 GB with all of them), so a worker with
    many slots keeps only a few ready.
    """
    return _count("DLX_PREWARM", 2)


def standby_idle() -> int:
    """Seconds a worker keeps standbys with no job and no request (`DLX_STANDBY_IDLE`, default 600)."""
    return _count("DLX_STANDBY_IDLE", 600)


STANDBY_PRELOADS = ("train", "all")


def standby_preload() -> str:
    """What a standby imports before its job exists (`DLX_STANDBY_PRELOAD`): `train` (default) torch and the
    training loop of image and table models, about 0.5 GB; `all` every job kind too (captum, transformers,
    torchvision), about 0.9 GB, so explain and text jobs also start warm. A job imports what is missing."""
    raw = os.environ.get("DLX_STANDBY_PRELOAD", "").strip().lower() or "train"
    if raw not in STANDBY_PRELOADS:
        raise DlxError(f"DLX_STANDBY_PRELOAD: expected one of {', '.join(STANDBY_PRELOADS)}, got {raw!r}",
                       field="DLX_STANDBY_PRELOAD")
    return raw


HEARTBEAT_INTERVAL = 2.0  # seconds between heartbeats of workers and of runs tracked from scripts
DEFAULT_STALE_AFTER = 30.0


def stale_after() -> float:
    """Seconds without a heartbeat after which a job or a script's run is declared dead (`DLX_STALE_AFTER`).

    At least three heartbeat intervals: anything shorter would fail healthy jobs whose beat is
    merely late (a busy database, a paused laptop lid for a moment).
    """
    raw = os.environ.get("DLX_STALE_AFTER", "").strip()
    if not raw:
        return DEFAULT_STALE_AFTER
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise DlxError(f"DLX_STALE_AFTER: expected a number of seconds, got {raw!r}", field="DLX_STALE_AFTER")
    minimum = 3 * HEARTBEAT_INTERVAL
    if value < minimum:
        raise DlxError(f"DLX_STALE_AFTER: {raw} s is too short; heartbeats come every {HEARTBEAT_INTERVAL:g} s, "
                       f"so use at least {minimum:g} s or healthy jobs would be marked failed",
                       field="DLX_STALE_AFTER")
    return value


def upload_max_bytes() -> int:
    """The largest upload (`DLX_UPLOAD_MAX_BYTES`, default 2 GB): Streamlit's `server.maxUploadSize` and the cap
    of `dlx ui`'s login gate on a request body are set from it, so nothing larger reaches the app's memory."""
    value = _count("DLX_UPLOAD_MAX_BYTES", 2 * 1024**3)
    if value == 0:
        raise DlxError("DLX_UPLOAD_MAX_BYTES: expected a whole number above 0, got '0'", field="DLX_UPLOAD_MAX_BYTES")
    return value


def _count(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip() or str(default)
    if not raw.isdigit():
        raise DlxError(f"{variable}: expected a whole number (0 or more), got {raw!r}", field=variable)
    return int(raw)


def run_dir(run_id: int) -> Path:
    """The folder of one run's files (checkpoints, explanations)."""
    path = home() / "runs" / str(run_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def logs_dir() -> Path:
    path = home() / "logs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def autostart_worker() -> bool:
    """Whether the app starts a worker when none is alive (`DLX_AUTOSTART_WORKER`, default on).

    Turn it off where workers run elsewhere (another machine, a Ray cluster) or in tests.
    """
    return os.environ.get("DLX_AUTOSTART_WORKER", "1").strip().lower() not in {"0", "false", "no", "off"}


def ray_address() -> str:
    """The Ray cluster the `ray` executor submits jobs to (`DLX_RAY_ADDRESS`: `host:port` of the head, or
    `auto`). Required: without it Ray would silently start a private cluster on this machine."""
    address = os.environ.get("DLX_RAY_ADDRESS", "").strip()
    if not address:
        raise DlxError("DLX_RAY_ADDRESS: the ray executor needs the address of a running Ray cluster, e.g. "
                       "127.0.0.1:6379 from `ray start --head` (or auto to find one started on this machine)",
                       field="DLX_RAY_ADDRESS")
    return address


def exposed() -> bool:
    """Whether the app listens beyond this machine (`DLX_EXPOSED=1`, set by `dlx ui --host` for a
    non-loopback address): then nothing on the server's disk is offered unless a setting allows it."""
    return os.environ.get("DLX_EXPOSED", "").strip().lower() in {"1", "true", "yes", "on"}


def data_roots() -> list[Path]:
    """The folders under which a server folder may be registered as a data set (`DLX_DATA_ROOTS`,
    absolute paths separated by `:`), resolved with their links followed.

    Unset: the user's home folder on this machine only, and none at all when the app is exposed
    (`exposed()`), so an app on the network reads no server folder unless its owner says which.
    """
    raw = os.environ.get("DLX_DATA_ROOTS", "").strip()
    if not raw:
        return [] if exposed() else [Path.home().resolve()]
    roots = []
    for part in (p.strip() for p in raw.split(":")):
        if not part:
            continue
        path = Path(part).expanduser()
        if not path.is_absolute():
            raise DlxError(f"DLX_DATA_ROOTS: {part!r} is not an absolute path; list absolute folders "
                           "separated by ':'", field="DLX_DATA_ROOTS")
        roots.append(path.resolve())
    return list(dict.fromkeys(roots))


def folder_scan_seconds() -> int:
    """The longest a server folder's check may take before it is refused (`DLX_FOLDER_SCAN_SECONDS`,
    default 300): the page waits for it, so a folder far bigger than meant must not hold it for long."""
    return max(1, _count("DLX_FOLDER_SCAN_SECONDS", 300))
