"""The `dlx` command: ui, worker, run, runs, cancel, db upgrade, export."""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

from dlx.errors import DlxError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dlx", description="Launch, watch, compare and explain "
                                     "deep-learning experiments.")
    sub = parser.add_subparsers(dest="command", required=True)

    ui = sub.add_parser("ui", help="start the web app")
    ui.add_argument("--port", type=int, default=8501)

    worker = sub.add_parser("worker", help="run queued jobs until stopped")
    worker.add_argument("--cpu-jobs", type=int, default=None, help="CPU jobs at once (DLX_CPU_JOBS)")
    worker.add_argument("--idle-exit", type=float, default=None, help="exit after this many idle seconds")

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
    runs.add_argument("--status", action="append", default=None)

    cancel = sub.add_parser("cancel", help="cancel a run")
    cancel.add_argument("run", type=int)

    db = sub.add_parser("db", help="database maintenance")
    db.add_argument("action", choices=["upgrade"])

    export = sub.add_parser("export", help="write a run's metrics as CSV or JSON")
    export.add_argument("run", type=int)
    export.add_argument("--format", choices=["csv", "json"], default="csv")

    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except DlxError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def cmd_ui(args) -> int:
    import subprocess

    app = Path(__file__).resolve().parent.parent / "streamlit_app.py"
    return subprocess.call([sys.executable, "-m", "streamlit", "run", str(app),
                            "--server.port", str(args.port), "--server.headless", "true",
                            "--client.toolbarMode", "viewer", "--browser.gatherUsageStats", "false"])


def cmd_worker(args) -> int:
    from db.engine import get_engine
    from dlx import settings
    from dlx.jobs.worker import Worker

    get_engine()
    Worker(cpu_slots=args.cpu_jobs or settings.cpu_job_slots()).serve(idle_exit=args.idle_exit)
    return 0


def cmd_run(args) -> int:
    from dlx import launch, store
    from dlx.jobs import ensure_worker

    model = args.model or launch.default_model(args.dataset)
    settings: dict[str, str] = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise DlxError(f"--set: {item!r} is not KEY=VALUE", field="set")
        settings[key.strip()] = value
    if args.epochs is not None:
        settings["epochs"] = args.epochs
    form = launch.form_from_text(args.dataset, model, settings)
    sweep = form.pop("sweep", None)
    planned = launch.plan(form, name=launch.config_key)
    run_ids = launch.submit_plan(planned, sweep)
    first = store.get_run(run_ids[0])
    if len(run_ids) == 1:
        print(f"queued run {first.id} (job {first.job_id}): {first.dataset}/{first.model}", flush=True)
    else:
        print(f"queued sweep {first.sweep}: runs {run_ids[0]}-{run_ids[-1]} ({planned.count} runs: "
              f"{planned.describe()})", flush=True)
    if not args.no_worker:
        ensure_worker()
    if not args.wait:
        return 0
    return max([_wait(run_id) for run_id in run_ids])  # a list: wait for every run, even after a failure


def _wait(run_id: int) -> int:
    from dlx import store
    from dlx.store import FINAL_STATES

    last_status = None
    while True:
        run = store.get_run(run_id)
        if run.status != last_status:
            print(f"run {run_id}: {run.status}", flush=True)
            last_status = run.status
        if run.status in FINAL_STATES:
            break
        time.sleep(0.5)
    finals = {k: v for k, v in run.summary.items() if k in ("test_acc", "test_loss", "val_acc",
                                                            "val_loss", "best_epoch", "epochs_run")}
    print(json.dumps({"run": run_id, "status": run.status, "error": run.error, **finals}, indent=2))
    return 0 if run.status == "succeeded" else 1


def cmd_runs(args) -> int:
    from dlx import store

    runs = store.list_runs(status=args.status)
    rows = [{"id": r.id, "status": r.status, "dataset": r.dataset, "model": r.model,
             "sweep": r.sweep, "params": {k: store.decode_param(v) for k, v in r.params.items()},
             "test_acc": r.summary.get("test_acc"), "val_acc": r.summary.get("val_acc"),
             "error": r.error, "created_at": r.created_at.isoformat()} for r in runs]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'id':>5}  {'status':<10} {'dataset':<14} {'model':<9} {'test_acc':>8}  params")
    for r in rows:
        acc = "" if r["test_acc"] is None else f"{r['test_acc']:.4f}"
        keys = ("lr", "epochs", "batch_size", "optimizer")
        params = " ".join(f"{k}={r['params'][k]}" for k in keys if k in r["params"])
        print(f"{r['id']:>5}  {r['status']:<10} {r['dataset'] or '':<14} {r['model'] or '':<9} {acc:>8}  {params}")
    return 0


def cmd_cancel(args) -> int:
    from dlx.jobs import cancel_run

    print(f"run {args.run}: {cancel_run(args.run)}")
    return 0


def cmd_db(args) -> int:
    from db.engine import get_engine

    get_engine()
    print("database is at the latest revision")
    return 0


def cmd_export(args) -> int:
    from dlx import store

    if store.get_run(args.run) is None:
        raise DlxError(f"run: there is no run #{args.run}", field="run")
    histories = {key: store.metric_history(args.run, key) for key in store.metric_keys(args.run)}
    if args.format == "json":
        print(json.dumps({key: {"step": h.steps.tolist(), "value": h.values.tolist()}
                          for key, h in histories.items()}))
        return 0
    writer = csv.writer(sys.stdout)
    writer.writerow(["key", "step", "value", "time"])
    for key, h in histories.items():
        writer.writerows((key, int(s), float(v), float(t)) for s, v, t in zip(h.steps, h.values, h.times))
    return 0


COMMANDS = {"ui": cmd_ui, "worker": cmd_worker, "run": cmd_run, "runs": cmd_runs,
            "cancel": cmd_cancel, "db": cmd_db, "export": cmd_export}

if __name__ == "__main__":
    sys.exit(main())
