# Superset's configuration as make superset and the tests run it (superset/superset.sh sets
# SUPERSET_CONFIG_PATH to this file). Everything secret comes from files in the state folder, named by
# environment variables: nothing secret is in this file, the environment or a command line.
import os


def _read(var):
    with open(os.environ[var], encoding="utf-8") as f:
        return f.read().strip()


# Signs sessions and encrypts the Databases' passwords in the metadata database.
SECRET_KEY = _read("ELT_SUPERSET_SECRET_KEY_FILE")

# The metadata database: PostgreSQL (with Superset's default SQLite, a second tenant's dataset on a view of
# the same name fails: UNIQUE constraint failed: tables.table_name).
SQLALCHEMY_DATABASE_URI = _read("ELT_SUPERSET_METADATA_URI_FILE")

# Local use on 127.0.0.1: no HTTPS redirects or content security policy from Talisman.
TALISMAN_ENABLED = False
CONTENT_SECURITY_POLICY_WARNING = False

# elt provisions through the REST API (roles, users, permissions): on by default in 6.1, said here anyway.
FAB_ADD_SECURITY_API = True

# The marts change once per elt refresh: charts may be cached for an hour.
DATA_CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache", "CACHE_DEFAULT_TIMEOUT": 3600}

# No example data, no telemetry.
SUPERSET_LOAD_EXAMPLES = False
SCARF_ANALYTICS = False


# Superset lists users and roles to anyone who may read dashboards or charts (the owner and role pickers:
# /api/v1/dashboard/related/roles, /api/v1/chart/related/owners, ...). Every tenant has a role and users named
# after its customer, so unfiltered lists would show each customer the others: a user other than an admin
# sees only itself and its own roles.
def _own_roles(query):
    from flask import g
    from superset import security_manager

    user = getattr(g, "user", None)
    if security_manager.is_admin():
        return query
    ids = [r.id for r in getattr(user, "roles", None) or []]
    return query.filter(security_manager.role_model.id.in_(ids))


def _own_user(query):
    from flask import g
    from superset import security_manager

    user = getattr(g, "user", None)
    if security_manager.is_admin():
        return query
    return query.filter(security_manager.user_model.id == getattr(user, "id", None))


EXTRA_RELATED_QUERY_FILTERS = {"role": _own_roles, "user": _own_user}
