// Package demoapi is a synthetic, deterministic product-usage export API: the source that elt's demo,
// tests and benchmarks extract from.
//
// # Data
//
// A seed and a few sizes (Options) determine everything. Customers and their users are small and built
// up front; events are not stored at all: event i is a pure function of the seed and i, so a server with
// tens of millions of events starts instantly and uses a few megabytes. The data is skewed the way real
// usage is: some customers are much bigger than others, a few users are power users and some are dormant,
// a dozen features have very different popularity (and each customer its own mix), weekdays and office
// hours are busier, usage grows over the span and users keep joining (a user's events always come after
// its created_at).
//
// The same Options serve the same bytes on every run (the generator uses integer hashing; the few
// floating-point weights computed at start-up could differ in the last bit on another CPU architecture).
//
// Every listing is served in (updated_at, id) order. Ids are fixed-width (cus_0001, usr_0001_00042,
// evt_000000000001) so they sort as text, and timestamps are RFC 3339 UTC with second precision. With
// Options.Updates, some events are sent again at the end of the stream with the same id, a later
// updated_at and revised properties ("revision": 2), as a source that edits records would.
//
// # HTTP API
//
// Data endpoints need Authorization: Bearer <token>; otherwise they answer 401 {"error":"invalid token"}.
//
//	GET /healthz                             200 ok (no auth)
//	GET /v1/customers
//	GET /v1/users                            also customer_id=cus_0001
//	GET /v1/customers/{customer_id}/users
//	GET /v1/events                           also customer_id=cus_0001
//
// Every listing takes updated_since (RFC 3339, inclusive) and limit (default 1000, at most 10000) and answers
// {"data":[...],"next_cursor":"<opaque>"|null,"has_more":bool}; pass next_cursor back as cursor. The same
// listings are served in other pagination styles under a path prefix (/page/v1/..., /offset/v1/...,
// /next/v1/..., /link/v1/...) and as NDJSON (/v1/events.ndjson or Accept: application/x-ndjson); see
// paginate.go and docs/demo-api.md.
//
// # Faults
//
// Faults hit every Nth authenticated data request, counted by the server (Server.Requests): 429 with
// Retry-After, 500, a 200 whose body stops in the middle of a record before the connection closes, and a
// delay. They are deterministic, so a test knows exactly which request fails.
//
// # Tests of other packages
//
// A *Server is an http.Handler, so httptest.NewServer(srv) serves it; Customers, Users, EventCount and
// Event are the source of truth, and each record's AppendJSON renders the exact bytes the API sends.
package demoapi
