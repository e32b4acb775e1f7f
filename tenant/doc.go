// Package tenant gives each customer a PostgreSQL login that reads only that customer's rows, and proves it.
//
// # Roles
//
// Migration 005_tenants.sql creates three roles shared by the cluster: elt_owner (no login) owns every object
// of elt's schemas; elt_runner (the login elt runs as; member of elt_owner, createrole, neither superuser nor
// bypassrls) creates and drops tenant logins; elt_tenant (no login) is the group whose only privileges are
// usage on schema analytics and select on its views. Each tenant login has an opaque random name (tenant_
// and 16 hex digits), belongs to elt_tenant, and is mapped to its customer in elt.tenants, which tenants
// cannot read.
//
// # Isolation
//
// Every relation of analytics is a security_barrier view owned by elt_owner that keeps the rows of the
// customer mapped to session_user. The session user is the login of the connection: neither SET ROLE nor a
// setting changes it, so a tenant with raw SQL cannot become another customer. The views being security
// barriers, a tenant's own predicates (a function that raises a notice, a division by zero) only ever see rows
// the view already filtered.
//
// # Passwords
//
// A password is never sent to the server as text: Add and Rotate compute its SCRAM-SHA-256 verifier here and
// send that, so it cannot appear in the server log or in pg_stat_activity.
//
// # Check
//
// Check verifies a live database: the roles' attributes and memberships, that everything a tenant can read
// is a barrier view filtered by the map (or a table with forced row-level security), that tenants can execute
// no SECURITY DEFINER function without a fixed search_path, what PUBLIC may still do, and, logged in as a
// short-lived probe login, that the rows a tenant sees equal the owner's rows for that customer.
package tenant
