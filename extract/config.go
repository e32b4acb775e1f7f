package extract

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the extract part of the config file: the HTTP sources to load into staging.
type Config struct {
	// Sources lists the APIs, in the order elt extract runs them.
	Sources []*Source `yaml:"sources"`
}

// Source is one HTTP API: where it is, how to authenticate, how hard to push it, and its resources.
type Source struct {
	// Name identifies the source in logs, errors, elt.runs and elt.cursors.
	Name string `yaml:"name"`
	// BaseURL is the API root; resource paths are resolved against it.
	BaseURL string `yaml:"base_url"`
	// Headers are sent with every request (never put secrets here: use Auth).
	Headers map[string]string `yaml:"headers"`
	// Auth says how to authenticate; secrets come from environment variables or files.
	Auth Auth `yaml:"auth"`
	// Timeout is the longest wait for the response headers, then for more bytes of the body (default 60s).
	Timeout Duration `yaml:"timeout"`
	// MaxRetries is how many times a failed request is retried (default 5; 0 uses the default, -1 disables).
	MaxRetries int `yaml:"max_retries"`
	// Backoff is the first retry delay, doubled on each retry with full jitter (default 500ms).
	Backoff Duration `yaml:"backoff"`
	// MaxBackoff caps one retry delay, Retry-After included (default 60s).
	MaxBackoff Duration `yaml:"max_backoff"`
	// RateLimit is the most requests per second sent to this source (0: unlimited).
	RateLimit float64 `yaml:"rate_limit"`
	// BatchSize is how many records one batch transaction commits, at least (default 50000).
	BatchSize int `yaml:"batch_size"`
	// BatchTime ends a batch (at the next cursor boundary) after this long even if it is smaller, so that a
	// slow API never keeps a batch transaction, and elt refresh behind it, waiting for long (default 10s).
	BatchTime Duration `yaml:"batch_time"`
	// CopySessions is how many database sessions load the batches of an append resource side by side (COPY
	// parses jsonb on the server, one core per session), their commits kept in order: 0 for the client's
	// cores, at most 4; 1 streams each batch through one session.
	CopySessions int `yaml:"copy_sessions"`
	// MaxRequests is the most HTTP requests one run sends to this source (retries included; 0: no limit): a
	// run that meets it stops at a batch boundary and is recorded partial; the next run resumes there.
	MaxRequests int `yaml:"max_requests"`
	// MaxDuration is the longest one run of this source goes on sending requests (0: no limit), with the
	// same end as MaxRequests.
	MaxDuration Duration `yaml:"max_duration"`
	// Resources are the endpoints of this source, extracted in order.
	Resources []*Resource `yaml:"resources"`
}

// Auth holds the authentication of a source. Secrets are named, never written: *_env names an environment
// variable, *_file a file whose content (trimmed) is the secret.
type Auth struct {
	// Kind is none (default), bearer, basic or api_key.
	Kind string `yaml:"kind"`
	// TokenEnv and TokenFile give the bearer token or the API key.
	TokenEnv  string `yaml:"token_env"`
	TokenFile string `yaml:"token_file"`
	// Username is the basic-auth user (not a secret).
	Username string `yaml:"username"`
	// PasswordEnv and PasswordFile give the basic-auth password.
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// Name is the header or query parameter that carries an API key.
	Name string `yaml:"name"`
	// In is where the API key goes: header (default) or query.
	In string `yaml:"in"`
	// TokenURL is the token endpoint of kind oauth2_client_credentials (RFC 6749 section 4.4).
	TokenURL string `yaml:"token_url"`
	// ClientID is the OAuth2 client (not a secret); ClientSecretEnv and ClientSecretFile give its secret.
	ClientID         string `yaml:"client_id"`
	ClientSecretEnv  string `yaml:"client_secret_env"`
	ClientSecretFile string `yaml:"client_secret_file"`
	// Scopes are asked for in the token request (space-separated scope parameter; none by default).
	Scopes []string `yaml:"scopes"`
	// TokenParams are more form parameters of the token request (audience: ..., resource: ...).
	TokenParams map[string]string `yaml:"token_params"`
	// ClientAuth is how the client authenticates to the token endpoint: basic (default, an Authorization
	// header) or body (client_id and client_secret form parameters).
	ClientAuth string `yaml:"client_auth"`
}

// Resource is one endpoint of a source, loaded into one staging table.
type Resource struct {
	// Name identifies the resource within its source.
	Name string `yaml:"name"`
	// Path is resolved against the source's base URL; {field} placeholders take parent record fields.
	Path string `yaml:"path"`
	// Params are query parameters added to every request.
	Params map[string]string `yaml:"params"`
	// Method is GET (default) or POST (a search endpoint that takes its query in a JSON body).
	Method string `yaml:"method"`
	// Body is the JSON body of a POST request, written as YAML; {placeholders} in its strings take parent
	// fields, as in path.
	Body JSONBody `yaml:"body"`
	// ParamsIn is where the parameters elt sets (pagination, incremental) go: query (default for GET) or
	// body (default for POST), at their dotted path in the body.
	ParamsIn string `yaml:"params_in"`
	// Format is json (default) or ndjson (one record per line).
	Format string `yaml:"format"`
	// Records is the dotted path to the array of records in a JSON body ("data", "data.items"); empty or "."
	// means the body itself is the array.
	Records string `yaml:"records"`
	// PrimaryKey is the record field that identifies a record (dotted path), or the list of fields that do
	// together (a composite key: [account_id, id]).
	PrimaryKey Key `yaml:"primary_key"`
	// Table is the staging table (in schema staging; created on demand).
	Table string `yaml:"table"`
	// Mode is append (incremental, the default) or replace (a full snapshot swapped in atomically).
	Mode string `yaml:"mode"`
	// Pagination says how to walk the pages.
	Pagination Pagination `yaml:"pagination"`
	// Incremental makes an append resource load only what changed since the last run.
	Incremental *Incremental `yaml:"incremental"`
	// Parent makes this a child resource: one walk per record of the parent resource.
	Parent *Parent `yaml:"parent"`
	// Rejects sends records that cannot be loaded (not an object, invalid JSON line, bytes jsonb refuses) to
	// elt.rejects instead of failing the run.
	Rejects bool `yaml:"rejects"`
	// EmptyOn lists HTTP statuses that mean "no records here" (e.g. [404] for a child whose parent was
	// deleted): such an answer ends that walk as an empty page instead of failing the run. Not 401 or 403,
	// which would hide a wrong token.
	EmptyOn []int `yaml:"empty_on"`

	source *Source
	parent *Resource
}

// accept is the Accept header of the resource's requests.
func (r *Resource) accept() string {
	if r.Format == "ndjson" {
		return "application/x-ndjson"
	}
	return "application/json"
}

// Pagination describes one of the pagination kinds and its stop rules.
type Pagination struct {
	// Kind is none (default), page, offset, cursor, header_cursor, next_url, link or last_record.
	Kind string `yaml:"kind"`
	// PageParam is the page-number parameter of kind page (default "page"); FirstPage its first value (default 1).
	PageParam string `yaml:"page_param"`
	FirstPage *int   `yaml:"first_page"`
	// OffsetParam is the offset parameter of kind offset (default "offset").
	OffsetParam string `yaml:"offset_param"`
	// SizeParam and Size set the page size on every request (optional for page, limit/100 by default for offset).
	SizeParam string `yaml:"size_param"`
	Size      int    `yaml:"size"`
	// CursorParam is the request parameter that carries the cursor token (default "cursor"); CursorPath is
	// where the next token is in the body (default "next_cursor").
	CursorParam string `yaml:"cursor_param"`
	CursorPath  string `yaml:"cursor_path"`
	// CursorHeader is the response header with the next cursor token (kind header_cursor; default
	// "X-Next-Cursor"), sent back in CursorParam.
	CursorHeader string `yaml:"cursor_header"`
	// NextURLPath is where the next page's URL is in the body (kind next_url; default "next").
	NextURLPath string `yaml:"next_url_path"`
	// RecordField is the field (dotted path) of a page's last record whose value asks for the next page, in
	// CursorParam (kind last_record, Stripe's starting_after=<last id>; defaults "id" and "starting_after").
	RecordField string `yaml:"record_field"`
	// HasMorePath names a boolean in the body: false stops.
	HasMorePath string `yaml:"has_more_path"`
	// TotalPath names the total record count in the body: stop once that many records were read.
	TotalPath string `yaml:"total_path"`
	// TotalHeader names a response header with the total record count (X-Total-Count): the same stop rule.
	TotalHeader string `yaml:"total_header"`
	// StopOnEmpty stops at a page with no records (default true).
	StopOnEmpty *bool `yaml:"stop_on_empty"`
	// MaxPages stops after that many pages (0: no limit).
	MaxPages int `yaml:"max_pages"`
}

// Incremental configures cursor-based incremental loading.
type Incremental struct {
	// CursorField is the record field (dotted path) whose value orders records and filters requests.
	CursorField string `yaml:"cursor_field"`
	// Param is the query parameter that asks for records with cursor >= value.
	Param string `yaml:"param"`
	// Initial is the value sent on the first run (optional: no filter).
	Initial string `yaml:"initial"`
	// LookBack re-requests this much before the saved cursor (timestamps only), to catch late records;
	// records already loaded are not loaded twice.
	LookBack Duration `yaml:"look_back"`
	// Window walks the cursor range in windows [start, start+step) up to now - lag, with Param as the start
	// and Window.EndParam as the end of each, for APIs that cap a range or need an end bound.
	Window *Window `yaml:"window"`
}

// Window is date-window incremental loading: each run asks for consecutive time windows, from the saved
// cursor (or Incremental.Initial) up to the run's start minus Lag, each window walked page by page. A window
// walked to its end commits its end as the cursor, even when it had no records.
type Window struct {
	// EndParam is the request parameter of a window's end.
	EndParam string `yaml:"end_param"`
	// Step is the length of a window.
	Step Duration `yaml:"step"`
	// Lag keeps the last window this far before the run's start, for records that become visible late.
	Lag Duration `yaml:"lag"`
	// End says whether the API's end bound is exclusive (default: records with cursor < end) or inclusive
	// (<= end; elt then sends the window's end minus Granularity).
	End string `yaml:"end"`
	// Start says whether the API's start bound is inclusive (default: records with cursor >= start) or
	// exclusive (> start; elt then sends the window's start minus Granularity).
	Start string `yaml:"start"`
	// Granularity is the precision of the cursor field (default 1s): no record lies between a window's end
	// minus Granularity and its end.
	Granularity Duration `yaml:"granularity"`
	// Format is how window bounds are written: rfc3339 (default, UTC) or unix (seconds).
	Format string `yaml:"format"`
}

// Parent links a child resource to the resource whose records it is fetched for.
type Parent struct {
	// Resource names the parent resource in the same source.
	Resource string `yaml:"resource"`
	// Fields maps the child path's placeholders to parent record fields, e.g. {account_id: id}.
	Fields map[string]string `yaml:"fields"`
	// Keep lists the parent fields stored in the child rows' parent column (default: the whole record).
	Keep []string `yaml:"keep"`
}

// Key is a primary key: the dotted path of one record field, or several for a composite key. In YAML it is
// a string (primary_key: id) or a list (primary_key: [account_id, id]).
type Key []string

// UnmarshalYAML reads a field path or a list of them.
func (k *Key) UnmarshalYAML(n *yaml.Node) error {
	var paths []string
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value != "" {
			paths = []string{n.Value}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode || c.Value == "" {
				return fmt.Errorf("line %d: primary_key lists record fields (dotted paths)", c.Line)
			}
			if slices.Contains(paths, c.Value) {
				return fmt.Errorf("line %d: primary_key lists %s twice", c.Line, c.Value)
			}
			paths = append(paths, c.Value)
		}
	default:
		return fmt.Errorf("line %d: primary_key is a record field (dotted path) or a list of them", n.Line)
	}
	*k = paths
	return nil
}

// String writes the key as a config would: its fields, comma-separated.
func (k Key) String() string { return strings.Join(k, ", ") }

// JSONBody is a JSON object written as a YAML mapping. Its values keep their YAML meaning as JSON (numbers,
// booleans, null, strings; an unquoted date stays the text written), and its keys are strings: what cannot
// be JSON (NaN, infinity, a mapping as a key) is an error with its line.
type JSONBody map[string]any

// UnmarshalYAML converts a YAML mapping to JSON values.
func (b *JSONBody) UnmarshalYAML(n *yaml.Node) error {
	v, err := jsonValue(n)
	if err != nil {
		return err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return fmt.Errorf("line %d: body must be a mapping (a JSON object)", n.Line)
	}
	*b = m
	return nil
}

// jsonValue is the JSON value of a YAML node.
func jsonValue(n *yaml.Node) (any, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return jsonValue(n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: a body key must be a plain name", k.Line)
			}
			v, err := jsonValue(n.Content[i+1])
			if err != nil {
				return nil, err
			}
			m[k.Value] = v
		}
		return m, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := jsonValue(c)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil, nil
		case "!!bool":
			var v bool
			err := n.Decode(&v)
			return v, err
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return nil, fmt.Errorf("line %d: %s is not a JSON number", n.Line, n.Value)
			}
			if n.ShortTag() == "!!int" {
				var i int64
				if err := n.Decode(&i); err == nil {
					return i, nil
				}
			}
			return f, nil
		default: // strings, and timestamps as written
			return n.Value, nil
		}
	}
	return nil, fmt.Errorf("line %d: not a JSON value", n.Line)
}

// Duration is a time.Duration written as "30s", "5m" in YAML.
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: invalid duration %q", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads the config file at path, expanding ${VAR} and ${VAR:-default} in its values.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read config: %w (name the config file with --config or ELT_CONFIG; see docs/extract.md)", err)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} (an error when unset) and ${VAR:-default} in s; $${ escapes a literal ${.
func expandEnv(s string) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	const esc = "\x00esc\x00"
	s = strings.ReplaceAll(s, "$${", esc)
	var missing []string
	out := envRef.ReplaceAllStringFunc(s, func(m string) string {
		sub := envRef.FindStringSubmatch(m)
		if v, ok := os.LookupEnv(sub[1]); ok && v != "" {
			return v
		}
		if sub[2] != "" {
			return sub[3]
		}
		missing = append(missing, sub[1])
		return ""
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("environment variable %s is not set", strings.Join(missing, ", "))
	}
	return strings.ReplaceAll(out, esc, "${"), nil
}

// plainNumberOrBool matches what an unquoted ${VAR} may turn into: a base-10 integer without leading zeros,
// a plain decimal, or a boolean, whose text YAML reads the same in a string field (010, 1e5 or 0x1F stay
// strings).
var plainNumberOrBool = regexp.MustCompile(`^(-?(0|[1-9][0-9]*)(\.[0-9]+)?|true|false)$`)

func expandNode(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!binary" {
		v, err := expandEnv(n.Value)
		if err != nil {
			return fmt.Errorf("line %d: %w", n.Line, err)
		}
		// An unquoted ${VAR} that gives a number or a boolean is one, so that max_retries: ${RETRIES}
		// decodes into an integer field; a quoted one stays a string, as YAML says.
		if v != n.Value && n.Style == 0 && n.Tag == "!!str" && plainNumberOrBool.MatchString(v) {
			n.Tag = ""
		}
		n.Value = v
	}
	for _, c := range n.Content {
		if err := expandNode(c); err != nil {
			return err
		}
	}
	return nil
}

// ParseConfig parses and validates a config document. Keys other than sources (other parts of elt.yaml)
// are ignored.
func ParseConfig(b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	if root.Kind == 0 {
		return &Config{}, nil
	}
	if err := expandNode(&root); err != nil {
		return nil, err
	}
	if err := checkKeys(&root, reflect.TypeFor[Config](), true); err != nil {
		return nil, err
	}
	var c Config
	if err := root.Decode(&c); err != nil {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkKeys refuses mapping keys that match no field of t (a typo such as "pagnation" would otherwise be
// ignored silently). At the top level, keys of other parts of the config file are allowed.
func checkKeys(n *yaml.Node, t reflect.Type, top bool) error {
	if n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if err := checkKeys(c, t, top); err != nil {
				return err
			}
		}
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice:
		for _, c := range n.Content {
			if err := checkKeys(c, t.Elem(), false); err != nil {
				return err
			}
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			var field *reflect.StructField
			for j := 0; j < t.NumField(); j++ {
				f := t.Field(j)
				if name, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); name == key && f.IsExported() {
					field = &f
				}
			}
			if field == nil {
				if top {
					continue
				}
				return fmt.Errorf("line %d: unknown key %q", n.Content[i].Line, key)
			}
			if err := checkKeys(n.Content[i+1], field.Type, false); err != nil {
				return err
			}
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func (c *Config) validate() error {
	seen := map[string]bool{}
	tables := map[string]string{} // staging table: source/resource loading it
	for i, s := range c.Sources {
		if s == nil || s.Name == "" {
			return fmt.Errorf("sources[%d]: name is required", i)
		}
		if seen[s.Name] {
			return fmt.Errorf("source %s: defined twice", s.Name)
		}
		seen[s.Name] = true
		if err := s.validate(); err != nil {
			return fmt.Errorf("source %s: %w", s.Name, err)
		}
		// Each staging table has one loader: two sources appending to (or replacing) one table would mix
		// their records and cursors.
		for _, r := range s.Resources {
			if other, ok := tables[r.Table]; ok {
				return fmt.Errorf("resources %s and %s/%s both load staging.%s", other, s.Name, r.Name, r.Table)
			}
			tables[r.Table] = s.Name + "/" + r.Name
		}
	}
	return nil
}

func (s *Source) validate() error {
	u, err := url.Parse(s.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("base_url %q is not an http(s) URL", redactURL(s.BaseURL, nil))
	}
	if u.User != nil {
		return errors.New("base_url must not carry credentials: use auth")
	}
	if s.Timeout == 0 {
		s.Timeout = Duration(60 * time.Second)
	}
	switch {
	case s.MaxRetries == 0:
		s.MaxRetries = 5
	case s.MaxRetries < 0:
		s.MaxRetries = 0
	}
	if s.Backoff == 0 {
		s.Backoff = Duration(500 * time.Millisecond)
	}
	if s.MaxBackoff == 0 {
		s.MaxBackoff = Duration(60 * time.Second)
	}
	if s.BatchSize <= 0 {
		s.BatchSize = 50000
	}
	if s.BatchTime <= 0 {
		s.BatchTime = Duration(10 * time.Second)
	}
	if s.CopySessions < 0 {
		return errors.New("copy_sessions must not be negative")
	}
	if s.MaxRequests < 0 || s.MaxDuration < 0 {
		return errors.New("max_requests and max_duration must not be negative")
	}
	if err := s.Auth.validate(); err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	byName := map[string]*Resource{}
	for i, r := range s.Resources {
		if r == nil || r.Name == "" {
			return fmt.Errorf("resources[%d]: name is required", i)
		}
		if byName[r.Name] != nil {
			return fmt.Errorf("resource %s: defined twice", r.Name)
		}
		byName[r.Name] = r
		r.source = s
	}
	tables := map[string]string{}
	for _, r := range s.Resources {
		if err := r.validate(byName); err != nil {
			return fmt.Errorf("resource %s: %w", r.Name, err)
		}
		if other, ok := tables[r.Table]; ok {
			return fmt.Errorf("resources %s and %s both load staging.%s", other, r.Name, r.Table)
		}
		tables[r.Table] = r.Name
	}
	return nil
}

func (a *Auth) validate() error {
	switch a.Kind {
	case "", "none":
		a.Kind = "none"
	case "bearer":
		if a.TokenEnv == "" && a.TokenFile == "" {
			return errors.New("bearer needs token_env or token_file")
		}
	case "basic":
		if a.Username == "" {
			return errors.New("basic needs username")
		}
	case "api_key":
		if a.TokenEnv == "" && a.TokenFile == "" {
			return errors.New("api_key needs token_env or token_file")
		}
		if a.Name == "" {
			return errors.New("api_key needs name (the header or query parameter)")
		}
		if err := choose(&a.In, "api_key in", "header", "header", "query"); err != nil {
			return err
		}
	case "oauth2_client_credentials":
		u, err := url.Parse(a.TokenURL)
		if a.TokenURL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("oauth2_client_credentials needs token_url, an http(s) URL (not %q)", redactURL(a.TokenURL, nil))
		}
		if u.User != nil {
			return errors.New("token_url must not carry credentials: use client_id and client_secret_env or client_secret_file")
		}
		if a.ClientID == "" {
			return errors.New("oauth2_client_credentials needs client_id")
		}
		if a.ClientSecretEnv == "" && a.ClientSecretFile == "" {
			return errors.New("oauth2_client_credentials needs client_secret_env or client_secret_file")
		}
		if err := choose(&a.ClientAuth, "client_auth", "basic", "basic", "body"); err != nil {
			return err
		}
		for k := range a.TokenParams {
			if k == "grant_type" || k == "scope" || k == "client_id" || k == "client_secret" {
				return fmt.Errorf("token_params must not set %s (elt sets it)", k)
			}
		}
	default:
		return fmt.Errorf("unknown kind %q (none, bearer, basic, api_key, oauth2_client_credentials)", a.Kind)
	}
	return nil
}

func (r *Resource) validate(byName map[string]*Resource) error {
	if !nameRE.MatchString(r.Name) {
		return errors.New("name must be lower-case letters, digits and _")
	}
	if r.Path == "" {
		return errors.New("path is required")
	}
	if r.Table == "" {
		r.Table = r.Name
	}
	r.Table = strings.TrimPrefix(r.Table, "staging.")
	if !nameRE.MatchString(r.Table) || len(r.Table) > 50 {
		return fmt.Errorf("table %q must be a lower-case name in schema staging", r.Table)
	}
	if err := choose(&r.Format, "format", "json", "json", "ndjson"); err != nil {
		return err
	}
	if r.Records == "." {
		r.Records = ""
	}
	if r.Method == "get" || r.Method == "post" {
		r.Method = strings.ToUpper(r.Method)
	}
	if err := choose(&r.Method, "method", "GET", "GET", "POST"); err != nil {
		return err
	}
	if r.Method == "GET" && r.Body != nil {
		return errors.New("body needs method: POST")
	}
	paramsIn := "query"
	if r.Method == "POST" {
		paramsIn = "body"
	}
	if r.ParamsIn == "body" && r.Method != "POST" {
		return errors.New("params_in: body needs method: POST")
	}
	if err := choose(&r.ParamsIn, "params_in", paramsIn, "query", "body"); err != nil {
		return err
	}
	if err := choose(&r.Mode, "mode", "append", "append", "replace"); err != nil {
		return err
	}
	if r.Mode == "append" && r.Incremental == nil {
		return errors.New("append mode needs incremental (a cursor field) to load each record once; use mode: replace for a full snapshot")
	}
	if inc := r.Incremental; inc != nil {
		if inc.CursorField == "" {
			return errors.New("incremental.cursor_field is required")
		}
		if r.Mode == "replace" {
			return errors.New("incremental and mode replace exclude each other")
		}
		if inc.LookBack > 0 && len(r.PrimaryKey) == 0 {
			return errors.New("incremental.look_back needs primary_key, to skip records already loaded")
		}
		if inc.LookBack < 0 {
			return errors.New("incremental.look_back must not be negative")
		}
		if inc.Window != nil {
			if err := inc.Window.validate(inc); err != nil {
				return fmt.Errorf("incremental.window: %w", err)
			}
		}
	}
	if err := r.Pagination.validate(); err != nil {
		return fmt.Errorf("pagination: %w", err)
	}
	if r.Incremental != nil && r.Pagination.MaxPages > 0 {
		// A page may end inside a group of records with the same cursor value: the cursor committed at the
		// last page would make the next run drop the rest of that group forever.
		return errors.New("pagination.max_pages cannot be used with incremental: a walk cut after a page may stop inside records sharing one cursor value, whose rest would never be loaded; use --limit N to load a sample")
	}
	for _, st := range r.EmptyOn {
		switch {
		case st == 401 || st == 403:
			return fmt.Errorf("empty_on: %d would hide a wrong or expired credential; leave it out", st)
		case st < 400 || st > 599:
			return fmt.Errorf("empty_on: %d is not an HTTP error status (400-599)", st)
		}
	}
	if p := r.Parent; p != nil {
		r.parent = byName[p.Resource]
		if r.parent == nil {
			return fmt.Errorf("parent resource %q is not defined in this source", p.Resource)
		}
		if r.parent == r || r.parent.Parent != nil {
			return errors.New("parent must be a top-level resource")
		}
		for _, ph := range placeholders(r.Path) {
			if _, ok := p.Fields[ph]; !ok {
				return fmt.Errorf("path placeholder {%s} has no parent.fields entry", ph)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(r.Params)) {
			for _, ph := range placeholders(r.Params[k]) {
				if _, ok := p.Fields[ph]; !ok {
					return fmt.Errorf("params.%s: placeholder {%s} has no parent.fields entry", k, ph)
				}
			}
		}
		for _, ph := range bodyPlaceholders(map[string]any(r.Body)) {
			if _, ok := p.Fields[ph]; !ok {
				return fmt.Errorf("body: placeholder {%s} has no parent.fields entry", ph)
			}
		}
		if len(p.Fields) == 0 {
			return errors.New("parent.fields is empty")
		}
		if len(p.Keep) > 0 {
			for _, field := range p.Fields {
				if !slices.Contains(p.Keep, strings.Split(field, ".")[0]) {
					return fmt.Errorf("parent.keep must list %s, which parent.fields uses", strings.Split(field, ".")[0])
				}
			}
		}
	} else if len(placeholders(r.Path)) > 0 || len(bodyPlaceholders(map[string]any(r.Body))) > 0 {
		return errors.New("path or body has {placeholders} but no parent")
	}
	return nil
}

func (p *Pagination) validate() error {
	if p.Kind == "" {
		p.Kind = "none"
	}
	kind, ok := pageKinds[p.Kind]
	if !ok {
		return fmt.Errorf("unknown kind %q (%s)", p.Kind, pageKindNames())
	}
	kind.defaults(p)
	if (p.SizeParam == "") != (p.Size == 0) {
		return errors.New("size_param and size go together")
	}
	if p.StopOnEmpty == nil {
		t := true
		p.StopOnEmpty = &t
	}
	if kind.needsStop && !*p.StopOnEmpty && p.HasMorePath == "" && p.TotalPath == "" && p.TotalHeader == "" && p.MaxPages == 0 {
		return errors.New("kind " + p.Kind + " needs a stop rule: stop_on_empty, has_more_path, total_path, total_header or max_pages")
	}
	if p.MaxPages < 0 {
		return errors.New("max_pages must not be negative")
	}
	return nil
}

func (w *Window) validate(inc *Incremental) error {
	if inc.Param == "" || w.EndParam == "" {
		return errors.New("needs incremental.param (a window's start) and end_param (its end)")
	}
	if inc.LookBack > 0 {
		return errors.New("excludes look_back: use lag to keep the windows behind records that become visible late")
	}
	if w.Step <= 0 || w.Lag < 0 {
		return errors.New("step must be positive and lag not negative")
	}
	if w.EndParam == inc.Param {
		return errors.New("end_param must differ from incremental.param")
	}
	if err := choose(&w.End, "end", "exclusive", "exclusive", "inclusive"); err != nil {
		return err
	}
	if err := choose(&w.Start, "start", "inclusive", "inclusive", "exclusive"); err != nil {
		return err
	}
	if err := choose(&w.Format, "format", "rfc3339", "rfc3339", "unix"); err != nil {
		return err
	}
	w.Granularity = cmp.Or(w.Granularity, Duration(time.Second))
	g := time.Duration(w.Granularity)
	if g < 0 || g > time.Duration(w.Step) || (w.Format == "unix" && g%time.Second != 0) {
		return errors.New("granularity must be positive, at most step, and whole seconds with format unix")
	}
	if inc.Initial == "" {
		return errors.New("needs incremental.initial: where the first window starts")
	}
	if _, err := w.parse(inc.Initial); err != nil {
		return fmt.Errorf("incremental.initial: %w", err)
	}
	return nil
}

// choose sets *v to def when it is empty, or checks that it is one of allowed; name is its key, for the
// error ("mode must be append or replace, not \"x\"").
func choose(v *string, name, def string, allowed ...string) error {
	switch {
	case *v == "":
		*v = def
	case !slices.Contains(allowed, *v):
		return fmt.Errorf("%s must be %s or %s, not %q", name, strings.Join(allowed[:len(allowed)-1], ", "), allowed[len(allowed)-1], *v)
	}
	return nil
}

var placeholderRE = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

func placeholders(path string) []string {
	var out []string
	for _, m := range placeholderRE.FindAllStringSubmatch(path, -1) {
		out = append(out, m[1])
	}
	return out
}

// Select returns the sources named in names (all when empty), or an error naming an unknown one.
func (c *Config) Select(names []string) ([]*Source, error) {
	if len(names) == 0 {
		return c.Sources, nil
	}
	var out []*Source
	for _, n := range names {
		var found *Source
		for _, s := range c.Sources {
			if s.Name == n {
				found = s
			}
		}
		if found == nil {
			var all []string
			for _, s := range c.Sources {
				all = append(all, s.Name)
			}
			return nil, fmt.Errorf("unknown source %q (configured: %s)", n, strings.Join(all, ", "))
		}
		out = append(out, found)
	}
	return out, nil
}
