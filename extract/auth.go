package extract

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
)

// credentials are the resolved secrets of a source, applied to each request and redacted from every URL
// and message.
type credentials struct {
	auth   Auth
	secret string      // token, API key, password or OAuth2 client secret
	oauth  *oauthState // kind oauth2_client_credentials: the access token, shared by the copies
}

// resolveCredentials reads the source's secret from its environment variable or file.
func resolveCredentials(a Auth) (credentials, error) {
	c := credentials{auth: a}
	var env, file string
	switch a.Kind {
	case "bearer", "api_key":
		env, file = a.TokenEnv, a.TokenFile
	case "basic":
		env, file = a.PasswordEnv, a.PasswordFile
	case "oauth2_client_credentials":
		env, file = a.ClientSecretEnv, a.ClientSecretFile
		c.oauth = &oauthState{}
	default:
		return c, nil
	}
	switch {
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			if file == "" {
				return c, fmt.Errorf("auth: environment variable %s is not set", env)
			}
		} else {
			c.secret = v
			return c, nil
		}
		fallthrough
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return c, fmt.Errorf("auth: read secret file: %w", err)
		}
		c.secret = strings.TrimSpace(string(b))
		if c.secret == "" {
			return c, fmt.Errorf("auth: secret file %s is empty", file)
		}
	}
	return c, nil
}

// apply adds the credentials to req; token is the OAuth2 access token (accessToken) of kind
// oauth2_client_credentials.
func (c credentials) apply(req *http.Request, token string) {
	switch c.auth.Kind {
	case "oauth2_client_credentials":
		req.Header.Set("Authorization", "Bearer "+token)
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+c.secret)
	case "basic":
		req.SetBasicAuth(c.auth.Username, c.secret)
	case "api_key":
		if c.auth.In == "query" {
			q := req.URL.Query()
			q.Set(c.auth.Name, c.secret)
			req.URL.RawQuery = q.Encode()
		} else {
			req.Header.Set(c.auth.Name, c.secret)
		}
	}
}

// minRedact is the shortest secret redacted from whole messages: a shorter one (a test token like "x")
// would garble every message it matches; bodies and URLs are redacted of secrets of any length.
const minRedact = 6

// redactedError is an error of a run said without the source's secret. Unwrap keeps the chain, so that
// errors.Is(err, ErrLocked) and errors.As(err, &pgErr) still work; the wrapped errors' own texts may hold
// the secret, and are never printed: print the redactedError.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redact removes the secret from s wherever it appears.
func (c credentials) redact(s string) string {
	if len(c.secret) < minRedact {
		return s
	}
	return c.redactAll(s)
}

// redactAll removes the secret from s (text that came from the API, or a URL), however short it is.
func (c credentials) redactAll(s string) string {
	if c.secret == "" {
		return s
	}
	switch c.auth.Kind {
	case "basic":
		s = strings.ReplaceAll(s, base64.StdEncoding.EncodeToString([]byte(c.auth.Username+":"+c.secret)), "REDACTED")
	case "oauth2_client_credentials":
		s = strings.ReplaceAll(s, c.clientBasic(), "REDACTED")
		for _, tok := range c.issuedTokens() {
			s = replaceSecret(s, tok)
		}
	}
	return replaceSecret(s, c.secret)
}

// replaceSecret replaces secret, and its URL encoding, in s.
func replaceSecret(s, secret string) string {
	if secret == "" {
		return s
	}
	s = strings.ReplaceAll(s, secret, "REDACTED")
	if e := url.QueryEscape(secret); e != secret {
		s = strings.ReplaceAll(s, e, "REDACTED")
	}
	return s
}

// sensitiveParams are query parameters whose values never appear in logs or errors.
var sensitiveParams = []string{"token", "access_token", "api_key", "apikey", "key", "secret", "password",
	"client_secret", "signature", "sig", "auth"}

// sensitiveName reports whether a parameter or field named k holds a secret: one of sensitiveParams, or a
// name ending in _<one> or -<one> (client_secret, x-api-key).
func sensitiveName(k string) bool {
	lk := strings.ToLower(k)
	for _, s := range sensitiveParams {
		if lk == s || strings.HasSuffix(lk, "_"+s) || strings.HasSuffix(lk, "-"+s) {
			return true
		}
	}
	return false
}

// redactURL renders raw without user info and with the values of sensitive query parameters (and extra
// ones) replaced.
func redactURL(raw string, extra []string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k := range q {
			hit := sensitiveName(k)
			for _, s := range extra {
				if k == s {
					hit = true
				}
			}
			if hit {
				q.Set(k, "REDACTED")
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
