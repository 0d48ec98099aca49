"""`make bench`: the mediator against hand-written `on_commit(task.delay)`,
in the same run, on the same Redis, database and worker settings.

    python -m bench.run [--quick] [--runs 3] [--only 1,2]   # SQLite
    scripts/with-postgres python -m bench.run                # PostgreSQL

Scenarios: (1) publish cost inside a request, (2) end-to-end handler
throughput, (3) commit-to-handler latency at a low rate and at 80% of
saturation, (4) relay drain of a full outbox, (5) recovery from a Redis
outage, (6) worker memory over many runs. Each timed figure is the median of
--runs runs, with min and max. Prints a table; writes bench/results/*.json.
Nothing here asserts a speed: the run fails only if a scenario produced no
figure or a delivery went out twice or not at all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import is_amqp, machine, summarise  # noqa: E402
from scripts.redis_server import RedisServer  # noqa: E402

FULL = {
    "requests": 2000, "events": 2000, "latency_low_rate": 20.0, "latency_seconds": 10.0,
    "relay_rows": 50_000, "raw_producer_messages": 20_000, "outage_events": 5000,
    "outage_seconds": 30.0, "memory_warmup_runs": 2000, "memory_runs": 100_000,
}  # fmt: skip
QUICK = {
    "requests": 100, "events": 100, "latency_low_rate": 20.0, "latency_seconds": 1.0,
    "relay_rows": 500, "raw_producer_messages": 500, "outage_events": 40,
    "outage_seconds": 2.0, "memory_warmup_runs": 200, "memory_runs": 400,
}  # fmt: skip


def run_scenarios(sizes: dict[str, Any], runs: int, only: set[int], stack: Any) -> dict[str, Any]:
    from django.db import connection

    from bench import scenarios as s
    from bench.harness import clear

    out: dict[str, Any] = {}

    def pair(name: str, unit: str, values: Sequence[tuple[float, ...]], target: str) -> None:
        out[name] = {
            "unit": unit, "target": target,
            "mediator": summarise([v[0] for v in values]),
            "raw": summarise([v[1] for v in values]),
        }  # fmt: skip
        if all(len(v) > 2 for v in values):  # raw Celery as it comes, for the record
            out[name]["raw_stock"] = summarise([v[2] for v in values])

    if 1 in only:
        costs = []
        for _ in range(runs):
            clear(stack.redis.url)
            costs.append(s.publish_cost(sizes["requests"]))
        pair("1 publish cost per request", "µs", costs, "ratio <= 1.5")
    saturation = None
    if 2 in only or 3 in only:
        drains = [s.throughput(stack, sizes["events"]) for _ in range(runs)]
        pair("2 handler runs per second", "runs/s", [d[:3] for d in drains],
             "ratio >= 0.8 of tuned raw")  # fmt: skip
        if not is_amqp(stack.broker_url):
            pair("2 Redis commands per handler run", "commands", [d[3:] for d in drains], "")
        saturation = out["2 handler runs per second"]["mediator"]["median"] / 2  # events/s
    if 3 in only:
        assert saturation is not None
        for label, rate in (
            ("low", sizes["latency_low_rate"]),
            ("80% of saturation", round(0.8 * saturation, 1)),
        ):
            lat = s.latency(stack, rate, sizes["latency_seconds"], runs)
            for q in (50, 95, 99):
                pair(
                    f"3 latency p{q} at {label} ({rate} events/s)", "ms",
                    list(zip(lat[f"mediator_p{q}"], lat[f"raw_p{q}"], strict=True)),
                    "p99 ratio <= 2 at low rate" if (q, label) == (99, "low") else "",
                )  # fmt: skip
            for part in ("publisher", "worker"):  # what the 2 cores were doing meanwhile
                pair(
                    f"3 {part} cores busy at {label} ({rate} events/s)", "cores",
                    list(zip(lat[f"mediator_{part}_cores"], lat[f"raw_{part}_cores"], strict=True)),
                    "",
                )  # fmt: skip
    if 4 in only:
        rows = sizes["relay_rows"]
        raw_rate = [s.raw_producer(stack, sizes["raw_producer_messages"]) for _ in range(runs)]
        relays = (1, 2) if connection.vendor == "postgresql" else (1,)
        for count in relays:
            drained = [s.relay_drain(stack, rows, count) * 2 for _ in range(runs)]  # 2 tasks/row
            pair(
                f"4 relay drain, {count} relay(s), {rows} rows", "tasks/s",
                list(zip(drained, raw_rate, strict=True)),
                "ratio >= 0.8" if count == 1 else "faster than 1 relay",
            )  # fmt: skip
        # Without the task-sent event Flower uses: its share of each publish.
        quiet = [
            s.relay_drain(stack, rows, 1, CELERY_TASK_SEND_SENT_EVENT="false") * 2
            for _ in range(runs)
        ]
        pair(
            f"4 relay drain, 1 relay(s), {rows} rows, no task-sent events", "tasks/s",
            list(zip(quiet, raw_rate, strict=True)), "",
        )  # fmt: skip
    if 5 in only:
        result = s.recovery(stack, sizes["outage_events"], sizes["outage_seconds"], runs)
        out["5 redis outage"] = {
            "seconds": sizes["outage_seconds"],
            "events_offered": sizes["outage_events"],
            **{kind: [asdict(o) for o in outs] for kind, outs in result.items()},
        }
    if 6 in only:
        mem = {
            kind: s.memory(stack, kind, sizes["memory_warmup_runs"], sizes["memory_runs"])
            for kind in ("mediator", "raw")
        }
        out["6 worker memory"] = {
            "runs": sizes["memory_runs"], "target": "growth < 10%",
            **{kind: {"warm_mib": w, "after_mib": a, "growth": a / w - 1}
               for kind, (w, a) in mem.items()},
        }  # fmt: skip
    return out


def ratio(entry: dict[str, Any]) -> float:
    return float(entry["mediator"]["median"] / entry["raw"]["median"])


def _recovered(outage: dict[str, Any]) -> str:
    lost = outage["runs_expected"] - outage["runs_done"]
    if lost:
        return f"{lost} lost for good"
    return f"all done {outage['recovery_s']:.1f} s after Redis was back"


def print_table(results: dict[str, Any]) -> None:
    m = results["machine"]
    print(
        f"\nbench on {results['database']} and {results.get('broker', 'redis')}, "
        f"{m['cores']} cores, Python {m['python']}, "
        f"Celery {m['celery']}, Django {m['django']}; median of {results['sizes']['runs']} "
        "(min-max)"
    )
    print(f"  {'scenario':<50}{'mediator':>24}{'raw (tuned)':>24}{'ratio':>7}  target")
    for name, entry in results["scenarios"].items():
        if "mediator" in entry and "median" in entry.get("mediator", {}):
            cells = [
                f"{f['median']:.1f} ({f['min']:.1f}-{f['max']:.1f})"
                for f in (entry["mediator"], entry["raw"])
            ]
            print(
                f"  {name + ' [' + entry['unit'] + ']':<50}{cells[0]:>24}{cells[1]:>24}"
                f"{ratio(entry):>7.2f}  {entry['target']}"
            )
            if "raw_stock" in entry:
                f = entry["raw_stock"]
                stock = f"{f['median']:.1f} ({f['min']:.1f}-{f['max']:.1f})"
                print(
                    f"  {'  raw Celery as it comes (a connection per task)':<74}{stock:>24}"
                    f"{entry['mediator']['median'] / f['median']:>7.2f}"
                )
    outage = results["scenarios"].get("5 redis outage")
    if outage:
        for kind in ("mediator", "raw"):
            runs = outage[kind]
            print(
                f"  5 Redis down {outage['seconds']:.0f} s, {kind:<8}: "
                + "; ".join(
                    f"{o['requests']} requests (p50 {o['request_ms_p50']:.1f} ms, max "
                    f"{o['request_ms_max']:.0f} ms), {o['runs_done']}/{o['runs_expected']} "
                    f"runs, {_recovered(o)}"
                    for o in runs
                )
            )
    mem = results["scenarios"].get("6 worker memory")
    if mem:
        for kind in ("mediator", "raw"):
            k = mem[kind]
            print(
                f"  6 worker RSS, {kind:<8}: {k['warm_mib']:.0f} MiB after warm-up, "
                f"{k['after_mib']:.0f} MiB after {mem['runs']} more runs "
                f"({k['growth']:+.1%}; target < 10%)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: proves it all runs")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="1,2,3,4,5,6", help="scenarios to run, e.g. 1,2")
    for key in FULL:
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(FULL[key]), default=None)
    args = parser.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    sizes.update({k: getattr(args, k) for k in FULL if getattr(args, k) is not None})
    only = {int(n) for n in args.only.split(",")}

    rabbitmq = is_amqp(os.environ.get("CELERY_BROKER_URL", ""))
    if rabbitmq and only - {1, 2, 3, 4}:
        parser.error("on RabbitMQ, scenarios 1-4 only (5 stops Redis, 6 feeds through Redis)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    redis = RedisServer(data_dir=workdir / "redis").start()
    broker_url = os.environ["CELERY_BROKER_URL"] if rabbitmq else redis.url
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings", REDIS_URL=redis.url, CELERY_BROKER_URL=broker_url
    )
    os.environ.update(env)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
            cwd=ROOT, env=env, check=True,
        )  # fmt: skip
        import django

        django.setup()
        from django.db import connection

        from bench.harness import clear
        from bench.scenarios import Stack

        stack = Stack(redis=redis, env=env, workdir=workdir, broker_url=broker_url)
        started = datetime.now(UTC)
        scenarios = run_scenarios(sizes, args.runs, only, stack)
        clear(redis.url)
    finally:
        redis.stop()

    results: dict[str, Any] = {
        "when": started.isoformat(timespec="seconds"),
        "wall_seconds": round((datetime.now(UTC) - started).total_seconds()),
        "database": connection.vendor,
        "broker": "rabbitmq" if rabbitmq else "redis",
        "quick": args.quick,
        "machine": machine(),
        "sizes": {**sizes, "runs": args.runs},
        "scenarios": scenarios,
    }
    print_table(results)
    missing = only - {int(name.split()[0]) for name in scenarios}
    suffix = f"{connection.vendor}{'-rabbitmq' if rabbitmq else ''}{'-quick' if args.quick else ''}"
    name = f"{results['when'][:19].replace(':', '')}-{suffix}.json"
    out = ROOT / "bench" / "results" / name
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  written: {out.relative_to(ROOT)} ({results['wall_seconds']} s)")
    if missing:
        print(f"bench: no figure for scenario(s) {sorted(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
