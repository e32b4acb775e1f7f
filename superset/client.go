// Package superset makes an Apache Superset match elt's tenants through Superset's REST API: per tenant a
// Database that logs in as the tenant's own PostgreSQL login, a role that may use only that Database's
// tenant schema, users with that role, one dataset per published relation (with the relation's and its
// columns' comments) and a starter dashboard built from a template of the project (see Sync).
package superset

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// Client talks to one Superset as one user. Its methods keep the chain of errors: an *APIError for an
// answer that is not a success, with the method, path, status and Superset's message.
type Client struct {
	base  *url.URL
	http  *http.Client
	token string // the access token of /api/v1/security/login
	csrf  string // the CSRF token, bound to the session cookie in the jar
}

// APIError is an answer of Superset that is not a success.
type APIError struct {
	Method, Path string
	Status       int
	Message      string // Superset's message, or the start of the body
	Type         string // Superset's error_type, e.g. CONNECTION_INVALID_PASSWORD_ERROR, when it gives one
}

func (e *APIError) Error() string {
	return fmt.Sprintf("superset %s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), e.Message)
}

// IsStatus reports whether err is an *APIError with the given status.
func IsStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}

// loginPath is where Login posts the user's credentials.
const loginPath = "/api/v1/security/login"

// transport drops a kept-alive connection after 1 s idle. Gunicorn, which serves Superset, closes one after
// its --keep-alive (2 s unless set): a request sent on a connection the server is closing at that moment
// fails with EOF, and Go resends only requests it knows to be idempotent. Closing first avoids the race.
var transport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.IdleConnTimeout = time.Second
	return t
}()

// Login logs in to the Superset at base as user (database authentication) and fetches a CSRF token.
func Login(ctx context.Context, base, user, password string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("superset URL %q: want http(s)://host[:port]", base)
	}
	jar, _ := cookiejar.New(nil)
	c := &Client{base: u, http: &http.Client{Jar: jar, Timeout: 2 * time.Minute, Transport: transport}}
	var login struct {
		AccessToken string `json:"access_token"`
	}
	err = c.do(ctx, http.MethodPost, loginPath, nil,
		map[string]any{"username": user, "password": password, "provider": "db", "refresh": false}, &login)
	if err != nil {
		return nil, fmt.Errorf("log in to Superset at %s as %s: %w", u, user, err)
	}
	c.token = login.AccessToken
	var csrf struct {
		Result string `json:"result"`
	}
	if err := c.do(ctx, http.MethodGet, "/api/v1/security/csrf_token/", nil, nil, &csrf); err != nil {
		return nil, fmt.Errorf("superset CSRF token: %w", err)
	}
	c.csrf = csrf.Result
	return c, nil
}

// URL is the address of the Superset.
func (c *Client) URL() string { return c.base.String() }

// Call sends one request to the REST API (path from /api/v1/...), as do does: for callers and tests that
// read what Sync does not.
func (c *Client) Call(ctx context.Context, method, path string, query *Rison, body, out any) error {
	return c.do(ctx, method, path, query, body, out)
}

// do sends one request: query (a rison value for q, or nil), body (JSON, or nil); decodes a success's
// body into out (when not nil).
func (c *Client) do(ctx context.Context, method, path string, query *Rison, body, out any) error {
	u := *c.base
	p, raw, _ := strings.Cut(path, "?")
	u.Path, u.RawQuery = c.base.Path+p, raw
	if query != nil {
		v, _ := url.ParseQuery(raw)
		v.Set("q", query.String())
		u.RawQuery = v.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if path == loginPath {
		// Logging in twice does no harm: the header lets Go resend it on a connection lost before the answer.
		// A key of this call's own, so nothing that caches by key could hand one login's answer to another.
		req.Header.Set("Idempotency-Key", rand.Text())
	}
	if c.csrf != "" {
		req.Header.Set("X-CSRFToken", c.csrf)
		req.Header.Set("Referer", c.base.String())
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("superset %s %s: %w (is Superset running at %s?)", method, path, err, c.base)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("superset %s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg, typ := message(b)
		return &APIError{Method: method, Path: path, Status: resp.StatusCode, Message: msg, Type: typ}
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("superset %s %s: answer: %w", method, path, err)
	}
	return nil
}

// message is what Superset says in an error body: its message or errors, else the start of the body; and
// the error_type of its first error, if any.
func message(b []byte) (string, string) {
	var m struct {
		Message any `json:"message"`
		Msg     any `json:"msg"`
		Errors  []struct {
			Message string `json:"message"`
			Type    string `json:"error_type"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &m) == nil {
		typ := ""
		if len(m.Errors) > 0 {
			typ = m.Errors[0].Type
		}
		switch {
		case m.Message != nil:
			if s, ok := m.Message.(string); ok {
				return s, typ
			}
			j, _ := json.Marshal(m.Message)
			return string(j), typ
		case m.Msg != nil:
			return fmt.Sprint(m.Msg), typ
		case len(m.Errors) > 0:
			return m.Errors[0].Message, typ
		}
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s, ""
}

// Rison is a value of Superset's q parameter, in rison (https://github.com/Nanonid/rison): an object of
// keys in order.
type Rison struct {
	keys []string
	vals []any
}

// Q starts a rison object.
func Q() *Rison { return &Rison{} }

// Set adds key: v (a string, int, bool, []any, *Rison or [][3]string of filters col, opr, value).
func (r *Rison) Set(key string, v any) *Rison {
	r.keys = append(r.keys, key)
	r.vals = append(r.vals, v)
	return r
}

// Filter adds a filter (col, opr, value) to the object's filters list.
func (r *Rison) Filter(col, opr string, value any) *Rison {
	f := Q().Set("col", col).Set("opr", opr).Set("value", value)
	for i, k := range r.keys {
		if k == "filters" {
			r.vals[i] = append(r.vals[i].([]any), f)
			return r
		}
	}
	return r.Set("filters", []any{f})
}

func (r *Rison) String() string {
	var b strings.Builder
	risonValue(&b, r)
	return b.String()
}

func risonValue(b *strings.Builder, v any) {
	switch v := v.(type) {
	case *Rison:
		b.WriteByte('(')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(k)
			b.WriteByte(':')
			risonValue(b, v.vals[i])
		}
		b.WriteByte(')')
	case []any:
		b.WriteString("!(")
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			risonValue(b, x)
		}
		b.WriteByte(')')
	case bool:
		if v {
			b.WriteString("!t")
		} else {
			b.WriteString("!f")
		}
	case int:
		fmt.Fprint(b, v)
	case string:
		// Always quoted: ! and ' are escaped with !.
		b.WriteByte('\'')
		b.WriteString(strings.NewReplacer("!", "!!", "'", "!'").Replace(v))
		b.WriteByte('\'')
	default:
		panic(fmt.Sprintf("rison: %T", v))
	}
}

// list fetches every item of a list endpoint (path ends with /), page by page, with the filters of q; the
// security endpoints (roles, users, permissions), which can hold thousands, in the order of id. It stops at
// an empty page or when it has count items, whatever page size the server allows.
func list[T any](ctx context.Context, c *Client, path string, q *Rison) ([]T, error) {
	var all []T
	for page := 0; ; page++ {
		qq := Q()
		if q != nil {
			qq.keys, qq.vals = append(qq.keys, q.keys...), append(qq.vals, q.vals...)
		}
		if strings.HasPrefix(path, "/api/v1/security/") {
			qq.Set("order_column", "id").Set("order_direction", "asc")
		}
		qq.Set("page", page).Set("page_size", 100)
		var res struct {
			Count  int `json:"count"`
			Result []T `json:"result"`
		}
		if err := c.do(ctx, http.MethodGet, path, qq, nil, &res); err != nil {
			return nil, err
		}
		all = append(all, res.Result...)
		if len(res.Result) == 0 || len(all) >= res.Count {
			return all, nil
		}
	}
}

// create POSTs body to a collection path and returns the id of the object made.
func (c *Client) create(ctx context.Context, path string, body any) (int, error) {
	var res struct {
		ID int `json:"id"`
	}
	err := c.do(ctx, http.MethodPost, path, nil, body, &res)
	return res.ID, err
}

// show reads one object: the result of GET path.
func show[T any](ctx context.Context, c *Client, path string) (T, error) {
	var res struct {
		Result T `json:"result"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, nil, &res)
	return res.Result, err
}

// find is the item of list path whose col is exactly value (key reads it of an item), or nil.
func find[T any](ctx context.Context, c *Client, path, col, value string, key func(T) string) (*T, error) {
	items, err := list[T](ctx, c, path, Q().Filter(col, "eq", value))
	if err != nil {
		return nil, err
	}
	for i := range items {
		if key(items[i]) == value {
			return &items[i], nil
		}
	}
	return nil, nil
}
