package extract

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// This file is the request of a page: its method, URL and, for a POST search endpoint, its JSON body. The
// parameters elt sets (page number, offset, size, cursor token, incremental start, window end) go into the
// query, or with params_in: body into the body, at their dotted path (paging.after -> {"paging":{"after":..}}).

// request is one page's request.
type request struct {
	method  string
	url     *url.URL
	body    map[string]any // POST: the resource's body with elt's parameters; nil for GET
	inBody  bool           // elt's parameters go into body
	encoded []byte         // body as JSON, once asked for (payload); set clears it
}

// newRequest is the first request of a walk of res at u: the resource's body with the child's
// {placeholders} filled from vars.
func newRequest(res *Resource, u *url.URL, vars map[string]string) *request {
	r := &request{method: res.Method, url: u, inBody: res.ParamsIn == "body"}
	if res.Method == http.MethodPost {
		r.body, _ = fillPlaceholders(map[string]any(res.Body), vars).(map[string]any)
		if r.body == nil {
			r.body = map[string]any{}
		}
	}
	return r
}

// set puts parameter k to v: a number (page, offset, size) stays a JSON number in a body.
func (r *request) set(k string, v any) {
	if r.inBody {
		r.encoded = nil
		m := r.body
		path := strings.Split(k, ".")
		for _, p := range path[:len(path)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[path[len(path)-1]] = v
		return
	}
	u := *r.url
	q := u.Query()
	switch v := v.(type) {
	case string:
		q.Set(k, v)
	case int:
		q.Set(k, strconv.Itoa(v))
	case int64:
		q.Set(k, strconv.FormatInt(v, 10))
	}
	u.RawQuery = q.Encode()
	r.url = &u
}

// get reads parameter k as text ("" when unset).
func (r *request) get(k string) string {
	if !r.inBody {
		return r.url.Query().Get(k)
	}
	var v any = r.body
	for _, p := range strings.Split(k, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[p]
	}
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

// payload is the JSON body to send (nil for GET), encoded once per page (it is shown in logs and errors
// and sent, again on a retry).
func (r *request) payload() []byte {
	if r.method != http.MethodPost {
		return nil
	}
	if r.encoded == nil {
		r.encoded, _ = json.Marshal(r.body) // JSONBody values, strings and integers: always encodable
	}
	return r.encoded
}

// setCursor puts parameter k to an incremental value (a cursor, a window bound): text in a query; in a body
// an integer written canonically and exact in a float64 (Unix seconds, a sequence) as a JSON number, anything
// else ("000123", a timestamp, a big id) as a string.
func (r *request) setCursor(k, v string) {
	if n, err := strconv.ParseInt(v, 10, 64); err == nil && r.inBody && strconv.FormatInt(n, 10) == v && n > -(1<<53) && n < 1<<53 {
		r.set(k, n)
		return
	}
	r.set(k, v)
}

// fillPlaceholders returns a copy of v (a body decoded from YAML) with {name} in its strings replaced by
// vars[name].
func fillPlaceholders(v any, vars map[string]string) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = fillPlaceholders(e, vars)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = fillPlaceholders(e, vars)
		}
		return out
	case string:
		for name, val := range vars {
			v = strings.ReplaceAll(v, "{"+name+"}", val)
		}
		return v
	}
	return v
}

// bodyPlaceholders lists the {placeholders} in the strings of a body.
func bodyPlaceholders(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for _, e := range v {
			out = append(out, bodyPlaceholders(e)...)
		}
	case []any:
		for _, e := range v {
			out = append(out, bodyPlaceholders(e)...)
		}
	case string:
		out = placeholders(v)
	}
	return out
}
