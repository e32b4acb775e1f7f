"""Superset compatibility probe: connect as a tenant through SQLAlchemy + psycopg2 (Superset's own database
layer), make the inspector calls Superset makes when an admin adds a database and an analyst adds a dataset,
run a Superset-style DATE_TRUNC time series and a top-N, and print everything as JSON on stdout.

Usage: ELT_TENANT_URI=postgresql+psycopg2://... /usr/bin/python3 compat.py

Exit status 2 when SQLAlchemy or psycopg2 is missing (run it with the Python of the Superset venv: make superset-install).
"""
import json
import os
import sys

try:
    import psycopg2  # noqa: F401  (Superset's driver for postgresql+psycopg2)
    import sqlalchemy
    from sqlalchemy import create_engine, inspect, text
except ImportError as e:
    print(f"missing Python module: {e.name} (run with the Superset venv's Python: make superset-install)", file=sys.stderr)
    sys.exit(2)


def main():
    engine = create_engine(os.environ["ELT_TENANT_URI"])
    insp = inspect(engine)
    out = {"sqlalchemy": sqlalchemy.__version__}
    out["schemas"] = sorted(insp.get_schema_names())
    # The tenant's own schema, the only one on its search path: what Superset picks by default.
    schema = insp.default_schema_name
    out["default_schema"] = schema
    out["tables"] = sorted(insp.get_table_names(schema=schema))
    views = sorted(insp.get_view_names(schema=schema))
    out["views"] = views
    out["columns"] = {}
    out["uncommented"] = []
    for v in views:
        cols = insp.get_columns(v, schema=schema)
        out["columns"][v] = {c["name"]: str(c["type"]) for c in cols}
        # What Superset reads when it adds a dataset; none may fail on a view.
        insp.get_pk_constraint(v, schema=schema)
        insp.get_foreign_keys(v, schema=schema)
        insp.get_indexes(v, schema=schema)
        if not (insp.get_table_comment(v, schema=schema) or {}).get("text"):
            out["uncommented"].append(v)
        out["uncommented"] += [f"{v}.{c['name']}" for c in cols if not c.get("comment")]

    with engine.connect() as conn:
        # A Superset time-series chart: DATE_TRUNC on the time column, a metric, ordered by time.
        q = lambda sql: text(sql.replace("{schema}", '"' + schema + '"'))
        rows = conn.execute(q(
            "SELECT DATE_TRUNC('week', occurred_at) AS __timestamp, COUNT(*) AS count "
            "FROM {schema}.events GROUP BY DATE_TRUNC('week', occurred_at) ORDER BY __timestamp LIMIT 10000"
        )).fetchall()
        out["events_by_week"] = [[r[0].isoformat(), r[1]] for r in rows]
        rows = conn.execute(q(
            "SELECT DATE_TRUNC('day', day) AS __timestamp, SUM(active_users) AS active_users "
            "FROM {schema}.active_users_daily GROUP BY DATE_TRUNC('day', day) ORDER BY __timestamp"
        )).fetchall()
        out["active_users_by_day"] = len(rows)
        # A top-N bar chart.
        rows = conn.execute(q(
            "SELECT feature, SUM(events) AS events FROM {schema}.feature_usage_daily "
            "GROUP BY feature ORDER BY events DESC LIMIT 10"
        )).fetchall()
        out["top_features"] = [[r[0], int(r[1])] for r in rows]
        # Every customer id and id prefix the tenant can see, to prove they are its own.
        out["customers"] = [r[0] for r in conn.execute(q("SELECT customer_id FROM {schema}.customers"))]
        out["user_prefixes"] = sorted({r[0].split("_u")[0] for r in conn.execute(q("SELECT user_id FROM {schema}.users"))})
        out["event_prefixes"] = sorted({r[0].split("_e")[0] for r in conn.execute(q("SELECT event_id FROM {schema}.events"))})
    json.dump(out, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
