package demoapi

import (
	"fmt"
	"log/slog"
	"time"
)

// Default sizes, used for zero fields of Options and as the binary's flag defaults.
const (
	DefaultCustomers        = 3
	DefaultUsersPerCustomer = 40
	DefaultEvents           = 20000
	DefaultDays             = 90
	DefaultToken            = "demo-token"
)

// Size limits: ids are fixed-width (cus_NNNN, usr_NNNN_NNNNN, evt_NNNNNNNNNNNN), so they sort as text.
const (
	MaxCustomers        = 9999
	MaxUsersPerCustomer = 99999
	MaxEvents           = 999_999_999_999
	MaxDays             = 36500
	// MaxUsers bounds Customers × UsersPerCustomer: users are held in memory.
	MaxUsers = 2_000_000
)

// Page sizes accepted by every pagination style; a larger limit is clamped to MaxLimit.
const (
	DefaultLimit = 1000
	MaxLimit     = 10000
)

// Options configure a Server. Zero fields take the defaults named in each comment, so Options{} is the demo.
type Options struct {
	// Customers is the number of customers (default 3).
	Customers int
	// UsersPerCustomer is the average number of users per customer (default 40); customer sizes are skewed.
	UsersPerCustomer int
	// Events is the number of original events (default 20000; a negative value means none).
	Events int64
	// Days is the span of event time ending at Now (default 90).
	Days int
	// Seed selects the data set; the same Options always produce the same bytes. Zero is a valid seed.
	Seed uint64
	// Now is the end of the event time span, truncated to the second (default: today 00:00 UTC).
	Now time.Time
	// Updates is how many events are re-sent as updated versions after all originals (same id, later
	// updated_at, changed properties). It is capped at the number of events.
	Updates int64
	// Token is the bearer token clients must send (default "demo-token").
	Token string
	// Faults are the failures the server injects into data requests.
	Faults Faults
	// Logger, when set, receives one line per request. The server never logs the token.
	Logger *slog.Logger
}

// Faults inject deterministic failures. Every authenticated request to a data endpoint (everything under
// /v1/ and its style prefixes) is numbered from 1; a fault with Every N hits requests N, 2N, 3N, ...
// When several faults hit the same request, slowness comes first, then 429, then 500, then truncation.
type Faults struct {
	// Every429 makes every Nth request a 429 Too Many Requests with a Retry-After header (0: never).
	Every429 int
	// RetryAfter is sent in the Retry-After header of a 429, rounded up to whole seconds.
	// Zero means one second; a negative value sends "Retry-After: 0".
	RetryAfter time.Duration
	// Every500 makes every Nth request a 500 Internal Server Error (0: never).
	Every500 int
	// EveryTruncate makes every Nth request a 200 whose body is cut in the middle of a record, after which
	// the connection is closed (0: never).
	EveryTruncate int
	// Slow is a delay before the response (0: none). It ends early if the client goes away.
	Slow time.Duration
	// SlowEvery applies Slow to every Nth request only (0: every request).
	SlowEvery int
}

// Validate reports the first option out of range. New panics on the same errors.
func (o Options) Validate() error { return o.withDefaults().validate() }

// validate reports the first option out of range in o, whose defaults are already filled in.
func (o Options) validate() error {
	switch {
	case o.Customers < 1 || o.Customers > MaxCustomers:
		return fmt.Errorf("customers must be between 1 and %d, got %d", MaxCustomers, o.Customers)
	case o.UsersPerCustomer < 1 || o.UsersPerCustomer > MaxUsersPerCustomer:
		return fmt.Errorf("users per customer must be between 1 and %d, got %d", MaxUsersPerCustomer, o.UsersPerCustomer)
	case o.Customers*o.UsersPerCustomer > MaxUsers:
		return fmt.Errorf("customers × users per customer must be at most %d, got %d", MaxUsers, o.Customers*o.UsersPerCustomer)
	case o.Events > MaxEvents:
		return fmt.Errorf("events must be at most %d, got %d", int64(MaxEvents), o.Events)
	case o.Days < 1 || o.Days > MaxDays:
		return fmt.Errorf("days must be between 1 and %d, got %d", MaxDays, o.Days)
	case o.Updates < 0:
		return fmt.Errorf("updates must not be negative, got %d", o.Updates)
	case o.Now.Year() < 1970+o.Days/365+3 || o.Now.Year() > 9000:
		return fmt.Errorf("now %s is out of range", o.Now.Format(time.RFC3339))
	case o.Faults.Every429 < 0 || o.Faults.Every500 < 0 || o.Faults.EveryTruncate < 0 || o.Faults.SlowEvery < 0 || o.Faults.Slow < 0:
		return fmt.Errorf("fault settings must not be negative")
	}
	return nil
}

// withDefaults fills zero fields and normalises the rest.
func (o Options) withDefaults() Options {
	if o.Customers == 0 {
		o.Customers = DefaultCustomers
	}
	if o.UsersPerCustomer == 0 {
		o.UsersPerCustomer = DefaultUsersPerCustomer
	}
	switch {
	case o.Events == 0:
		o.Events = DefaultEvents
	case o.Events < 0:
		o.Events = 0
	}
	if o.Days == 0 {
		o.Days = DefaultDays
	}
	if o.Now.IsZero() {
		o.Now = time.Now().UTC().Truncate(24 * time.Hour)
	}
	o.Now = o.Now.UTC().Truncate(time.Second)
	if o.Updates > o.Events {
		o.Updates = o.Events
	}
	if o.Token == "" {
		o.Token = DefaultToken
	}
	return o
}

// retryAfterSeconds is the Retry-After header value.
func (f Faults) retryAfterSeconds() int64 {
	switch {
	case f.RetryAfter == 0:
		return 1
	case f.RetryAfter < 0:
		return 0
	}
	return int64((f.RetryAfter + time.Second - 1) / time.Second)
}
