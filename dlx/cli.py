"""The `dlx` command: ui, worker, run, runs, cancel, delete, db upgrade, export, report, sanity, influence."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Only light modules here: `dlx --help` and every command's parsing run before any of them is chosen.
# The store (SQLAlchemy), the worker and the views are imported by the commands that use them.
from dlx import settings
from dlx.errors import DlxError
from dlx.gate import auth
from dlx.gate.auth import WILDCARDS
from dlx.jobs import ensure_worker, status
from dlx.jobs.supervisor import stop_with, stop_workers, worker_pids
from dlx.states import FINAL_STATES
from dlx.store.run_info import COUNT_BOUND  # `dlx runs` counts the matching runs up to it, then says "10,000+"

if TYPE_CHECKING:
    from dlx.store import RunInfo, Store

RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled", "pruned")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlx", description="Launch, watch, compare and explain "
                                     "deep-learning experiments.")
    sub = parser.add_subparsers(dest="command", required=True)

    ui = sub.add_parser("ui", help="start the web app (and a worker, stopped with it)")
    ui.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1: this machine only); any other address "
                    "requires DLX_PASSWORD or DLX_TOKEN, or a token generated and printed in the URL")
    ui.add_argument("--port", type=int, default=8501)
    ui.add_argument("--dev", action="store_true", help="reload on source changes and log Streamlit's messages")

    worker = sub.add_parser("worker", help="run queued jobs until stopped")
    worker.add_argument("--cpu-jobs", type=int, default=None, help="CPU jobs at once (DLX_CPU_JOBS)")
    worker.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")
    worker.add_argument("--stop", action="store_true",
                        help="stop this store's running workers on this machine (their jobs end with them)")
    worker.add_argument("--stop-with", type=int, default=None, metavar="PID",
                        help="stop when process PID, this worker's parent, ends (how the app starts its worker)")

    importer = sub.add_parser("import", help="bring in runs from another tracker (a second import adds nothing)")
    source = importer.add_subparsers(dest="source", required=True)
    source.add_parser("mlflow", help="experiments, runs, params, tags and metric histories of an MLflow store"
                      ).add_argument("uri", help="an mlruns folder (file store) or MLflow's database URL: sqlite:///PATH, "
                                             "postgresql+psycopg://..., mysql+pymysql://...")
    source.add_parser("tensorboard", help="the scalars of every run folder under LOGDIR (one run per folder)"
                      ).add_argument("logdir", help="the folder TensorBoard's --logdir would read")

    run = sub.add_parser("run", help="submit a training job")
    run.add_argument("--dataset", default="digits")
    run.add_argument("--model", default=None,
                     help="default: cnn where it fits the data set, else the first model that does")
    run.add_argument("--epochs", default=None, help="one number, or several separated by commas")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="any other config field, e.g. --set lr=0.01 --set optimizer=sgd; several "
                     "comma-separated values sweep, as in the form (--set lr=1e-3,3e-3 --set seed=0,1); "
                     "unset fields take the Launch page's defaults for the data set and model")
    run.add_argument("--wait", action="store_true", help="wait for the run and print its final metrics")
    run.add_argument("--no-worker", action="store_true", help="do not start a worker if none is alive")

    runs = sub.add_parser("runs", help="list runs")
    runs.add_argument("--json", action="store_true")
    runs.add_argument("--status", action="append", default=None, choices=RUN_STATUSES,
                      help="only runs in this state (repeat for several)")
    runs.add_argument("--filter", default=None, metavar="EXPR",
                      help="an expression over run fields, params and final metrics, e.g. "
                      "'lr < 0.01 and val_acc > 0.9' or 'status = \"failed\" or model in (\"cnn\", \"mlp\")'")
    runs.add_argument("--sort", default=None, metavar="KEY",
                      help="a run field, param or metric (its final value); ascending unless --desc")
    runs.add_argument("--desc", action="store_true", help="sort descending")
    runs.add_argument("--limit", type=int, default=500, help="at most this many runs (default 500)")
    runs.add_argument("--offset", type=int, default=0, help="skip this many runs first (paging)")

    cancel = sub.add_parser("cancel", help="cancel a run (a job's, or end a script's run)")
    cancel.add_argument("run", type=int)

    remove = sub.add_parser("delete", help="delete a run, its metrics and its files (stopping it first)")
    remove.add_argument("run", type=int)
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])

    export = sub.add_parser("export", help="write a run's metrics as CSV or JSON")
    export.add_argument("run", type=int)
    export.add_argument("--format", choices=["csv", "json"], default="csv")

    report = sub.add_parser("report", help="write a run as one self-contained HTML file (opens offline)")
    report.add_argument("run", type=int)
    report.add_argument("-o", "--output", type=Path, default=None, help="the file to write (default run-<id>.html)")
    sanity = sub.add_parser("sanity", help="sanity-check a run's attribution methods against randomised models "
                            "(Adebayo et al. 2018), as a worker job, and wait for it")
    sanity.add_argument("run", type=int)
    sanity.add_argument("--methods", default=None, help="comma-separated methods (default: every method that "
                        "applies to the run's model)")
    sanity.add_argument("--samples", type=int, default=32, help="test samples, a seeded random draw (default 32)")
    sanity.add_argument("--against", type=int, default=None, metavar="RUN",
                        help="also compare with this run of the same data trained with label_permutation=true "
                        "(data randomisation)")
    sanity.add_argument("--seed", type=int, default=0, help="seed of the samples' draw and the random weights")
    sanity.add_argument("--json", action="store_true", help='print {"methods": {name: {"spearman": ..., '
                        '"ssim": ..., "passed": ..., "curve": [...]}}}')
    sanity.add_argument("--no-worker", action="store_true", help="do not start a worker if none is alive")
    influence = sub.add_parser("influence", help="training-data attribution (TracIn) over a run's kept checkpoints, "
                               "as a worker job, and wait for it")
    influence.add_argument("run", type=int)
    wanted = influence.add_mutually_exclusive_group(required=True)
    wanted.add_argument("--self", action="store_true", dest="self_influence",
                        help="rank the training set by self-influence (likely mislabelled or atypical first)")
    wanted.add_argument("--sample", type=int, default=None, metavar="I",
                        help="the proponents and opponents of test sample I")
    influence.add_argument("--top", type=int, default=10, metavar="K", help="proponents and opponents shown (default 10)")
    influence.add_argument("--layers", default=None, help="comma-separated layers for full TracInCP (default: "
                           "TracInCPFast on the final layer)")
    influence.add_argument("--json", action="store_true", help='--self: print {"ranking": [...], "flipped": [...]}; '
                           '--sample: {"sample", "target", "label", "proponents": [{"index", "label", "score"}], '
                           '"opponents": [...]}')
    influence.add_argument("--no-worker", action="store_true", help="do not start a worker if none is alive")

    search = sub.add_parser("search", help="a search: trials an Optuna study proposes, run as ordinary runs")
    search.add_argument("--dataset", default="digits")
    search.add_argument("--model", default=None, help="default: as for dlx run")
    search.add_argument("--param", action="append", default=[], metavar="NAME=SPEC",
                        help="a parameter and its space: values (lr=1e-3,3e-3), float:LOW:HIGH, log:LOW:HIGH, "
                        "int:LOW:HIGH or choice:a,b,c; repeat for each")
    search.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a fixed config field for every trial, e.g. --set epochs=2")
    search.add_argument("--trials", type=int, default=None, help="the trial budget (grid: default its size)")
    search.add_argument("--timeout", type=float, default=None, metavar="MINUTES", help="a time budget")
    search.add_argument("--objective", default="val_acc",
                        help="a metric the runs log (several, comma-separated: multi-objective)")
    search.add_argument("--direction", default="maximize", help="maximize or minimize (one per objective)")
    search.add_argument("--sampler", choices=["tpe", "random", "grid", "cmaes"], default="tpe")
    search.add_argument("--pruner", choices=["none", "median", "hyperband"], default="none")
    search.add_argument("--parallel", type=int, default=1, metavar="K", help="trials at once (default 1)")
    search.add_argument("--name", default=None, help="the study's name (default: search-DATASET-MODEL-time)")
    search.add_argument("--wait", action="store_true", help="wait for the search to end and print its trials")
    search.add_argument("--json", action="store_true", help='wait, then print {"study": NAME, "best": '
                        '{"run", "value", "params"}, "trials": [{"run", "number", "state", "value"}, ...]}')
    search.add_argument("--no-worker", action="store_true", help="do not start a worker if none is alive")

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DlxError as err:
        sys.stdout.flush()  # what was printed comes first; the error has a line of its own
        print(f"error: {err}", file=sys.stderr)
        return 2


def cmd_ui(args) -> int:
    """Run the app until Ctrl-C (or SIGTERM); the worker it started stops with it.

    Where a secret is required (any address but loopback, or DLX_PASSWORD / DLX_TOKEN set), Streamlit
    listens on a free port of 127.0.0.1 and dlx.gate.proxy's login gate, in this process, on the address
    asked for. Elsewhere Streamlit replaces this process (exec): no launcher is left holding memory.
    """


    secrets = auth.secrets_for(args.host)  # refuses an exposed address without a secret, before anything starts
    upload_mb = math.ceil(settings.upload_max_bytes() / 2**20)  # Streamlit counts whole MB
    gate = None
    app_host, app_port = args.host, args.port
    if secrets.required:
        from dlx.gate import proxy as login_gate  # starlette and uvicorn: only an app behind the gate

        listening = login_gate.bind(args.host, args.port)  # the port is ours before anything starts
        app_host, app_port = "127.0.0.1", _free_loopback_port()
        gate = login_gate.GateServer(listening, login_gate.Gate(
            secrets, app_port, args.port, body_max=upload_mb * 2**20 + login_gate.MULTIPART_OVERHEAD))
    # The app behind the gate never sees the secret: a Streamlit process that does was not started here.
    env = {k: v for k, v in os.environ.items() if k not in (auth.PASSWORD_VARIABLE, auth.TOKEN_VARIABLE)}
    if not auth.is_loopback(args.host):
        env["DLX_EXPOSED"] = "1"
    app = Path(__file__).resolve().parent.parent / "streamlit_app.py"
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", app_host,
               "--server.port", str(app_port), "--server.headless", "true",
               "--server.maxUploadSize", str(upload_mb),
               "--server.fileWatcherType", "auto" if args.dev else "none",  # watching .venv floods inotify
               "--server.runOnSave", "true" if args.dev else "false",
               "--logger.level", "info" if args.dev else "warning", "--logger.hideWelcomeMessage", "true",
               "--client.toolbarMode", "viewer", "--browser.gatherUsageStats", "false"]
    print(store_notice(), file=sys.stderr, flush=True)
    owned: list[int] = []
    if settings.autostart_worker():
        from dlx.store import StoreError  # SQLAlchemy: only once a store is opened
        try:
            started = ensure_worker(default_store(), stop_with_parent=True)  # warms up while the browser opens
            owned = [started.pid] if started.pid else []
        except StoreError:
            pass  # the app names the database it cannot open, on its first page
    line = (f"dlx: {auth.app_url(args.host, args.port, secrets.token)}  (Ctrl-C stops the app"
            + (" and its worker)" if owned else ")"))
    if gate is None:  # nothing left to do here: the app takes this process over (its worker stops with it)
        _announce_when_serving(line, app_host, app_port)
        os.execve(sys.executable, command, env)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    process = subprocess.Popen(command, env=env)
    interrupted = False  # a Ctrl-C reaches the app too (same process group): give it time to stop alone
    try:
        if _serving(lambda: process.poll() is None, app_host, app_port):
            gate.start()
            print(line, flush=True)
        return process.wait()
    except KeyboardInterrupt:
        interrupted = True
        return 0
    except SystemExit:
        return 0
    finally:
        if gate is not None:
            gate.stop()
        _stop_app(process, grace=10 if interrupted else 0)
        stop_workers(owned)


def _free_loopback_port() -> int:
    """A port of 127.0.0.1 nobody listens on now, for the app behind the gate."""

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _exit_on_signal(signum, frame) -> None:
    raise SystemExit(128 + signum)


def _announce_when_serving(line: str, host: str, port: int) -> None:
    """Print `line` once the app this process is about to become answers, from a grandchild (a double fork:
    nobody has to reap it) that ends with the line, or silently when the app exits first."""
    app = os.getpid()
    sys.stdout.flush()
    child = os.fork()
    if child:
        os.waitpid(child, 0)
        return
    try:
        if os.fork() == 0:
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a Ctrl-C before the line ends it quietly
            if _serving(lambda: _alive(app), host, port):
                print(line, flush=True)
    finally:
        os._exit(0)  # never back into the launcher's code


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _serving(running: Callable[[], bool], host: str, port: int) -> bool:
    """Wait until the app answers its health check (False if it exited first, e.g. the port was taken)."""
    import urllib.request  # http.client and email: only `dlx ui` asks

    local = "127.0.0.1" if host.strip() in WILDCARDS else host.strip("[]")
    url = f"http://{f'[{local}]' if ':' in local else local}:{port}/_stcore/health"
    while running():
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _stop_app(process, grace: float) -> None:
    """Let the app end within `grace` seconds on its own, then SIGTERM it, then SIGKILL it."""

    for stop in (None, lambda: process.send_signal(signal.SIGTERM), process.kill):
        if stop is not None:
            stop()
        try:
            process.wait(grace if stop is None else 15)
            return
        except subprocess.TimeoutExpired:
            continue
    process.wait()


def default_store() -> Store:
    """The configured store (dlx.store and SQLAlchemy imported only by the commands that open it)."""
    from dlx.store import default_store as configured

    return configured()


def database_label() -> str:
    """The store's URL as shown to users, any password hidden."""
    from db.urls import database_label as label

    return label()


def store_notice() -> str:
    """The line naming the store in use (and a `./dlx-data` store left in this folder)."""
    from db.urls import store_notice as notice

    return notice()


def cmd_worker(args) -> int:
    if args.stop:
        pids = worker_pids(default_store())
        if not pids:
            print(f"no worker is running for store {database_label()}")
            return 0
        killed = stop_workers(pids)
        for pid in pids:
            print(f"stopped worker {pid}" + (" (killed: it did not stop in time)" if pid in killed else ""))
        return 0
    if args.stop_with is not None:
        stop_with(args.stop_with)

    from dlx.jobs.worker import Worker  # the executors and the job kinds: only a worker runs them

    store = default_store()  # the schema brought up to date before the first claim
    Worker(cpu_slots=args.cpu_jobs or settings.cpu_job_slots(), store=store).serve(idle_exit=args.idle_exit)
    return 0


def _key_values(items: list[str]) -> dict[str, str]:
    """`--set KEY=VALUE` items (`dlx run`, `dlx search`); one without `=` is refused by name."""
    found: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise DlxError(f"--set: {item!r} is not KEY=VALUE", field="set")
        found[key.strip()] = value
    return found


def cmd_run(args) -> int:
    from dlx.data import user_sets  # the data sets' registry and the form's defaults: only to launch
    from dlx.views import launch

    user_sets.list_in_registry(default_store)  # launching reads the registry: users' sets of this store
    store = default_store()
    model = args.model or launch.default_model(args.dataset)
    settings = _key_values(args.set)
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    form = launch.form_from_text(args.dataset, model, settings)
    sweep = form.pop("sweep", None)
    planned = launch.plan(store, form, name=launch.config_key)
    run_ids = launch.submit_plan(store, planned, sweep)
    first = _existing(store, run_ids[0])
    if len(run_ids) == 1:
        print(f"queued run {first.id} (job {first.job_id}): {first.dataset}/{first.model}", flush=True)
    else:
        print(f"queued sweep {first.sweep}: runs {run_ids[0]}-{run_ids[-1]} ({planned.count} runs: "
              f"{planned.describe()})", flush=True)
    spawned = None if args.no_worker else ensure_worker(store).pid
    if not args.wait:
        return 0
    # a list: wait for every run, even after a failure
    return max([_wait(store, run_id, spawned) for run_id in run_ids])


def _existing(store: Store, run_id: int) -> RunInfo:
    run = store.get_run(run_id)
    if run is None:
        raise DlxError(f"run: run {run_id} no longer exists (deleted meanwhile?)", field="run")
    return run


def _wait(store: Store, run_id: int, spawned: int | None = None) -> int:
    """Print the run's states until it ends; refuse to wait on if the worker `spawned` for it ended
    while it was still queued and no other worker is alive (it would wait for ever)."""

    last_status = None
    while True:
        run = _existing(store, run_id)
        if run.status != last_status:
            print(f"run {run_id}: {run.status}", flush=True)
            last_status = run.status
        if run.status in FINAL_STATES:
            break
        if run.status == "queued" and spawned is not None and _ended(spawned):
            _no_worker_left(store, run_id)
            spawned = None
        time.sleep(0.5)
    finals = {k: v for k, v in run.summary.items() if k in ("test_acc", "test_loss", "val_acc",
                                                            "val_loss", "best_epoch", "epochs_run")}
    print(json.dumps({"run": run_id, "status": run.status, "error": run.error, **finals}, indent=2))
    return 0 if run.status == "succeeded" else 1


def _ended(pid: int) -> bool:
    """Whether our child `pid` has exited (reaped here, so that it does not linger as a zombie)."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True


def _no_worker_left(store: Store, run_id: int) -> None:
    """Raise, quoting the worker's log, unless another worker is alive to run the queued run."""

    if status(store).state != "down":
        return
    log = settings.logs_dir() / "worker.log"
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    said = f"; its log ({log}) ends: {lines[-1]}" if lines else ""
    raise DlxError(f"run {run_id}: the worker started for it has stopped and no other is running, so it "
                   f"stays queued{said}", field="worker")


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """A read-only command's database failures (a damaged, unreadable or not-a-database file, a full
    disk) as one line naming the store, not a traceback."""
    try:
        yield
    except Exception as err:
        from dlx.store import StoreError, unreadable  # SQLAlchemy: only once something failed

        if isinstance(err, (StoreError, OSError)):
            raise unreadable(err) from err
        raise


def cmd_runs(args) -> int:
    with _reading():
        return _list_runs(args)


def _list_runs(args) -> int:
    from dlx.store.plain import newest_runs
    from dlx.store.run_info import decode_param

    # The newest runs of a SQLite store in plain SQL, without importing SQLAlchemy (0.2 s); else the Store.
    plain = None if args.filter or args.sort else newest_runs(settings.database_url(), args.status, args.limit,
                                                               args.offset, COUNT_BOUND)
    if plain is not None:
        runs, total = plain
    else:
        store = default_store()
        store.reap_stale_for_reading()  # runs whose process died are shown failed, not running (if it can write)
        chosen = dict(status=args.status, filter=args.filter)
        runs = store.list_runs(**chosen, sort=args.sort, descending=args.desc if args.sort else True,
                               limit=args.limit, offset=args.offset)
        total = store.count_runs(**chosen, bound=COUNT_BOUND)  # counting stops past it: "10,000+"
    total_text = f"{COUNT_BOUND:,}+" if total > COUNT_BOUND else str(total)
    rows: list[dict[str, Any]] = [{"id": r.id, "status": r.status, "dataset": r.dataset, "model": r.model,
             "sweep": r.sweep, "params": {k: decode_param(v) for k, v in r.params.items()},
             "test_acc": r.metrics.get("test_acc", r.summary.get("test_acc")),
             "val_acc": r.metrics.get("val_acc", r.summary.get("val_acc")), "metrics": r.metrics,
             "error": r.error, "created_at": r.created_at.isoformat()} for r in runs]
    print(store_notice(), file=sys.stderr)  # which store was read, off the output a script parses
    shown = (f"runs {args.offset + 1}-{args.offset + len(rows)} of {total_text}" if rows
             else f"no runs here ({total_text} match)")
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(shown)
    extra = args.sort if args.sort and args.sort not in TABLE_COLUMNS else None  # the order shown, not guessed
    cells = [_cell(sorted_value(run, extra)) for run in runs] if extra else []
    width = max([len(extra or ""), *map(len, cells)])
    print(f"{'id':>5}  {'status':<10} {'dataset':<14} {'model':<9} {'test_acc':>8}  "
          + (f"{extra:>{width}}  " if extra else "") + "params")
    for i, r in enumerate(rows):
        acc = "" if r["test_acc"] is None else f"{r['test_acc']:.4f}"
        keys = ("lr", "epochs", "batch_size", "optimizer")
        params = " ".join(f"{k}={r['params'][k]}" for k in keys if k in r["params"])
        print(f"{r['id']:>5}  {r['status']:<10} {r['dataset'] or '':<14} {r['model'] or '':<9} {acc:>8}  "
              + (f"{cells[i]:>{width}}  " if extra else "") + params)
    return 0


TABLE_COLUMNS = {"id", "status", "dataset", "model", "test_acc"}  # what `dlx runs` always shows
RUN_FIELDS = {"id": "id", "name": "name", "status": "status", "dataset": "dataset", "model": "model",
              "sweep": "sweep", "device": "device", "experiment": "experiment", "created": "created_at",
              "started": "started_at", "ended": "ended_at"}  # dlx.store.query's run columns


def sorted_value(run: RunInfo, key: str) -> Any:
    """The value `--sort KEY` orders a run by, the name read as the store reads it: a run field, then
    `param.`/`metric.`/`tag.` KEY, then a parameter, then a final metric."""
    from dlx.store import decode_param

    if key in RUN_FIELDS:
        return getattr(run, RUN_FIELDS[key])
    prefix, dot, rest = key.partition(".")
    if dot and rest and prefix in ("param", "metric", "tag"):
        sources: dict[str, dict[str, Any]] = {"param": run.params, "metric": run.metrics, "tag": run.tags}
        value = sources[prefix].get(rest)
        return decode_param(value) if prefix == "param" and value is not None else value
    if key in run.params:
        return decode_param(run.params[key])
    return run.metrics.get(key)


def _cell(value: Any) -> str:
    """A value in the runs table: blank if missing, numbers short, times to the second."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return str(value)


def cmd_cancel(args) -> int:

    print(f"run {args.run}: {default_store().queue.cancel_run(args.run)}")
    return 0


def cmd_delete(args) -> int:

    store = default_store()
    run = store.get_run(args.run)
    if run is None:
        raise DlxError(f"run: there is no run #{args.run}", field="run")
    if not args.yes:
        note = " It is still active: it is stopped first." if run.status not in FINAL_STATES else ""
        try:
            answer = input(f"Delete run {run.label} ({run.status}), its metrics and its files?{note} [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("kept it (pass --yes to delete without asking)")
            return 1
    if run.status not in FINAL_STATES:
        print(f"stopping run {run.id} first...", flush=True)
    store.delete_run(run.id)
    print(f"deleted run {run.id}")
    return 0


def cmd_db(args) -> int:

    default_store()  # built on the engine, which upgrades the schema on first use
    print("database is at the latest revision")
    return 0


def cmd_export(args) -> int:
    with _reading():
        return _export(args)


def _export(args) -> int:
    from dlx.data import csv_cells

    store = default_store()
    if store.get_run(args.run) is None:
        raise DlxError(f"run: there is no run #{args.run}", field="run")
    histories = {key: store.metric_history(args.run, key) for key in store.metric_keys(args.run)}
    if args.format == "json":
        # JSON has no NaN or Infinity: a diverged loss is written as null, never as invalid JSON.
        print(json.dumps({key: {"step": h.steps.tolist(),
                                "value": [v if math.isfinite(v) else None for v in h.values.tolist()]}
                          for key, h in histories.items()}, allow_nan=False))
        return 0
    writer = csv_cells.writer(sys.stdout)  # a key like =HYPERLINK(...) is written '=HYPERLINK(...)
    writer.writerow(["key", "step", "value", "time"])
    for key, h in histories.items():
        writer.writerows((key, int(s), float(v), float(t)) for s, v, t in zip(h.steps, h.values, h.times))
    return 0


def cmd_report(args) -> int:
    from dlx.views.report import report_html  # Plotly: only the command that draws

    output = args.output or Path(f"run-{args.run}.html")
    with _reading():
        text = report_html(default_store(), args.run)
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as err:
        raise DlxError(f"output: cannot write {output}: {err.strerror}", field="output") from None
    print(f"wrote {output} ({len(text.encode()) / 1e6:.1f} MB)")
    return 0


def _job(store: Store, job_id: int, what: str = "sanity"):
    job = store.queue.get_job(job_id)
    if job is None:
        raise DlxError(f"{what}: job {job_id} was deleted (its run with it?)", field=what)
    return job


def _wait_for_job(store: Store, job_id: int, out, no_worker: bool, what: str):
    """Print a job's status and progress as they change until it ends (starting a worker unless told not to)."""
    spawned = None if no_worker else ensure_worker(store).pid
    shown = None
    while (job := _job(store, job_id, what)).status not in FINAL_STATES:
        if (job.status, round(job.progress, 1)) != shown:
            shown = (job.status, round(job.progress, 1))
            print(f"job {job_id}: {job.status} {job.progress:.0%}", file=out, flush=True)
        if job.status == "queued" and spawned is not None and _ended(spawned):
            spawned = None
            if status(store).state == "down":
                raise DlxError(f"{what}: the worker started for job {job_id} has stopped and no other is "
                               "running, so it stays queued", field="worker")
        time.sleep(0.5)
    return job


def cmd_sanity(args) -> int:
    # torch and captum: only this command loads a model here
    from dlx.explain.jobs import parse_sanity_task, sanity_result, submit_task
    from dlx.explain.methods import available_methods
    from dlx.explain.models_cache import get_loaded_run
    from dlx.jobs.failures import failure_reason

    store = default_store()
    loaded = get_loaded_run(store, args.run)
    methods = ([m.strip() for m in args.methods.split(",") if m.strip()] if args.methods
               else available_methods(loaded.model, loaded.meta.kind))
    task = parse_sanity_task({"run_id": args.run, "methods": methods, "n_samples": args.samples,
                              "against": args.against, "seed": args.seed})
    result = sanity_result(loaded, task)
    if result is None:
        job_id = submit_task(store, task)
        out = sys.stderr if args.json else sys.stdout
        print(f"queued sanity job {job_id}: {', '.join(task.methods)} on {task.n_samples} samples of run "
              f"{args.run}", file=out, flush=True)
        job = _wait_for_job(store, job_id, out, args.no_worker, "sanity")
        if job.status != "succeeded":
            raise DlxError(f"sanity: job {job_id} {job.status}: {failure_reason(job)}", field="sanity")
        result = sanity_result(loaded, task)
        if result is None:
            raise DlxError(f"sanity: job {job_id} succeeded but its result is not stored under run {args.run}'s "
                           "current checkpoint (was the run retrained meanwhile?); run the command again",
                           field="sanity")
    if args.json:
        print(json.dumps({"methods": result["methods"]}, indent=2))
        return 0
    print(f"run {args.run}: {result['samples']} samples, layers randomised from {result['layers'][-1]} down "
          f"to {result['layers'][0]}; {result['interval']}")
    print(f"{'method':<22} {'spearman |map| [95%]':>24} {'spearman':>8} {'ssim':>6} {'hog':>6}  verdict")
    for name, entry in result["methods"].items():
        low, high = entry["spearman_ci"]
        extra = "  ".join(f"{entry[k]:>6.3f}" if entry[k] is not None else f"{'-':>6}" for k in ("ssim", "hog"))
        print(f"{name:<22} {entry['spearman']:>7.3f} [{low:.3f}, {high:.3f}] {entry['spearman_signed']:>8.3f} "
              f"{extra}  {'passed' if entry['passed'] else 'FAILED'}")
    print(f"a method fails when the Spearman correlation of absolute maps after randomising every layer is "
          f"above {result['threshold']}")
    return 0


def cmd_influence(args) -> int:
    # torch and captum: only this command computes influence here
    from dlx.explain.influence import (
        InfluenceTask,
        missing_parts,
        noise_recall,
        stored_sample_influence,
        stored_self_influence,
        submit_task,
    )
    from dlx.jobs.failures import failure_reason
    from dlx.training.label_noise import recorded_label_noise

    store = default_store()
    if args.top < 1:
        raise DlxError("top: show at least one proponent (--top 1 or more)", field="top")
    layers = [name.strip() for name in (args.layers or "").split(",") if name.strip()]
    task = InfluenceTask(run_id=args.run, indices=[] if args.self_influence else [args.sample], layers=layers,
                         self_influence=True)
    if missing_parts(store, task) is not None:
        job_id = submit_task(store, task)
        out = sys.stderr if args.json else sys.stdout
        print(f"queued influence job {job_id} on run {args.run}", file=out, flush=True)
        job = _wait_for_job(store, job_id, out, args.no_worker, "influence")
        if job.status != "succeeded":
            raise DlxError(f"influence: job {job_id} {job.status}: {failure_reason(job)}", field="influence")
    found = stored_self_influence(store, args.run, layers)
    if found is None:
        raise DlxError(f"influence: the job succeeded but its result is not stored under run {args.run}'s current "
                       "checkpoints (was the run retrained meanwhile?); run the command again", field="influence")
    noise = recorded_label_noise(store, args.run)
    flipped = noise.indices if noise else []
    if args.self_influence:
        ranking = found.ranking
        if args.json:
            print(json.dumps({"ranking": ranking, "flipped": flipped}))
            return 0
        print(f"run {args.run}: {len(ranking)} training examples by self-influence over {len(found.names)} "
              f"checkpoints ({', '.join(found.layers)})")
        for place, i in enumerate(ranking[:args.top], 1):
            mark = "  flipped" if i in set(flipped) else ""
            print(f"{place:>4}. training example {i:<6} label {int(found.labels[i]):<4} {found.scores[i]:.4g}{mark}")
        if flipped:
            scored = noise_recall(ranking, flipped)
            recall = ", ".join(f"top {share:.0%}: {value:.2f}" for share, value in scored["recall"].items())
            print(f"planted noise ({len(flipped)} flipped): recall {recall}; AUPRC {scored['auprc']:.3f} "
                  f"(random: {scored['random']['auprc']:.3f})")
        return 0
    sample = stored_sample_influence(store, args.run, args.sample, "test", layers)
    assert sample is not None  # stored with the self-influence by the same job
    rows = {side: [{"index": i, "label": int(found.labels[i]), "score": score}
                   for i, score in sample.top(args.top, side == "proponents")]
            for side in ("proponents", "opponents")}
    if args.json:
        print(json.dumps({"sample": args.sample, "target": sample.target, "label": sample.label, **rows}))
        return 0
    print(f"run {args.run}, test sample {args.sample} (label {sample.label}, predicted {sample.target})")
    for side, entries in rows.items():
        print(f"{side}:")
        for entry in entries:
            print(f"  training example {entry['index']:<6} label {entry['label']:<4} {entry['score']:.4g}")
    return 0


def cmd_search(args) -> int:
    # optuna and the search package: imported by this command only, not by the CLI's parsing
    from dlx.data import user_sets
    from dlx.jobs import ensure_worker
    from dlx.store import default_store
    from dlx.views import launch, search

    user_sets.list_in_registry(default_store)
    store = default_store()
    model = args.model or launch.default_model(args.dataset)
    fixed = _key_values(args.set)
    form = launch.form_from_text(args.dataset, model, fixed)
    form.pop("sweep", None)
    spec = search.spec_from_form(store, form, search.parse_space_text("\n".join(args.param)), args.objective,
                                 args.direction, args.sampler, args.pruner, args.trials,
                                 None if args.timeout is None else args.timeout * 60, args.parallel,
                                 name=launch.config_key)
    name, job_id = search.launch_search(store, spec, args.name)
    if not args.json:
        print(f"queued search {name} (job {job_id}): {search.trial_count(spec)}", flush=True)
    if not args.no_worker:
        ensure_worker(store)
    if not args.wait and not args.json:
        return 0
    done = search.wait(store, name, job_id)
    if args.json:
        print(json.dumps(done.as_json()))
        return 0
    for trial in done.trials:
        print(f"trial {trial['number']}: run {trial['run']} {trial['state']} {trial['value']}")
    print(f"best: {done.best}")
    return 0


def cmd_import(args) -> int:
    """`dlx import mlflow URI`, `dlx import tensorboard LOGDIR`: a progress bar on stderr, the summary on stdout."""
    from dlx.store import default_store  # (the command's own imports: cli.py's imports stay light)

    store = default_store()
    if args.source == "mlflow":
        from dlx.importers.mlflow import import_mlflow  # the importers load only when a command asks

        print(import_mlflow(store, args.uri).line("MLflow"))
    else:
        from dlx.importers.tensorboard import import_tensorboard  # tensorboard: only when asked

        print(import_tensorboard(store, args.logdir).line("TensorBoard"))
    return 0


COMMANDS = {"ui": cmd_ui, "worker": cmd_worker, "run": cmd_run, "runs": cmd_runs,
            "cancel": cmd_cancel, "delete": cmd_delete, "db": cmd_db, "export": cmd_export, "report": cmd_report,
            "sanity": cmd_sanity, "influence": cmd_influence, "search": cmd_search, "import": cmd_import}

if __name__ == "__main__":
    sys.exit(main())
