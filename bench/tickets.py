"""The benchmark: service latency on a 1,000,000-ticket tenant, the dashboard, and handler cold-import time.

    python -m bench.tickets                  # seed if needed, time the services, time the imports
    python -m bench.tickets --tickets 10000  # a quick run on a small tenant (its own database)
    python -m bench.tickets --imports-only   # cold-import times only, no database
    python -m bench.tickets --explain        # also EXPLAIN (ANALYZE, BUFFERS) the list, search and dashboard queries
    python -m bench.tickets --dashboard-only # the dashboard before the first rollup and after, nothing else

Latency is measured in-process around the service call (`support.services.tickets`), with
`time.perf_counter`, as the runtime role `support_app` over TCP (loopback to the embedded server): the database
round trips (BEGIN, set_config, the statement, COMMIT) plus building the pydantic models. Each case
cycles through varied inputs; it runs a warm-up, then `--iterations` timed calls (fewer if a case would
take longer than `--budget` seconds, which only happens when a target is missed by far).
On the same data, `bench.desk` then times the dashboard handler (big and small tenant) against a
straightforward aggregate of the same figures, canned responses by shortcut and chat message pages.

Cold import: each handler module under functions/*/app.py, and `bench/bare_handler.py`, is imported by
path in fresh interpreters with the environment the Lambda function would have; the median of
`--import-runs` processes is compared with the bare handler's (target: at most 1.25x).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from bench import desk
from bench import seed as seeding
from bench.timing import Case, explaining, run_case
from local.visitor_key import visitor_token_secret

REPO = Path(__file__).resolve().parent.parent
BARE_HANDLER = Path(__file__).resolve().parent / "bare_handler.py"
PYCACHE = REPO / ".local" / "bench-pycache"

LIST_TARGET_MS = 5.0
SEARCH_TARGET_MS = 50.0
CREATE_TARGET_MS = 5.0
IMPORT_RATIO_TARGET = 1.25
PAGE_SIZE = 50

STATUSES = ("open", "in_progress", "waiting_customer", "resolved", "closed")
PRIORITIES = ("low", "medium", "high", "urgent")
COMMON_WORDS = ("refund", "password", "charged", "invoice", "tracking", "cancel", "shipping", "account")


# ------------------------------------------------------------------------------------- service cases


@contextmanager
def _as_tenant(url: str, tenant: UUID) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor in a transaction bound to `tenant` (works for roles under RLS and for superusers alike)."""
    with psycopg.connect(url, autocommit=True) as conn, conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT set_config('app.tenant_id', %s, true)", (str(tenant),))
        yield cur


def _search_terms(url: str, tenant: UUID, tickets: int) -> dict[str, list[str]]:
    """Search inputs taken from the data, so each one really matches (rare ones a handful of rows)."""
    with _as_tenant(url, tenant) as cur:
        cur.execute(
            "SELECT customer_email, customer_name, substring(description FROM 'Order number ([0-9]+)') "
            "FROM support_tickets WHERE user_id = %s ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 400",
            (tenant, min(2000, tickets // 5)),
        )
        rows = cur.fetchall()
    emails = list(dict.fromkeys(row[0] for row in rows))[:20]
    names = list(dict.fromkeys(row[1] for row in rows))[:20]
    orders = list(dict.fromkeys(row[2] for row in rows if row[2]))[:20]
    last_names = [name.lower() for name in seeding.LAST_NAMES[5:25]]
    return {
        "email": emails,
        "order": orders,
        "name": names,
        "last_name": last_names,
        "common": list(COMMON_WORDS),
    }


def _average_matches(url: str, tenant: UUID, terms: list[str]) -> str:
    """Matches per term (the service's semantics: every word a prefix, all required), over a few terms."""
    counts = []
    with _as_tenant(url, tenant) as cur:
        cur.execute("SET LOCAL statement_timeout = '30s'")
        for term in terms[:3]:
            cur.execute(
                "SELECT count(*) FROM ticket_search_index WHERE user_id = %s "
                "AND search_vector @@ ticket_search_query(%s)",
                (tenant, term),
            )
            row = cur.fetchone()
            counts.append(int(row[0]) if row else 0)
    mean = statistics.mean(counts)
    return f"~{mean:,.0f}" if mean >= 10 else f"~{mean:.0f}"


def _ticket_cases(urls: Any, args: argparse.Namespace, plans: list[tuple[str, list[str]]]) -> list[Case]:
    """The tickets cases (list, filtered, search, create) on the measured tenant, as the runtime role; with
    --explain, the plans of the list and search queries go to `plans`."""
    from support.auth import Principal, Role
    from support.models.tickets import TicketCreate, TicketQuery
    from support.services import tickets

    principal = Principal(tenant_id=seeding.BIG_TENANT, role=Role.ADMIN, subject="bench")
    terms = _search_terms(urls.owner, seeding.BIG_TENANT, args.tickets)

    def list_page(query: TicketQuery) -> Any:
        return tickets.list_tickets(principal, query)

    first = Case(
        "list: first page", LIST_TARGET_MS, [("first page", TicketQuery(limit=PAGE_SIZE))], matches="newest 50"
    )

    # Keyset pagination: each call asks for the page after the previous one, 200 pages deep.
    pages: list[tuple[str, Any]] = []
    cursor = list_page(TicketQuery(limit=PAGE_SIZE)).next_cursor
    for _ in range(args.iterations + args.warmup):
        pages.append((f"page {len(pages) + 2}", TicketQuery(limit=PAGE_SIZE, cursor=cursor)))
        cursor = list_page(pages[-1][1]).next_cursor
        if cursor is None:
            break
    deeper = Case("list: next pages (cursor)", None, pages, matches=f"pages 2-{len(pages) + 1}")

    combos = [
        (f"{status}+{priority}", TicketQuery(status=status, priority=priority, limit=PAGE_SIZE))
        for status in STATUSES
        for priority in PRIORITIES
    ]
    filtered = Case("filtered: status + priority", LIST_TARGET_MS, combos, matches="all 20 pairs")

    search_classes = [
        ("search: customer email (rare)", "email"),
        ("search: order number (rare)", "order"),
        ("search: customer full name", "name"),
        ("search: last name", "last_name"),
        ("search: common subject word", "common"),
    ]
    searches = []
    for name, key in search_classes:
        inputs = [(term, TicketQuery(search=term, limit=PAGE_SIZE)) for term in terms[key]]
        matches = _average_matches(urls.admin, seeding.BIG_TENANT, terms[key]) + " rows/term"
        searches.append(Case(name, SEARCH_TARGET_MS, inputs, matches=matches))

    cases: list[Case] = []
    for case in (first, deeper, filtered, *searches):
        if not case.inputs:
            print(f"bench: {case.name}: no inputs in this data set, skipped")
            continue
        print(f"bench: {case.name} ...", flush=True)
        cases.append(run_case(case, list_page, iterations=args.iterations, warmup=args.warmup, budget=args.budget))

    # The measured tenant holds the cap's 1,000,000 tickets, where a create answers 409 quota_exceeded by design:
    # creates go to a tenant with room, in the same table and indexes (what a create costs does not depend on
    # its tenant's size: one row into the shared indexes, one running total of its group, sql/0007).
    creator = seeding.plan(args.tickets)[1]
    creating = Principal(tenant_id=creator.tenant_id, role=Role.ADMIN, subject="bench")
    created: list[UUID] = []

    def create(data: TicketCreate) -> None:
        created.append(tickets.create_ticket(creating, data).id)

    creations = []
    for k in range(40):
        first_name = seeding.FIRST_NAMES[k % len(seeding.FIRST_NAMES)]
        last_name = seeding.LAST_NAMES[(k * 7) % len(seeding.LAST_NAMES)]
        data = TicketCreate(
            customer_name=f"{first_name} {last_name}",
            customer_email=f"{first_name}.{last_name}.bench{k}@example.com".lower(),
            subject=seeding.SUBJECTS[k % len(seeding.SUBJECTS)],
            description=" ".join(seeding.PROBLEMS[k % len(seeding.PROBLEMS)] for _ in range(1 + k % 3)),
            category=[c for c in seeding.CATEGORY_WEIGHTS if c][k % 12],
            priority=PRIORITIES[k % 4],
        )
        creations.append((f"ticket {k}", data))
    print("bench: create ...", flush=True)
    try:
        cases.append(
            run_case(
                Case(
                    "create",
                    CREATE_TARGET_MS,
                    creations,
                    matches=f"4 priorities, 12 categories; tenant {creator.label} ({creator.tickets:,} tickets)",
                ),
                create,
                iterations=args.iterations,
                warmup=args.warmup,
                budget=args.budget,
            )
        )
    finally:
        with _as_tenant(urls.owner, creator.tenant_id) as cur:
            cur.execute("DELETE FROM support_tickets WHERE user_id = %s AND id = ANY(%s)", (creator.tenant_id, created))

    if args.explain:
        slowest_combo = filtered.slowest_input().split(" ")[0] or "waiting_customer+urgent"
        status, priority = slowest_combo.split("+")
        explained = [
            ("list: first page", TicketQuery(limit=PAGE_SIZE)),
            (f"filtered: {slowest_combo}", TicketQuery(status=status, priority=priority, limit=PAGE_SIZE)),
            *((f"{case.name}: {case.inputs[0][0]}", case.inputs[0][1]) for case in searches if case.inputs),
        ]
        for label, query in explained:
            with explaining(tickets, plans, label):
                list_page(query)
    return cases


def run_services(args: argparse.Namespace) -> tuple[list[Case], dict[str, Any], list[tuple[str, list[str]]]]:
    """Seed if needed, then time the tickets cases here and the dashboard, canned-response and chat cases
    (`bench.desk`) on the same data. `info` carries the seeding figures, the ratios and notes."""
    from local.database import database

    info: dict[str, Any] = {}
    with database(seeding.database_name(args.tickets), purpose=seeding.purpose(args.tickets), quiet=True) as urls:
        started = time.perf_counter()
        info["seed_seconds"] = seeding.seed(urls.owner, args.tickets, reseed=args.reseed)
        info["seed_check_seconds"] = time.perf_counter() - started
        with psycopg.connect(urls.owner) as conn:
            row = conn.execute(
                "SELECT seconds, seeded_at FROM bench_seed WHERE tenant_id = %s", (seeding.BIG_TENANT,)
            ).fetchone()
            info["seeded"] = (float(row[0]), row[1]) if row else None
            info["steps"] = conn.execute(
                "SELECT step, rows, seconds FROM bench_seed_steps WHERE tenant_id = %s ORDER BY updated_at",
                (seeding.BIG_TENANT,),
            ).fetchall()
            info["server"] = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
            info["table_size"] = conn.execute(
                "SELECT pg_size_pretty(pg_total_relation_size('support_tickets'))"
            ).fetchone()[0]  # type: ignore[index]

        os.environ["DATABASE_URL"] = urls.app
        from support.config import get_settings
        from support.db import reset_connection

        get_settings.cache_clear()
        reset_connection()
        plans: list[tuple[str, list[str]]] = []
        cases = [] if args.dashboard_only else _ticket_cases(urls, args, plans)

        try:
            desk_cases, info["ratios"], info["notes"] = desk.run(urls, args, plans if args.explain else None)
            cases += desk_cases
        except Exception as exc:  # the tickets' figures still print
            info["ratios"], info["notes"] = [], [f"the dashboard, canned and chat cases failed: {exc!r}"]
            info["desk_failed"] = True
            print(f"bench: {info['notes'][0]}", flush=True)
        reset_connection()
    return cases, info, plans


# -------------------------------------------------------------------------------------- cold imports


_CHILD = """
import importlib.util, sys, time
path = sys.argv[1]
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("app", path)
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
elapsed = time.perf_counter() - started
assert callable(getattr(module, "lambda_handler", None)), "no lambda_handler"
print(elapsed)
"""


def _template_environment() -> dict[str, str]:
    """The string values of Globals.Function.Environment.Variables in template.yaml (intrinsics skipped)."""
    template = REPO / "template.yaml"
    if not template.exists():
        return {}
    try:
        import yaml
    except ImportError:
        return {}

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda _loader, _suffix, _node: None)
    document = yaml.load(template.read_text(), Loader=Loader)  # noqa: S506  (SafeLoader subclass)
    variables = (document or {}).get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    return {key: value for key, value in (variables or {}).items() if isinstance(value, str)}


def lambda_environment(function_dir: Path) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "DATABASE_"))}
    env.update(
        {
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": f"bench-{function_dir.name}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "LAMBDA_TASK_ROOT": str(function_dir),
            "POWERTOOLS_SERVICE_NAME": "support",
            "POWERTOOLS_METRICS_NAMESPACE": "SupportDesk",
            "POWERTOOLS_LOG_LEVEL": "INFO",
        }
    )
    env.update(_template_environment())
    # Never connected to at import; set so configuration validated at cold start passes.
    env["DATABASE_URL"] = "postgresql://support_app@127.0.0.1:9/support"
    # The template's VisitorTokenSecret (functions/widgets reads it at import): the local stand-in, as `make run`
    # gives it. In AWS the function reads it from Secrets Manager once per cold start, which is not timed here.
    env["VISITOR_TOKEN_SECRET"] = visitor_token_secret()
    return env


def _import_once(module: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  (our own interpreter, our own files)
        [sys.executable, "-X", f"pycache_prefix={PYCACHE}", *extra, "-c", _CHILD, str(module)],
        env=lambda_environment(module.parent),
        cwd=module.parent,  # the Lambda's task root: sibling modules import as they would there
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _seconds(result: subprocess.CompletedProcess[str], module: Path) -> float:
    if result.returncode != 0:
        raise RuntimeError(f"importing {module} failed:\n{result.stderr.strip()[-2000:]}")
    return float(result.stdout.strip().splitlines()[-1])


@dataclass
class ImportResult:
    module: Path
    runs: list[float]

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs) * 1000

    @property
    def label(self) -> str:
        return str(self.module.relative_to(REPO))


def measure_imports(runs: int) -> tuple[ImportResult, list[ImportResult]]:
    handlers = sorted(REPO.glob("functions/*/app.py"))
    modules = [BARE_HANDLER, *handlers]
    results = {module: ImportResult(module, []) for module in modules}
    PYCACHE.mkdir(parents=True, exist_ok=True)
    for module in modules:  # one unmeasured run each: bytecode cached, as a deployed package would be
        _seconds(_import_once(module), module)
    for _ in range(runs):  # interleaved, so drift in machine load hits every module alike
        for module in modules:
            results[module].runs.append(_seconds(_import_once(module), module))
    return results[BARE_HANDLER], [results[module] for module in handlers]


def import_profile(module: Path, baseline: Path, top: int = 10) -> list[tuple[str, float]]:
    """Top-level packages whose import costs the handler more than the baseline (-X importtime, self us)."""

    def by_package(path: Path) -> dict[str, float]:
        result = _import_once(path, "-X", "importtime")
        totals: dict[str, float] = defaultdict(float)
        for line in result.stderr.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            self_us, _cumulative, name = line.removeprefix("import time:").split("|")
            totals[name.strip().split(".")[0]] += float(self_us)
        return totals

    handler, bare = by_package(module), by_package(baseline)
    extra = {name: us - bare.get(name, 0.0) for name, us in handler.items()}
    return sorted(((name, us / 1000) for name, us in extra.items() if us > 0), key=lambda item: -item[1])[:top]


# ------------------------------------------------------------------------------------------- report


def print_service_table(cases: list[Case], iterations: int) -> None:
    print()
    print("| case | inputs | matches | n | p50 ms | p95 ms | target p50 | result | slowest input (p50 ms) |")
    print("|---|---|---|---:|---:|---:|---:|---|---|")
    for case in cases:
        target = f"<= {case.target_ms:g} ms" if case.target_ms is not None else "-"
        planned = case.iterations if case.iterations is not None else iterations
        stopped = " (error)" if case.error else " (budget)" if len(case.samples) < planned else ""
        n = f"{len(case.samples)}{stopped}"
        print(
            f"| {case.name} | {len(case.by_input)} | {case.matches} | {n} | {case.median_ms:.2f} | "
            f"{case.p95_ms:.2f} | {target} | {case.verdict} | {case.slowest_input()} |"
        )


def print_import_table(bare: ImportResult, handlers: list[ImportResult]) -> list[str]:
    print()
    print("| module | cold import p50 ms (runs) | ratio to bare | target | result |")
    print("|---|---:|---:|---|---|")
    print(f"| {bare.label} (baseline) | {bare.median_ms:.0f} ({len(bare.runs)}) | 1.00 | - | |")
    failed = []
    for handler in handlers:
        ratio = handler.median_ms / bare.median_ms
        verdict = "PASS" if ratio <= IMPORT_RATIO_TARGET else "FAIL"
        if verdict == "FAIL":
            failed.append(handler.label)
        print(
            f"| {handler.label} | {handler.median_ms:.0f} ({len(handler.runs)}) | {ratio:.2f} | "
            f"<= {IMPORT_RATIO_TARGET:g}x | {verdict} |"
        )
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tickets", description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=seeding.DEFAULT_TICKETS, help="tickets of the big tenant")
    parser.add_argument("--iterations", type=int, default=200, help="timed calls per case")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per case first")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds at most per case")
    parser.add_argument("--import-runs", type=int, default=5, help="fresh processes per module")
    parser.add_argument("--imports-only", action="store_true", help="cold-import times only (no database)")
    parser.add_argument(
        "--dashboard-only", action="store_true", help="the dashboard in both states only (no other case, no imports)"
    )
    parser.add_argument(
        "--no-import-profile", action="store_true", help="no -X importtime profile of a handler over its target"
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN (ANALYZE, BUFFERS) the main queries")
    parser.add_argument("--reseed", action="store_true", help="truncate the bench database and seed again")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"bench.tickets {stamp} · Python {platform.python_version()} · {os.cpu_count()} CPUs · "
        f"{platform.machine()} {platform.system()} · load average {load}"
    )
    failures: list[str] = []
    broken: list[str] = []
    cases: list[Case] = []
    if not args.imports_only:
        cases, info, plans = run_services(args)
        seeded = info["seeded"]
        seed_note = f"its tickets seeded in {seeded[0]:.0f} s on {seeded[1]:%Y-%m-%d}" if seeded else "no seed record"
        steps = ", ".join(f"{step} {rows:,} in {seconds:.0f} s" for step, rows, seconds in info["steps"])
        tenants = seeding.plan(args.tickets)
        big, others, small = tenants[0], tenants[1:-1], tenants[-1]
        print(
            f"\nPostgreSQL {info['server']} · measured tenant: {big.tickets:,} tickets, {big.chats:,} chats, "
            f"{big.agents:,} agents, {big.canned:,} canned responses · small tenant: {small.tickets:,} tickets · "
            f"{len(others)} others: {sum(t.tickets for t in others):,} tickets · "
            f"support_tickets {info['table_size']} · {seed_note}"
            + (f"; then {steps}" if steps else "")
            + f" · this run spent {info['seed_check_seconds']:.1f} s seeding/checking"
        )
        print_service_table(cases, args.iterations)
        failures += [case.name for case in cases if case.verdict.startswith("FAIL")]
        if info["ratios"]:
            desk.print_ratio_table(info["ratios"])
        failures += [ratio.name for ratio in info["ratios"] if not ratio.passed]
        for note in info["notes"]:
            print(f"\n{note}")
        broken += [note for note in info["notes"] if "disagree" in note or "failed" in note]
        for label, plan in plans:
            print(f"\n-- EXPLAIN (ANALYZE, BUFFERS): {label}")
            print("\n".join(plan))

    if not args.dashboard_only:
        print(f"\nbench: cold imports ({args.import_runs} fresh processes each) ...", flush=True)
        bare, handlers = measure_imports(args.import_runs)
        failed_imports = print_import_table(bare, handlers)
        for label in [] if args.no_import_profile else failed_imports:
            print(f"\nwhat {label} imports beyond the bare handler (self time, ms, -X importtime, one run):")
            for name, ms in import_profile(REPO / label, BARE_HANDLER):
                print(f"  {name:<32} {ms:7.1f}")
        failures += failed_imports

    for case in cases:
        if case.error:
            print(f"\n{case.name}: {case.error}")
    if failures:
        print(f"\ntargets missed: {', '.join(failures)}")
    # A case that raised, or figures that disagree, is a broken bench, not a slow one: exit 2 with or without --check.
    broken += [case.name for case in cases if case.error]
    if broken:
        print(f"\nbroken: {'; '.join(broken)}")
        return 2
    return 1 if failures and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
