package extract

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const (
	oauthClient = "elt-client"
	oauthSecret = "client-s3cret-4b7e1d"
)

// tokenAPI is an OAuth2 client-credentials token endpoint (/token) and an API (/items, 8 pages of 2) that
// checks its access tokens: issued, not expired, not revoked.
type tokenAPI struct {
	lifetime   time.Duration // expires_in of each token (0: none given)
	delay      time.Duration // per API request
	revokeAt   int64         // the first token is revoked at this API request (0: never)
	refuseAll  bool          // the API refuses every token
	tokenFails int64         // the token endpoint answers 503 to this many requests first
	wantBody   bool          // the client authenticates in the form body, not with Basic
	zero       bool          // expires_in: 0 (each token good for one request)

	mu       sync.Mutex
	issued   map[string]time.Time // token: expiry
	order    []string
	revoked  map[string]bool
	scopes   []string
	tokenReq atomic.Int64
	apiReq   atomic.Int64
	refusals atomic.Int64 // 401s the API answered
}

func (a *tokenAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.URL.Path == "/token" {
		n := a.tokenReq.Add(1)
		if n <= a.tokenFails {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		_ = r.ParseForm()
		id, secret, basic := r.BasicAuth()
		if !basic {
			id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		if basic == a.wantBody || id != oauthClient || secret != oauthSecret || r.PostForm.Get("grant_type") != "client_credentials" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":"invalid_client"}`)
			return
		}
		a.scopes = append(a.scopes, r.PostForm.Get("scope"))
		tok := fmt.Sprintf("at-%d-%x", n, time.Now().UnixNano())
		if a.issued == nil {
			a.issued, a.revoked = map[string]time.Time{}, map[string]bool{}
		}
		exp := time.Now().Add(time.Hour)
		expiresIn := ""
		if a.lifetime > 0 {
			exp = time.Now().Add(a.lifetime)
			expiresIn = fmt.Sprintf(`,"expires_in":"%g"`, a.lifetime.Seconds()) // a string, as some servers send it
		}
		if a.zero {
			expiresIn = `,"expires_in":0`
		}
		a.issued[tok] = exp
		a.order = append(a.order, tok)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer"%s}`, tok, expiresIn)
		return
	}
	n := a.apiReq.Add(1)
	a.mu.Unlock()
	time.Sleep(a.delay)
	a.mu.Lock()
	if a.revokeAt > 0 && n == a.revokeAt && len(a.order) > 0 {
		a.revoked[a.order[0]] = true
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	exp, ok := a.issued[tok]
	if !ok || a.revoked[tok] || time.Now().After(exp) || a.refuseAll {
		a.refusals.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error":"invalid_token","token":%q}`, tok) // an API that echoes the token it refused
		return
	}
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	var recs []string
	if page <= 8 {
		recs = []string{fmt.Sprintf(`{"id":"p%d-a"}`, page), fmt.Sprintf(`{"id":"p%d-b"}`, page)}
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"data":[%s]}`, strings.Join(recs, ","))
}

func (a *tokenAPI) tokens() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.order...)
}

// TestOAuth2ClientCredentials: the access token is fetched once and reused, renewed before it expires
// mid-walk, renewed once when the API refuses it (and the run fails when a fresh one is refused too); a wrong
// client secret fails at the token endpoint; a 503 there is retried; no secret and no token is ever shown.
func TestOAuth2ClientCredentials(t *testing.T) {
	t.Parallel()
	var want []string
	for p := 1; p <= 8; p++ {
		want = append(want, fmt.Sprintf("p%d-a", p), fmt.Sprintf("p%d-b", p))
	}
	for _, tc := range []struct {
		name       string
		api        *tokenAPI
		auth       string // extra auth lines
		secret     string
		wantErr    string // "" for success
		wantTokens int    // tokens issued, at least
		wantLog    string
	}{
		{name: "one token for the walk", api: &tokenAPI{}, wantTokens: 1},
		{name: "expires mid-walk", api: &tokenAPI{lifetime: 3 * time.Second, delay: 400 * time.Millisecond}, wantTokens: 2},
		{name: "revoked, a new one cures", api: &tokenAPI{revokeAt: 3}, wantTokens: 2, wantLog: "access token refused (401)"},
		{name: "refused, a new one does not", api: &tokenAPI{refuseAll: true}, wantTokens: 2,
			wantErr: "the API refused a freshly issued access token too"},
		{name: "wrong client secret", api: &tokenAPI{}, secret: "not-the-secret-77", wantTokens: 0,
			wantErr: "oauth2 token request: POST "},
		{name: "token endpoint busy once", api: &tokenAPI{tokenFails: 1}, wantTokens: 1, wantLog: "retrying request"},
		{name: "expires_in 0: a token per request", api: &tokenAPI{zero: true}, wantTokens: 9},
		{name: "client in the body, scopes", api: &tokenAPI{wantBody: true},
			auth: "\n      client_auth: body\n      scopes: [read:items, read:users]", wantTokens: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, func(w http.ResponseWriter, r *http.Request, _ int64) { tc.api.ServeHTTP(w, r) })
			secret := oauthSecret
			if tc.secret != "" {
				secret = tc.secret
			}
			cfg := f.config(t, fmt.Sprintf(`    auth:
      kind: oauth2_client_credentials
      token_url: %s/token
      client_id: %s
      client_secret_file: %s%s`, f.srv.URL, oauthClient, tokenFileWith(t, secret), tc.auth), `        mode: replace
        pagination: {kind: page}`)
			err := f.run(t, cfg, Options{}, oauthSecret, secret)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("run: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("run: %v; want an error with %q", err, tc.wantErr)
			}
			toks := tc.api.tokens()
			if len(toks) < tc.wantTokens || (tc.wantTokens <= 1 && len(toks) != tc.wantTokens) {
				t.Errorf("%d tokens issued, want %d", len(toks), tc.wantTokens)
			}
			for _, tok := range toks {
				if strings.Contains(f.logs.String(), tok) || (err != nil && strings.Contains(err.Error(), tok)) {
					t.Errorf("access token %s shown:\n%v\n%s", tok, err, f.logs.String())
				}
			}
			if tc.wantLog != "" && !strings.Contains(f.logs.String(), tc.wantLog) {
				t.Errorf("logs do not say %q:\n%s", tc.wantLog, f.logs.String())
			}
			if tc.wantErr == "" {
				if diff := cmp.Diff(want, f.ids(t)); diff != "" {
					t.Errorf("staged (-want +got):\n%s", diff)
				}
				if tc.api.lifetime > 0 && tc.api.refusals.Load() > 0 {
					t.Errorf("the API refused %d expired tokens: the token was not renewed before it expired", tc.api.refusals.Load())
				}
			}
			if strings.Contains(tc.auth, "scopes") {
				if diff := cmp.Diff([]string{"read:items read:users"}, tc.api.scopes); diff != "" {
					t.Errorf("scope asked (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestTokenEndpointErrors: an error of the token endpoint is never an API answer: a 404 there fails the run
// even for a resource with empty_on: [404] (which would otherwise commit empty date windows and lose their
// records), and its retries do not spend max_requests, which counts requests to the API.
func TestTokenEndpointErrors(t *testing.T) {
	t.Parallel()
	api := newWindowAPI(time.Now())
	var broken atomic.Bool
	broken.Store(true)
	tokens := &tokenAPI{tokenFails: 2}
	f := newFixture(t, func(w http.ResponseWriter, r *http.Request, n int64) {
		if r.URL.Path == "/token" && broken.Load() {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		if r.URL.Path == "/token" {
			tokens.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r, n)
	})
	cfg := f.config(t, fmt.Sprintf(`    max_requests: 40
    auth:
      kind: oauth2_client_credentials
      token_url: %s/token
      client_id: %s
      client_secret_file: %s`, f.srv.URL, oauthClient, tokenFileWith(t, oauthSecret)), api.resource("")+"\n        empty_on: [404]")
	err := f.run(t, cfg, Options{}, oauthSecret)
	if err == nil || !strings.Contains(err.Error(), "oauth2 token request: POST "+f.srv.URL+"/token: 404 Not Found") {
		t.Fatalf("a token endpoint answering 404: %v; want the run failed", err)
	}
	if n := queryOne[int64](t, f.db, `select count(*) from elt.cursors`); n != 0 {
		t.Errorf("%d cursors committed while no token could be had", n)
	}
	// The endpoint answers 503 twice, then a token: three token requests, none counted against the quota,
	// so the walk gets all its 40 requests and finishes.
	broken.Store(false)
	if err := f.run(t, cfg, Options{}, oauthSecret); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(api.ids(), sortedIDs(t, f)); diff != "" {
		t.Errorf("staged (-source +staging):\n%s", diff)
	}
	if got := tokens.tokenReq.Load(); got != 3 {
		t.Errorf("%d token requests, want 3 (two 503s, then a token)", got)
	}
}
