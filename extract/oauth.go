package extract

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// This file is auth kind oauth2_client_credentials (RFC 6749 section 4.4): an access token from the
// source's token endpoint, kept until shortly before it expires, and a new one when the API answers 401.

// oauthState is the access token of one source's run, shared by its requests.
type oauthState struct {
	mu      sync.Mutex
	token   string
	expires time.Time // when to ask for a new one; zero: the endpoint gave no lifetime
	// issued is every token of this run, redacted from every message; replaced, never changed in place, so
	// that redaction reads it without the lock (a message is redacted while a token is being fetched).
	issued atomic.Pointer[[]string]
}

// tokenResponse is the token endpoint's answer (RFC 6749 section 5.1); expires_in may come as a string.
type tokenResponse struct {
	AccessToken string          `json:"access_token"`
	TokenType   string          `json:"token_type"`
	ExpiresIn   json.RawMessage `json:"expires_in"`
}

// accessToken returns a valid access token, asking the token endpoint for one when there is none.
func (c credentials) accessToken(ctx context.Context, hc *http.Client, timeout time.Duration) (string, error) {
	o := c.oauth
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.token != "" && (o.expires.IsZero() || time.Now().Before(o.expires)) {
		return o.token, nil
	}
	o.token = ""
	tok, lifetime, given, err := c.fetchToken(ctx, hc, timeout)
	if err != nil {
		return "", err
	}
	o.token = tok
	var all []string
	if p := o.issued.Load(); p != nil {
		all = append(all, *p...)
	}
	all = append(all, tok)
	o.issued.Store(&all)
	o.expires = time.Time{}
	switch {
	case lifetime > 0:
		// Renew a little early, so that a token never expires between being sent and being checked.
		o.expires = time.Now().Add(lifetime - min(lifetime/10, 30*time.Second))
	case lifetime == 0 && given:
		o.expires = time.Now() // expires_in: 0: good for the request it was asked for, no longer
	}
	return tok, nil
}

// refused forgets tok, which the API refused (401): the next request asks for a new token.
func (c credentials) refused(tok string) {
	c.oauth.mu.Lock()
	defer c.oauth.mu.Unlock()
	if c.oauth.token == tok {
		c.oauth.token = ""
	}
}

// fetchToken asks the token endpoint for a token. Its errors are those of an API request (httpError,
// reachError), so a 5xx, 429 or network error is retried by the request's retry policy and a 4xx is not.
// given says whether the answer had expires_in.
func (c credentials) fetchToken(ctx context.Context, hc *http.Client, timeout time.Duration) (tok string, lifetime time.Duration, given bool, err error) {
	a := c.auth
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(a.Scopes) > 0 {
		form.Set("scope", strings.Join(a.Scopes, " "))
	}
	for k, v := range a.TokenParams {
		form.Set(k, v)
	}
	if a.ClientAuth == "body" {
		form.Set("client_id", a.ClientID)
		form.Set("client_secret", c.secret)
	}
	shown := c.redactAll(redactURL(a.TokenURL, nil))
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, a.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, false, fmt.Errorf("oauth2 token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "elt-extract")
	if a.ClientAuth == "basic" {
		req.Header.Set("Authorization", "Basic "+c.clientBasic())
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, false, ctx.Err()
		}
		return "", 0, false, fmt.Errorf("oauth2 token request: %w", &reachError{method: http.MethodPost, url: shown, err: err})
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		he := &httpError{method: http.MethodPost, url: shown, status: resp.StatusCode, body: c.redactAll(oneLine(head)), token: true,
			retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		if he.retryable() {
			return "", 0, false, fmt.Errorf("oauth2 token request: %w", he)
		}
		return "", 0, false, fmt.Errorf("oauth2 token request: %w (check token_url, client_id, the client secret and scopes)", he)
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", 0, false, fmt.Errorf("oauth2 token request: POST %s: the answer is not a JSON token response", shown)
	}
	if tr.AccessToken == "" {
		return "", 0, false, fmt.Errorf("oauth2 token request: POST %s: the answer has no access_token", shown)
	}
	if tt := strings.ToLower(tr.TokenType); tt != "" && tt != "bearer" {
		return "", 0, false, fmt.Errorf("oauth2 token request: POST %s: token_type %q, only bearer tokens are supported", shown, tr.TokenType)
	}
	if s := strings.Trim(string(tr.ExpiresIn), `"`); s != "" && s != "null" {
		secs, err := strconv.ParseFloat(s, 64)
		if err != nil || secs < 0 {
			return "", 0, false, fmt.Errorf("oauth2 token request: POST %s: expires_in %s is not a number of seconds", shown, tr.ExpiresIn)
		}
		lifetime, given = time.Duration(secs*float64(time.Second)), true
	}
	return tr.AccessToken, lifetime, given, nil
}

// clientBasic is the client's HTTP Basic credentials for the token endpoint: id and secret each
// form-encoded first (RFC 6749 section 2.3.1).
func (c credentials) clientBasic() string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(c.auth.ClientID) + ":" + url.QueryEscape(c.secret)))
}

// issuedTokens lists the access tokens of this run, for redaction.
func (c credentials) issuedTokens() []string {
	if c.oauth == nil {
		return nil
	}
	if p := c.oauth.issued.Load(); p != nil {
		return *p
	}
	return nil
}
