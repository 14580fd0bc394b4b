"""Server time of the admin pages at 1,000,000 jobs, and the plans of the SQL they run.

.venv/bin/python -m bench.bench_admin                      # 1,000,000 jobs, kept seeded
.venv/bin/python -m bench.bench_admin --jobs 100000 --requests 10
.venv/bin/python -m bench.bench_admin --database-url postgresql://.../x --write

The database is ``howdah_bench_admin_<jobs>`` on BENCH_DATABASE_URL's server (or the one
given): created and migrated if missing, seeded by bench/seed_admin.py unless it holds
that seed already, and kept for the next run (``--drop`` drops it afterwards). Pending
migrations are applied each run, so a database seeded before a merge stays usable.

The app runs in this process on that database, behind Flask's test client: the time of a
request is the server's, with no network. A platform admin and an operator of the
noisiest organization sign in through the real form. Each page of PAGES is requested
WARMUPS times, then REQUESTS times, timed; a page whose view does not exist, or that
answers 404, is reported as missing. One more request of each page records the SQL it
runs (a cursor factory set on the pool's connections by wrapping webapp.db's configure
hook, from here: no webapp code changes), and each distinct statement is run again under
EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON), in a transaction rolled back. A sequential scan
of procrastinate_jobs, procrastinate_events or job_attempts fails the page; the plans'
summaries go to bench/admin_plans.md.
"""

import argparse
import contextlib
import datetime
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

from bench import harness, seed_admin
from webapp import accounts, create_app, migrations
from webapp import db as webapp_db
from webapp.store import accounts as account_store
from webapp.store import server as server_store

OUT = Path(__file__).resolve().parent
PLANS = OUT / "admin_plans.md"
TARGET_P95_MS = 100.0
WARMUPS = 3
REQUESTS = 30
PAGE_DEPTH = 100  # the job list's page reached by following "Older"
PASSWORD = "bench admin password 0123"
ADMIN = "bench-admin@example.com"
OPERATOR = "bench-operator@example.com"
NOISY_ORGANIZATION = 1  # the seed's noisiest tenant
BIG_TABLES = ("procrastinate_jobs", "procrastinate_events", "job_attempts")
FAILED_TASK = "sms:send_notification"
# A link carrying a keyset cursor: the whole tag, its URL, the cursor, its text.
CURSOR = re.compile(r'(<a\b[^>]*href="([^"]*[?&](?:amp;)?before=(\d+)[^"]*)"[^>]*>)(.*?)</a>', re.S)


@dataclass(frozen=True)
class Page:
    """A page to time: its label, its view's endpoint, and how to reach it."""

    label: str
    endpoint: str
    query: str = ""  # appended to the endpoint's URL
    detail: bool = False  # the URL takes the failed job's id
    depth: int = 1  # follow the "Older" link until this page
    roles: tuple[str, ...] = ("admin", "operator")


PAGES = (
    Page("overview", "admin.overview"),
    Page("job list, failed + task, page 1", "admin.job_list", f"state=failed&task={FAILED_TASK}"),
    Page(
        f"job list, failed + task, page {PAGE_DEPTH}",
        "admin.job_list",
        f"state=failed&task={FAILED_TASK}",
        depth=PAGE_DEPTH,
    ),
    Page("job list, all jobs, page 1", "admin.job_list"),
    Page(f"job list, all jobs, page {PAGE_DEPTH}", "admin.job_list", depth=PAGE_DEPTH),
    Page(
        "job list, waiting in one queue", "admin.job_list", "queue=sms-notifications&state=waiting"
    ),
    Page("job detail (failed, with attempts)", "admin.job_detail", detail=True),
    Page("failures", "admin.failure_list"),
    Page("organizations", "admin.organization_list", roles=("admin",)),
    Page("workers", "admin.worker_list"),
    Page("periodic tasks", "admin.periodic_list"),
    Page("audit log", "admin.audit_list"),
    Page("database health", "admin.database", roles=("admin",)),
    Page("API tokens", "admin.token_list"),
)


# --- recording the SQL a request runs ------------------------------------------------


class Recorder:
    """The statements run through the app's pool while ``recording`` is on."""

    def __init__(self):
        self.recording = False
        self.statements: list[tuple[str, object]] = []

    @contextlib.contextmanager
    def capture(self):
        self.statements, self.recording = [], True
        try:
            yield self.statements
        finally:
            self.recording = False


RECORDER = Recorder()


class RecordingCursor(psycopg.Cursor):
    """A cursor that notes each statement and its parameters for RECORDER."""

    def execute(self, query, params=None, **kwargs):
        if RECORDER.recording:
            text = query if isinstance(query, str | bytes) else query.as_string(self)
            RECORDER.statements.append((text, params))
        return super().execute(query, params, **kwargs)


@contextlib.contextmanager
def recording_pool():
    """Pools opened meanwhile give connections that record their statements for RECORDER.

    It wraps webapp.db's configure hook, which every new pool connection goes through,
    so no webapp code changes for the bench; close the app's pool before leaving.
    """
    configure = webapp_db._configure

    def recording_configure(conn: psycopg.Connection) -> None:
        configure(conn)
        conn.cursor_factory = RecordingCursor

    webapp_db._configure = recording_configure
    try:
        yield
    finally:
        webapp_db._configure = configure


# --- the database ----------------------------------------------------------------------


def prepare_database(url: str | None, jobs: int, log=print) -> tuple[str, dict, bool]:
    """The seeded database's URL, what seeding did, and whether it was created here."""
    created = False
    if url is None:
        name = f"howdah_bench_admin_{jobs}"
        url = harness.SERVER.url(name)
        with psycopg.connect(harness.SERVER.admin_url, autocommit=True) as conn:
            if not server_store.database_exists(conn, name):
                server_store.create_database(conn, name)
                created = True
    with psycopg.connect(url, autocommit=True) as conn:
        migrations.migrate(conn)
    seeded = seed_admin.seed(url, jobs, log=log)
    return url, seeded, created


def drop_database(url: str) -> None:
    """Drop a database this bench named (never another)."""
    name = urlsplit(url).path.lstrip("/")
    if not name.startswith("howdah_bench_admin_"):
        raise ValueError(f"refusing to drop {name!r}: not this bench's database")
    with psycopg.connect(harness.SERVER.admin_url, autocommit=True) as conn:
        server_store.drop_database(conn, name)


def ensure_people(url: str) -> None:
    """The platform admin and the noisy tenant's operator, with a known password."""
    with psycopg.connect(url, autocommit=True) as conn:
        hashed = None
        for email, role in ((ADMIN, "admin"), (OPERATOR, "operator")):
            user = account_store.get_user_by_email(conn, email)
            if user is None:
                hashed = hashed or accounts.hash_password(PASSWORD)
                user = account_store.insert_user(conn, email, hashed)
            account_store.upsert_membership(conn, user["id"], NOISY_ORGANIZATION, role)


def failed_job_id(url: str) -> int | None:
    """The newest failed job of the noisy tenant with the most attempts recorded."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT j.id FROM procrastinate_jobs j WHERE j.status = 'failed'"
            " AND j.args ->> 'organization_id' = %s AND j.attempts >= 3"
            " ORDER BY j.id DESC LIMIT 1",
            (str(NOISY_ORGANIZATION),),
        ).fetchone()
    return row[0] if row else None


# --- requests ----------------------------------------------------------------------------


def sign_in(app, email: str):
    """A test client signed in through the real form."""
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(
        "/login",
        data={"email": email, "password": PASSWORD, "csrf_token": token},
        headers={"Referer": "http://localhost/login"},
    )
    if response.status_code != 302:
        raise RuntimeError(f"signing in as {email} answered {response.status_code}")
    return client


def page_url(app, page: Page, job_id: int | None) -> str | None:
    """The page's first URL, or None when its view does not exist."""
    if page.endpoint not in app.view_functions:
        return None
    values = {"job_id": job_id} if page.detail else {}
    with app.test_request_context():
        from flask import url_for

        url = url_for(page.endpoint, **values)
    return f"{url}?{page.query}" if page.query else url


def older_link(page: str, current: int | None) -> str | None:
    """The URL of a page's "Older" link: the one so named (or rel="next"), else the link
    with the lowest cursor below the current one."""
    links = [
        (tag + text, url.replace("&amp;", "&"), int(cursor))
        for tag, url, cursor, text in CURSOR.findall(page)
    ]
    named = [link for link in links if re.search(r"older|rel=\"next\"", link[0], re.I)]
    lower = [link for link in links if current is None or link[2] < current]
    chosen = named or lower
    return min(chosen, key=lambda link: link[2])[1] if chosen else None


def follow_older(client, url: str, depth: int) -> tuple[str | None, int]:
    """The URL of page ``depth``, reached through each page's "Older" link, and its
    number; the last page and its number if the pages run out first (None on an error)."""
    for reached in range(1, depth):
        response = client.get(url)
        if response.status_code != 200:
            return None, reached
        cursor = re.search(r"[?&]before=(\d+)", url)
        older = older_link(response.get_data(as_text=True), cursor and int(cursor.group(1)))
        if older is None:
            return url, reached
        url = older
    return url, depth


def time_page(client, url: str, warmups: int, requests: int) -> dict:
    """p50 and p95 of the server time of ``url``, after warm-ups."""
    for _ in range(warmups):
        response = client.get(url)
        if response.status_code != 200:
            return {"status": response.status_code}
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            return {"status": response.status_code}
    return {
        "status": 200,
        "p50_ms": round(harness.percentile(times, 0.5), 2),
        "p95_ms": round(harness.percentile(times, 0.95), 2),
        "max_ms": round(max(times), 2),
    }


# --- plans -------------------------------------------------------------------------------


def plan_nodes(node: dict, depth: int = 0):
    """Every node of a JSON plan, with its depth."""
    yield depth, node
    for child in node.get("Plans", ()):
        yield from plan_nodes(child, depth + 1)


def explain(url: str, statements: list[tuple[str, object]]) -> list[dict]:
    """EXPLAIN ANALYZE each distinct statement (rolled back); its summary and seq scans."""
    seen, plans = set(), []
    with psycopg.connect(url, cursor_factory=psycopg.ClientCursor) as conn:
        for text, params in statements:
            text = text.decode() if isinstance(text, bytes) else text
            if text in seen or not text.strip():
                continue
            seen.add(text)
            try:
                with conn.cursor() as cur:
                    cur.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {text}", params)
                    (result,) = cur.fetchone()
            except psycopg.Error as exc:
                plans.append({"sql": text, "error": str(exc).strip()})
                continue
            finally:
                conn.rollback()
            top = result[0]
            nodes = list(plan_nodes(top["Plan"]))
            plans.append(
                {
                    "sql": text,
                    "execution_ms": top.get("Execution Time"),
                    "planning_ms": top.get("Planning Time"),
                    "nodes": [
                        {
                            "depth": depth,
                            "type": node["Node Type"],
                            "subplan": node.get("Subplan Name"),
                            "relation": node.get("Relation Name"),
                            "index": node.get("Index Name"),
                            "rows": node.get("Actual Rows"),
                            "loops": node.get("Actual Loops"),
                            "ms": node.get("Actual Total Time"),
                        }
                        for depth, node in nodes
                    ],
                    "seq_scans": sorted(
                        {
                            node["Relation Name"]
                            for _, node in nodes
                            if node["Node Type"] == "Seq Scan"
                            and node.get("Relation Name") in BIG_TABLES
                        }
                    ),
                }
            )
    return plans


# --- the run -------------------------------------------------------------------------------


def measure(url: str, warmups: int = WARMUPS, requests: int = REQUESTS, log=print) -> dict:
    """Time every page for each role on the seeded database at ``url``; plans included."""
    ensure_people(url)
    job_id = failed_job_id(url)
    pages = {}
    with recording_pool():
        app = create_app({"DATABASE_URL": url, "SECRET_KEY": harness.SECRET})
        try:
            clients = {"admin": sign_in(app, ADMIN), "operator": sign_in(app, OPERATOR)}
            for page in PAGES:
                pages[page.label] = measure_roles(
                    app, url, clients, page, job_id, warmups, requests, log
                )
        finally:
            webapp_db.get_db(app).close()
    return {"job_id": job_id, "pages": pages}


def measure_roles(app, url, clients, page: Page, job_id, warmups, requests, log) -> dict:
    """One page for each of its roles, or missing."""
    result = {"endpoint": page.endpoint, "roles": {}}
    first = page_url(app, page, job_id)
    if first is None or (page.detail and job_id is None):
        log(f"{page.label}: missing")
        return {**result, "missing": True}
    for role in page.roles:
        measured = measure_page(url, clients[role], page, first, warmups, requests)
        result["roles"][role] = measured
        log(f"{page.label} as {role}: {summary(measured)}")
    result["missing"] = all(r.get("status") == 404 for r in result["roles"].values())
    return result


def measure_page(url: str, client, page: Page, first: str, warmups: int, requests: int) -> dict:
    """One page for one role: its times and the plans of its statements."""
    target, reached = follow_older(client, first, page.depth)
    if target is None:
        return {"status": "no page", "reached": reached}
    result = {"url": target, **time_page(client, target, warmups, requests)}
    if reached < page.depth:
        result["last_page"] = reached  # fewer pages than asked for: the last one is timed
    if result["status"] != 200:
        return result
    with RECORDER.capture() as statements:
        client.get(target)
    plans = explain(url, statements)
    result["statements"] = len(statements)
    result["plans"] = plans
    result["seq_scans"] = sorted({t for p in plans for t in p.get("seq_scans", ())})
    result["sql_ms"] = round(sum(p.get("execution_ms") or 0 for p in plans), 2)
    return result


def passed(measured: dict) -> bool:
    """Whether a page met the target for one role: p95 within it, no seq scan."""
    return measured.get("status") == 200 and (
        measured["p95_ms"] <= TARGET_P95_MS and not measured["seq_scans"]
    )


def compact(result: dict) -> dict:
    """The result without the plans (bench/admin_plans.md has them), for JSON files."""
    pages = {
        label: {
            **page,
            "roles": {
                role: {k: v for k, v in measured.items() if k != "plans"}
                for role, measured in page["roles"].items()
            },
        }
        for label, page in result["pages"].items()
    }
    return {**result, "pages": pages}


def summary(result: dict) -> str:
    if result.get("status") != 200:
        return f"status {result.get('status')}" + (
            f" (reached page {result['reached']})" if "reached" in result else ""
        )
    scans = f", seq scan on {', '.join(result['seq_scans'])}" if result["seq_scans"] else ""
    last = f", page {result['last_page']} (the last)" if "last_page" in result else ""
    return (
        f"p50 {result['p50_ms']:.1f} ms, p95 {result['p95_ms']:.1f} ms,"
        f" {result['statements']} statements taking {result['sql_ms']:.1f} ms"
        f" under EXPLAIN ANALYZE{last}{scans}"
    )


def run(
    jobs: int = 1_000_000,
    database_url: str | None = None,
    requests: int = REQUESTS,
    warmups: int = WARMUPS,
    drop: bool = False,
    log=print,
) -> dict:
    """Prepare (or reuse) the seeded database and measure the pages on it."""
    url, seeded, created = prepare_database(database_url, jobs, log=log)
    try:
        measured = measure(url, warmups, requests, log=log)
    finally:
        if drop and database_url is None:
            drop_database(url)
    return {
        "jobs": jobs,
        "date": datetime.date.today().isoformat(),
        "seed": seeded,
        "database_created": created,
        "requests": requests,
        **measured,
    }


# --- reports -------------------------------------------------------------------------------


def cell(result: dict | None) -> str:
    if result is None:
        return "—"
    if result.get("status") != 200:
        return f"status {result.get('status')}"
    last = f" (page {result['last_page']}, the last)" if "last_page" in result else ""
    return f"{result['p50_ms']:.1f} / {result['p95_ms']:.1f}{last}"


def verdict(page: dict) -> str:
    if page.get("missing"):
        return "missing"
    roles = [r for r in page["roles"].values() if r.get("status") != 404]
    failed = [r for r in roles if not passed(r)]
    if not failed:
        return "met"
    scans = sorted({t for r in failed for t in r.get("seq_scans", ())})
    return "**missed**" + (f" (seq scan: {', '.join(scans)})" if scans else "")


def report(result: dict, machine: str | None = None) -> str:
    """The RESULTS.md section: one row per page."""
    seed = result["seed"]
    lines = [
        f"## Admin pages at {result['jobs']:,} jobs",
        "",
        f"- Date: {result['date']}",
        f"- Machine: {machine or harness.machine()}",
        f"- `python -m bench.bench_admin`: server time through Flask's test client (no"
        f" network), {WARMUPS} warm-ups then {result['requests']} requests a page, signed in"
        f" as a platform admin and as an operator of the noisiest organization"
        f" ({NOISY_ORGANIZATION}). Database: {seed.get('database_size')} (jobs"
        f" {seed.get('jobs_size')}, events {seed.get('events_size')}, attempts"
        f" {seed.get('attempts_size')}), seeded by `bench/seed_admin.py`"
        + (f" in {seed['seconds']:.0f} s." if seed.get("seconds") else "."),
        "- Plans of every statement: `bench/admin_plans.md`. A sequential scan of the jobs,"
        " events or attempts table fails the page.",
        "",
        "| page | admin p50 / p95 ms | operator p50 / p95 ms | target | |",
        "|---|---|---|---|---|",
    ]
    for label, page in result["pages"].items():
        if page.get("missing"):
            lines.append(
                f"| {label} | missing | missing | p95 ≤ {TARGET_P95_MS:.0f} ms | missing |"
            )
            continue
        roles = page["roles"]
        lines.append(
            f"| {label} | {cell(roles.get('admin'))} | {cell(roles.get('operator'))}"
            f" | p95 ≤ {TARGET_P95_MS:.0f} ms, no seq scan | {verdict(page)} |"
        )
    return "\n".join(lines) + "\n"


def plans_report(result: dict) -> str:
    """bench/admin_plans.md: each page's statements with their plans' outlines."""
    lines = [
        f"# Plans of the admin pages at {result['jobs']:,} jobs",
        "",
        f"Written by `python -m bench.bench_admin` on {result['date']}; regenerated each run.",
        "Each statement a page ran, with EXPLAIN (ANALYZE, BUFFERS) outlined: node type,"
        " relation and index, actual rows x loops, and actual total time.",
        "",
    ]
    for label, page in result["pages"].items():
        if page.get("missing"):
            lines += [f"## {label}", "", "missing", ""]
            continue
        for role, measured in page["roles"].items():
            lines += [
                f"## {label}, as {role}",
                "",
                f"`{measured.get('url', '')}`: {summary(measured)}",
                "",
            ]
            for number, plan in enumerate(measured.get("plans", ()), 1):
                lines += plan_lines(number, plan)
    return "\n".join(lines) + "\n"


def plan_lines(number: int, plan: dict) -> list[str]:
    sql_text = " ".join(plan["sql"].split())
    lines = [f"{number}. `{sql_text[:300]}{'…' if len(sql_text) > 300 else ''}`", ""]
    if "error" in plan:
        return [*lines, f"   EXPLAIN failed: {plan['error']}", ""]
    if plan["seq_scans"]:
        lines += [f"   **Seq Scan on {', '.join(plan['seq_scans'])}**", ""]
    lines.append(
        f"   execution {plan['execution_ms']:.2f} ms, planning {plan['planning_ms']:.2f} ms"
    )
    lines += ["", "   ```"]
    for node in plan["nodes"]:
        where = " on " + node["relation"] if node["relation"] else ""
        where += f" ({node['subplan']})" if node.get("subplan") else ""
        where += f" using {node['index']}" if node["index"] else ""
        lines.append(
            f"   {'  ' * node['depth']}{node['type']}{where}: {node['rows']} rows"
            f" x {node['loops']}, {node['ms']:.3f} ms"
        )
    return [*lines, "   ```", ""]


def write_results(section: str) -> None:
    """Put the section into RESULTS.md, in place of the last one, before the notes."""
    path = OUT / "RESULTS.md"
    marker = "<!-- notes -->"
    text = path.read_text() if path.exists() else ""
    head, _, notes = text.partition(marker)
    start = head.find("## Admin pages at ")
    if start >= 0:
        head = head[:start]
    path.write_text(head.rstrip("\n") + "\n\n" + section + "\n" + marker + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--database-url", help="a database to seed or reuse (kept)")
    parser.add_argument("--requests", type=int, default=REQUESTS)
    parser.add_argument("--warmups", type=int, default=WARMUPS)
    parser.add_argument("--drop", action="store_true", help="drop the bench's database after")
    parser.add_argument("--write", action="store_true", help="update bench/RESULTS.md")
    options = parser.parse_args()
    result = run(
        options.jobs, options.database_url, options.requests, options.warmups, options.drop
    )
    PLANS.write_text(plans_report(result))
    section = report(result)
    if options.write:
        write_results(section)
    (OUT / "admin_results.json").write_text(json.dumps(compact(result), indent=1) + "\n")
    print(section)


if __name__ == "__main__":
    main()
