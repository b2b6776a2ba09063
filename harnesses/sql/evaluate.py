"""Immutable harness: time query.sql on a generated SQLite database and check its answer.

Each run builds the same database in a temporary file (random.Random(SEED), ~0.2 s):
customers (5,000: id, name, region, signup_date), products (500: id, category, price_cents)
and orders (50,000 over 2023-2024: id, customer_id, product_id, order_date 'YYYY-MM-DD',
quantity, status). REFERENCE answers the question in query.sql's header on the bare tables.
Then settings.py's indexes, ANALYZE and pragmas are applied (set-up, untimed), and query.sql
runs WARMUP + RUNS times on a read-only connection; exec_ms is the median of the RUNS.
The clock is the process's CPU time (the query runs in this process, on one thread, from
the page cache), which other load on the machine disturbs far less than wall time;
METAEXP_CLOCK=wall times wall-clock instead.

Prints the metric contract block that metaexp reads:
    ---
    exec_ms: 3.21
    correct: 1
A result that differs from the reference (as a multiset of rows) prints `correct: 0` and exits
1: a hard constraint. Until metaexp's objective can declare constraints, the non-zero exit makes
metaexp record the try as a crash, so a wrong query is never kept however fast it is.
"""

import importlib.util
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta

SEED = 2024
N_CUSTOMERS, N_PRODUCTS, N_ORDERS = 5_000, 500, 50_000
REGIONS = ["north", "south", "east", "west", "central", "islands"]
CATEGORIES = ["books", "games", "garden", "kitchen", "music", "sports", "tools", "toys"]
STATUSES = ["shipped"] * 7 + ["pending", "cancelled", "returned"]
WARMUP, RUNS = 2, 15
CLOCK = time.perf_counter if os.environ.get("METAEXP_CLOCK", "cpu") == "wall" else time.process_time

REFERENCE = """
SELECT c.region, COUNT(DISTINCT o.customer_id), SUM(o.quantity * p.price_cents)
FROM orders AS o, customers AS c, products AS p
WHERE c.id = o.customer_id AND p.id = o.product_id AND o.status = 'shipped'
  AND o.order_date >= '2024-03-01' AND o.order_date < '2024-04-01'
GROUP BY c.region
"""

INDEXES = {
    "INDEX_ORDERS_DATE": "CREATE INDEX orders_date ON orders(order_date)",
    "INDEX_ORDERS_STATUS_DATE": (
        "CREATE INDEX orders_status_date ON orders(status, order_date, customer_id, product_id, quantity)"
    ),
    "INDEX_ORDERS_CUSTOMER": "CREATE INDEX orders_customer ON orders(customer_id)",
}


def build(path: str) -> None:
    rng = random.Random(SEED)
    pick = rng.random  # int(pick() * n) is a uniform draw from range(n), faster than randrange
    day0 = date(2023, 1, 1)
    days = [str(day0 + timedelta(days=k)) for k in range(731)]  # 2023-01-01 .. 2024-12-31
    signups = [str(day0 - timedelta(days=k)) for k in range(1, 1501)]
    con = sqlite3.connect(path)
    con.executescript(
        """
        PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
        CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT, region TEXT, signup_date TEXT);
        CREATE TABLE products (id INTEGER PRIMARY KEY, category TEXT, price_cents INTEGER);
        CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, product_id INTEGER,
                             order_date TEXT, quantity INTEGER, status TEXT);
        """
    )
    con.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?)",
        [
            (i, f"customer-{i:05d}", REGIONS[int(pick() * len(REGIONS))], signups[int(pick() * len(signups))])
            for i in range(1, N_CUSTOMERS + 1)
        ],
    )
    con.executemany(
        "INSERT INTO products VALUES (?, ?, ?)",
        [
            (i, CATEGORIES[int(pick() * len(CATEGORIES))], 199 + int(pick() * 19_801))
            for i in range(1, N_PRODUCTS + 1)
        ],
    )
    con.executemany(
        "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?)",
        [
            (
                i,
                1 + int(pick() * N_CUSTOMERS),
                1 + int(pick() * N_PRODUCTS),
                days[int(pick() * len(days))],
                1 + int(pick() * 5),
                STATUSES[int(pick() * len(STATUSES))],
            )
            for i in range(1, N_ORDERS + 1)
        ],
    )
    con.commit()
    con.close()


def load_settings():
    spec = importlib.util.spec_from_file_location("settings", os.path.join(os.getcwd(), "settings.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def setup(path: str, settings) -> None:
    con = sqlite3.connect(path)
    for name, ddl in INDEXES.items():
        if float(getattr(settings, name)) >= 0.5:
            con.execute(ddl)
    if float(settings.ANALYZE) >= 0.5:
        con.execute("ANALYZE")
    con.commit()
    con.close()


def run_query(con: sqlite3.Connection, sql: str, batch: int) -> list[tuple]:
    cur = con.execute(sql)
    rows = []
    while chunk := cur.fetchmany(batch):
        rows.extend(chunk)
    return rows


def main() -> int:
    settings = load_settings()
    with open(os.path.join(os.getcwd(), "query.sql"), encoding="utf-8") as f:
        sql = f.read()
    with tempfile.TemporaryDirectory(prefix="metaexp-sql-") as tmp:
        path = os.path.join(tmp, "shop.db")
        t0 = time.perf_counter()
        build(path)
        con = sqlite3.connect(path)
        reference = Counter(con.execute(REFERENCE).fetchall())
        con.close()
        setup(path, settings)
        setup_s = time.perf_counter() - t0
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # the query cannot change the data
        con.execute(f"PRAGMA cache_size = {-max(1, round(float(settings.CACHE_SIZE_KB)))}")
        con.execute(f"PRAGMA mmap_size = {max(0, round(float(settings.MMAP_SIZE_MB))) * 1024 * 1024}")
        batch = max(1, round(float(settings.FETCH_BATCH)))
        times, results = [], []
        for i in range(WARMUP + RUNS):
            t = CLOCK()
            rows = run_query(con, sql, batch)
            if i >= WARMUP:
                times.append(CLOCK() - t)
            results.append(rows)
        plan = con.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        con.close()
    correct = all(Counter(rows) == reference for rows in results)
    print("query plan:")
    for row in plan:
        print("   ", row[-1])
    print(f"setup_s: {setup_s:.3f}  (build, reference, indexes; untimed)")
    print("---")
    print(f"exec_ms: {1000 * statistics.median(times):.3f}")
    print(f"correct: {int(correct)}")
    if not correct:
        got = Counter(results[-1])
        print(
            f"wrong result: {sum((got - reference).values())} unexpected rows, "
            f"{sum((reference - got).values())} missing; expected {sorted(reference)}",
            file=sys.stderr,
        )
        return 1  # a hard constraint: metaexp records a crash and never keeps this try
    return 0


if __name__ == "__main__":
    sys.exit(main())
