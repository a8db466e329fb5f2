"""The `inferq` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from bus.base import BusError
from inferq.admin_client import AdminClient, AdminError, default_url
from schemas.env import SettingError
from schemas.registry import MAX_BATCH_SIZE, MAX_QUEUE_DELAY_MS


def _env_from_flags(args: argparse.Namespace, names: dict[str, str]) -> None:
    for attr, var in names.items():
        value = getattr(args, attr, None)
        if value is not None:
            os.environ[var] = str(value)


def cmd_up(args: argparse.Namespace) -> None:
    _env_from_flags(args, {"host": "INFERQ_HOST", "port": "INFERQ_PORT",
                           "data_dir": "INFERQ_DATA_DIR",
                           "model_repository": "INFERQ_MODEL_REPOSITORY"})
    from inferq.up import run_up
    from ingest.settings import IngestSettings
    from notifier.settings import NotifierSettings
    from runner.settings import RunnerSettings

    run_up(IngestSettings.from_env(), RunnerSettings.from_env(), NotifierSettings.from_env())


def cmd_ingest(args: argparse.Namespace) -> None:
    _env_from_flags(args, {"host": "INFERQ_HOST", "port": "INFERQ_PORT",
                           "model_repository": "INFERQ_MODEL_REPOSITORY"})
    from inferq.serve import serve
    from ingest.app import create_app
    from ingest.settings import IngestSettings

    settings = IngestSettings.from_env()
    serve(create_app(settings), settings.host, settings.port)


def cmd_runner(args: argparse.Namespace) -> None:
    _env_from_flags(args, {"host": "INFERQ_RUNNER_HOST", "port": "INFERQ_RUNNER_PORT"})
    from inferq.serve import serve
    from runner.app import create_app
    from runner.settings import RunnerSettings

    settings = RunnerSettings.from_env()
    serve(create_app(settings), settings.http_host, settings.http_port)


def cmd_notifier(args: argparse.Namespace) -> None:
    _env_from_flags(args, {"host": "INFERQ_NOTIFIER_HOST", "port": "INFERQ_NOTIFIER_PORT"})
    from inferq.serve import serve
    from notifier.app import create_app
    from notifier.settings import NotifierSettings

    settings = NotifierSettings.from_env()
    serve(create_app(settings), settings.http_host, settings.http_port)


def cmd_topics_create(args: argparse.Namespace) -> None:
    from bus.factory import make_bus
    from bus.topics import TopicNames
    from schemas.bus_settings import BusSettings

    s = BusSettings.from_env(os.environ)
    if not s.kafka_bootstrap:
        raise SystemExit("inferq topics create needs INFERQ_KAFKA_BOOTSTRAP (the embedded bus "
                         "creates its topics itself)")
    partitions = args.partitions or s.partitions
    specs = TopicNames(s.topic_prefix).specs(partitions)

    async def run() -> None:
        bus = make_bus(s.kafka_bootstrap, None)
        await bus.ensure_topics(specs)

    asyncio.run(run())
    for spec in specs:
        print(f"{spec.name}\tpartitions={spec.partitions}\t"
              + ",".join(f"{k}={v}" for k, v in spec.configs().items()))


def _kafka_only(what: str) -> tuple[str, str]:
    from schemas.bus_settings import BusSettings

    s = BusSettings.from_env(os.environ)
    if not s.kafka_bootstrap:
        raise SystemExit(f"inferq {what} needs INFERQ_KAFKA_BOOTSTRAP (the Kafka bootstrap "
                         "servers); the embedded bus lives inside `inferq up`")
    return s.kafka_bootstrap, s.topic_prefix


def cmd_topics_describe(args: argparse.Namespace) -> None:
    from inferq.ops import describe_topics

    bootstrap, prefix = _kafka_only("topics describe")
    topics = asyncio.run(describe_topics(bootstrap, prefix))
    if args.json:
        _show(topics)
        return
    for t in topics:
        if not t["exists"]:
            print(f"{t['topic']}\tMISSING (run: inferq topics create)")
            continue
        print(f"{t['topic']}\tpartitions={t['partitions']}\t"
              + ",".join(f"{k}={v}" for k, v in sorted(t["configs"].items())))
    if not all(t["exists"] for t in topics):
        raise SystemExit(1)


def cmd_status(args: argparse.Namespace) -> None:
    from inferq.ops import group_lag, runners

    bootstrap, prefix = _kafka_only("status")
    group = args.group or os.environ.get("INFERQ_RUNNER_GROUP", "inferq-runners")

    async def gather() -> dict[str, object]:
        return {"bus": {"kafka": bootstrap, "reachable": True},
                "runners": await runners(bootstrap, prefix),
                "lag": await group_lag(bootstrap, prefix, group)}

    report = asyncio.run(gather())
    if args.json:
        _show(report)
        return
    print(f"bus: Kafka at {bootstrap}: reachable")
    live = report["runners"]
    assert isinstance(live, list)
    print(f"runners: {len(live)}")
    for r in live:
        print(f"  {r['runner_id']}\t{r['state']}\tdevice={r['device']}\t"
              f"in_flight={r['in_flight']}\tlast heartbeat {r['age_s']} s ago")
    lag = report["lag"]
    assert isinstance(lag, dict)
    print(f"lag: {lag['total']} records on {lag['topic']} for group {lag['group']}")


def _client(args: argparse.Namespace) -> AdminClient:
    data_dir = Path(os.environ.get("INFERQ_DATA_DIR", ".inferq"))
    return AdminClient(args.url, args.admin_token or os.environ.get("INFERQ_ADMIN_TOKEN"),
                       data_dir)


def _show(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def cmd_keys(args: argparse.Namespace) -> None:
    c = _client(args)
    if args.action == "create":
        out = c.call("POST", "/admin/keys", {"account": args.account, "name": args.name or ""})
        _show(out)
        print("Store this key now: it is shown once and kept only as a hash.", file=sys.stderr)
    elif args.action == "list":
        _show(c.call("GET", "/admin/keys"))
    elif args.action == "revoke":
        _show(c.call("DELETE", f"/admin/keys/{args.key_id}"))
    elif args.action == "rotate":
        _show(c.call("POST", f"/admin/keys/{args.key_id}/rotate",
                     {"graceSeconds": args.grace_seconds}))


def _limit(kind: type[int] | type[float], high: float) -> Callable[[str], float | None]:
    """An argparse type: a batching limit, ``kind(text)`` within range, or ``default``
    (None: clear it, so the next fallback applies)."""
    low = 1 if kind is int else 0
    what = "an integer" if kind is int else "a number of milliseconds"

    def parse(text: str) -> float | None:
        if text == "default":
            return None
        try:
            value: float = kind(text)
        except ValueError:
            value = float("nan")
        if not low <= value <= high:  # NaN too
            raise argparse.ArgumentTypeError(
                f"expected {what} from {low} to {high:g}, or 'default'; got {text!r}")
        return value
    return parse


def _batching(args: argparse.Namespace) -> dict[str, object]:
    """The batching fields of an admin request body, for the flags that were given."""
    fields = {"max_batch_size": "maxBatchSize", "max_queue_delay_ms": "maxQueueDelayMs"}
    return {wire: getattr(args, attr) for attr, wire in fields.items() if hasattr(args, attr)}


def _batching_flags(sp: argparse.ArgumentParser, fallback: str) -> None:
    # Left out of the namespace when not given: an update changes only what is named.
    sp.add_argument("--max-batch-size", type=_limit(int, MAX_BATCH_SIZE),
                    default=argparse.SUPPRESS, metavar="N|default",
                    help=f"rows one dynamic batch may hold, 1 to {MAX_BATCH_SIZE} (1: no "
                         f"batching); 'default': {fallback}")
    sp.add_argument("--max-queue-delay-ms", type=_limit(float, MAX_QUEUE_DELAY_MS),
                    default=argparse.SUPPRESS, metavar="MS|default",
                    help=f"longest a partial batch waits for more requests, 0 to "
                         f"{MAX_QUEUE_DELAY_MS:g} ms; 'default': {fallback}")


def cmd_models(args: argparse.Namespace) -> None:
    c = _client(args)
    if args.action == "list":
        _show(c.call("GET", "/admin/models"))
        return
    patch = _batching(args)
    if not patch:
        raise SystemExit("models update needs --max-batch-size and/or --max-queue-delay-ms")
    _show(c.call("PATCH", f"/admin/models/{args.model}", patch))


def cmd_tasks(args: argparse.Namespace) -> None:
    c = _client(args)
    if args.action == "list":
        _show(c.call("GET", "/admin/tasks" + (f"?account={args.account}" if args.account else "")))
        return
    if args.action == "update":
        patch = _batching(args)
        if not patch:
            raise SystemExit("tasks update needs --max-batch-size and/or --max-queue-delay-ms")
        _show(c.call("PATCH", f"/admin/tasks/{args.task_id}", patch))
        return
    model = args.model
    if args.model_file:
        path = Path(args.model_file)
        name = args.model_name or path.stem
        record = c.call("POST", f"/admin/models?name={name}&version={args.model_version}",
                        raw=path.read_bytes(), content_type="application/octet-stream")
        model = record["id"]
    if not model:
        raise SystemExit("tasks create needs --model NAME[:VERSION] or --model-file PATH")
    _show(c.call("POST", "/admin/tasks", {"account": args.account, "model": model,
                                          "name": args.name or "",
                                          "fillBindingsViaApi": not args.no_api_bindings,
                                          **_batching(args)}))


_TASK_FALLBACK = "its model's, else the runner's"
_MODEL_REPOSITORY_HELP = ("register <dir>/<model>/<version>/model.onnx at start (Triton "
                          "layout; INFERQ_MODEL_REPOSITORY)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="inferq", description="Event-driven ONNX inference.")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="everything in one process (embedded bus unless "
                                   "INFERQ_KAFKA_BOOTSTRAP is set)")
    up.add_argument("--host", help="listen address (INFERQ_HOST, default 127.0.0.1)")
    up.add_argument("--port", type=int, help="listen port (INFERQ_PORT, default 8000)")
    up.add_argument("--data-dir", help="where state persists (INFERQ_DATA_DIR, default .inferq)")
    up.add_argument("--model-repository", help=_MODEL_REPOSITORY_HELP)
    up.set_defaults(func=cmd_up)

    for name, func, default_port in (("ingest", cmd_ingest, "8000"),
                                     ("runner", cmd_runner, "8001"),
                                     ("notifier", cmd_notifier, "8002")):
        sp = sub.add_parser(name, help=f"run the {name} service against Kafka")
        sp.add_argument("--host", help="listen address for its HTTP endpoints")
        sp.add_argument("--port", type=int, help=f"listen port (default {default_port})")
        if name == "ingest":
            sp.add_argument("--model-repository", help=_MODEL_REPOSITORY_HELP)
        sp.set_defaults(func=func)

    def admin_opts(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--url", default=default_url(), help="ingest base URL (INFERQ_URL)")
        sp.add_argument("--admin-token", help="admin token (INFERQ_ADMIN_TOKEN, or the one "
                                              "inferq up keeps in its data dir)")

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="action", required=True)
    kc = keys.add_parser("create", help="create a key (shown once)")
    kc.add_argument("--account", help="account id (default: a new account)")
    kc.add_argument("--name", help="a label for the key")
    kl = keys.add_parser("list", help="list keys (never the keys themselves)")
    kr = keys.add_parser("revoke", help="revoke a key at once")
    kr.add_argument("key_id")
    kt = keys.add_parser("rotate", help="new key for the same account; old one revoked")
    kt.add_argument("key_id")
    kt.add_argument("--grace-seconds", type=float, default=0.0,
                    help="how long the old key keeps working")
    for sp in (kc, kl, kr, kt):
        admin_opts(sp)
        sp.set_defaults(func=cmd_keys)

    tasks = sub.add_parser("tasks", help="tasks").add_subparsers(dest="action", required=True)
    tc = tasks.add_parser("create", help="create a task from an ONNX file or a stored model")
    tc.add_argument("--account", required=True, help="owning account")
    tc.add_argument("--model", help="stored model NAME[:VERSION]")
    tc.add_argument("--model-file", help="upload this .onnx file as the model")
    tc.add_argument("--model-name", help="name for the uploaded model (default: file stem)")
    tc.add_argument("--model-version", default="1", help="version for the uploaded model")
    tc.add_argument("--name", help="task name")
    tc.add_argument("--no-api-bindings", action="store_true",
                    help="create it without fillBindingsViaApi")
    _batching_flags(tc, _TASK_FALLBACK)
    tl = tasks.add_parser("list", help="list tasks")
    tl.add_argument("--account", help="only this account's")
    tu = tasks.add_parser("update", help="set or clear a task's batching (over its model's)")
    tu.add_argument("task_id")
    _batching_flags(tu, _TASK_FALLBACK)
    for sp in (tc, tl, tu):
        admin_opts(sp)
        sp.set_defaults(func=cmd_tasks)

    models = sub.add_parser("models", help="models").add_subparsers(dest="action",
                                                                     required=True)
    ml = models.add_parser("list", help="list models with their signature and batching")
    mu = models.add_parser("update", help="set or clear a model version's batching (every "
                                          "task on it that sets none of its own)")
    mu.add_argument("model", help="NAME[:VERSION] (version 1 if left out)")
    _batching_flags(mu, "the runner's own (INFERQ_MAX_BATCH_SIZE / _QUEUE_DELAY_MS)")
    for sp in (ml, mu):
        admin_opts(sp)
        sp.set_defaults(func=cmd_models)

    topics = sub.add_parser("topics", help="Kafka topics").add_subparsers(dest="action",
                                                                         required=True)
    tcr = topics.add_parser("create", help="create every topic with its cleanup policy")
    tcr.add_argument("--partitions", type=int, help="partitions of the busy topics")
    tcr.set_defaults(func=cmd_topics_create)
    tde = topics.add_parser("describe", help="partitions and cleanup policy of every topic")
    tde.add_argument("--json", action="store_true", help="machine-readable output")
    tde.set_defaults(func=cmd_topics_describe)

    st = sub.add_parser("status", help="bus reachability, runners (heartbeats), group lag")
    st.add_argument("--group", help="the runners' consumer group (INFERQ_RUNNER_GROUP)")
    st.add_argument("--json", action="store_true", help="machine-readable output")
    st.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    from obs.logs import configure

    configure(os.environ.get("INFERQ_LOG_LEVEL", "INFO"))
    if args.command in ("up", "ingest", "runner", "notifier"):
        from obs.tracing import configure_tracing

        configure_tracing(args.command)
    try:
        args.func(args)
    except (AdminError, SettingError, BusError) as exc:
        raise SystemExit(f"inferq: {exc}") from None
    except KeyboardInterrupt:
        pass
