"""Loads /v1/events of the demo API into PostgreSQL with dlt's rest_api source, for tests/bench/extract.sh.

Usage: dlt_events.py API_URL DATABASE_URL (token in ELT_DEMO_API_TOKEN). dlt's fastest documented settings
for this load, as measured on this machine (../shared/FACTS.md): the csv loader file format (COPY), 2
normalize workers and 4 load workers; the same page size (5000) and cursor pagination elt uses.
"""

import os
import sys
from urllib.parse import parse_qs, urlparse

os.environ.setdefault("NORMALIZE__WORKERS", "2")
os.environ.setdefault("LOAD__WORKERS", "4")
os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")

import dlt  # noqa: E402
from dlt.sources.rest_api import rest_api_source  # noqa: E402


def credentials(database_url: str) -> dict:
    """dlt's credentials for the database of a libpq URL, over TCP on loopback as the role the benchmark
    created for dlt (DLT_BENCH_USER; its password in DLT_BENCH_PASSWORD, never on a command line)."""
    u = urlparse(database_url)
    q = parse_qs(u.query)
    return {
        "database": u.path.lstrip("/"),
        "username": os.environ["DLT_BENCH_USER"],
        "password": os.environ["DLT_BENCH_PASSWORD"],
        "host": "127.0.0.1",
        "port": int(q.get("port", [u.port or 5432])[0]),
    }


def main() -> None:
    api_url, database_url = sys.argv[1], sys.argv[2]
    source = rest_api_source(
        {
            "client": {
                "base_url": api_url,
                "auth": {"type": "bearer", "token": os.environ["ELT_DEMO_API_TOKEN"]},
                "paginator": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
            },
            "resources": [
                {
                    "name": "events",
                    "endpoint": {"path": "v1/events", "params": {"limit": 5000}, "data_selector": "data"},
                    "primary_key": "id",
                    "write_disposition": "append",
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="elt_bench",
        pipelines_dir=os.path.join(os.environ.get("TMPDIR", "/tmp"), "elt-bench-dlt"),
        destination=dlt.destinations.postgres(credentials=credentials(database_url)),
        dataset_name="dlt_bench",
    )
    info = pipeline.run(source, loader_file_format="csv")
    print(info)


if __name__ == "__main__":
    main()
