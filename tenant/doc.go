// Package tenant gives each customer a PostgreSQL login that reads only that customer's data, builds for it
// a schema of its own from the project's declarations, and proves that nothing it can observe depends on
// another customer's data.
//
// # The layer
//
// A project declares its tenant key (elt.yaml, tenants: key:) and the relations tenants may read (tenants:
// publish:), each a list of columns of a table partitioned by list on the key. For every customer with a
// login elt builds (Add, Sync):
//
//   - a partition of every table of the project's schemas partitioned by list on the key, holding the
//     customer's rows (customers without a login share each table's default partition);
//   - a schema named like the login (tenant_ and 16 random hex digits), the only one on its search path;
//   - in it, one view per published relation, reading the declared columns of the customer's own partition.
//
// A tenant's queries therefore name only relations holding its own rows: the planner plans them with that
// tenant's statistics, row estimates, costs and sizes alone, EXPLAIN shows only its partitions, and a purge
// is a drop of its partitions. What the catalogs would still tell about other tenants (row and page counts,
// sizes, statistics views, partition bounds, transaction ids, other sessions) is revoked from PUBLIC by
// elt_dba.harden_catalogs. Layer and LoadLayer read the declarations; Check proves the result.
//
// # Roles
//
// The elt track's migration 003_roles.sql creates elt_owner (owns everything, no login), elt_runner (the
// login elt runs as: member of elt_owner, not createrole), elt_tenant (the group of tenant logins, with no
// privileges) and elt_tenant_admin (no login, no members, createrole), which owns the functions of schema
// elt_admin: the only way tenant logins are created, configured, signalled and dropped, with fixed attributes.
//
// # Passwords
//
// A password is never sent to the server as text: Add and Rotate compute its SCRAM-SHA-256 verifier here and
// send that, so it cannot appear in the server log or in pg_stat_activity.
//
// # Guard
//
// Statement, idle-in-transaction and transaction time limits are session settings a tenant can change in its
// own session. Guard, run beside the database (elt tenant guard), enforces them anyway by cancelling and
// ending tenant sessions over their login's limits. temp_file_limit is a superuser setting a tenant cannot
// lift; the connection limit is a role attribute it cannot change.
package tenant
