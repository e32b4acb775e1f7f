package extract

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestJSONReaderAgreesWithEncodingJSON(t *testing.T) {
	t.Parallel()
	long := strings.Repeat(`ab\"c\\`, 30000) // longer than the read buffer, escapes across its edges
	for _, rec := range []string{
		`{}`, `{"a":1}`, ` { "a" : [ 1 , 2.5e-3 , -0 , true , false , null ] , "b" : { } } `,
		`{"s":"quote \" backslash \\ slash \/ \b\f\n\r\t \u00e9 \uD83D\uDE00 é 日本"}`,
		`{"s":"` + long + `"}`, `{"s":"ends with backslash \\"}`, `{"n":[0,1,-1,1.5,1e10,1E+2,-0.0e-0]}`,
		`{"deep":[[[[{"x":[[]]}]]]]}`, `5`, `"str"`, `[1,2]`,
		// invalid
		`{"a":1,}`, `{"a" 1}`, `{a:1}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`, `{"a":tru}`,
		`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12g4"}`, "{\"a\":\"tab\there\"}", `{"a":[1,]}`, `{"a":[1 2]}`,
		`{"a":1}}`, `{"a":nul}`, `{"a":+1}`, `{"a":1.2.3}`,
	} {
		body := "[" + rec + "]"
		var got [][]byte
		_, err := readJSONPage(strings.NewReader(body), "", nil, func(r []byte) error {
			got = append(got, r)
			return nil
		})
		valid := json.Valid([]byte(body))
		if valid != (err == nil) {
			t.Errorf("%.80s: valid %v, reader error %v", rec, valid, err)
			continue
		}
		if !valid {
			continue
		}
		var want bytes.Buffer
		if err := json.Compact(&want, []byte(rec)); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{want.String()}, toStrings(got)); diff != "" {
			t.Errorf("%.80s: record (-want +got):\n%.500s", rec, diff)
		}
	}
}

func toStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func TestReadJSONPageEnvelope(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, path string
		wanted           []string
		want             []string
		meta             map[string]string
		err              string
	}{
		{name: "Nested", body: `{"meta":{"next":"u2","x":[1,{"y":2}]},"result":{"items":[{"id":1},{"id":2}]},"total":2}`, path: "result.items",
			wanted: []string{"meta.next", "total"}, want: []string{`{"id":1}`, `{"id":2}`}, meta: map[string]string{"meta.next": `"u2"`, "total": "2"}},
		{name: "NullRecords", body: `{"data":null,"has_more":false}`, path: "data", wanted: []string{"has_more"}, meta: map[string]string{"has_more": "false"}},
		{name: "EscapedKey", body: `{"d\u0061ta":[{"id":1}]}`, path: "data", want: []string{`{"id":1}`}, meta: map[string]string{}},
		{name: "Missing", body: `{"items":[]}`, path: "data", err: `body has no records array at "data"`},
		{name: "NotArray", body: `{"data":{"id":1}}`, path: "data", err: "records are not an array"},
		{name: "Truncated", body: `{"data":[{"id":1},{"id":`, path: "data", want: []string{`{"id":1}`}, err: "truncated body"},
		{name: "TruncatedInString", body: `{"data":[{"id":"abc`, path: "data", err: "truncated body"},
		{name: "Trailing", body: `{"data":[]} {}`, path: "data", err: "data after the JSON body"},
		{name: "Empty", body: ``, path: "data", err: "empty body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			meta, err := readJSONPage(strings.NewReader(tc.body), tc.path, tc.wanted, func(r []byte) error {
				got = append(got, string(r))
				return nil
			})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("records (-want +got):\n%s", diff)
			}
			if tc.err == "" {
				gotMeta := map[string]string{}
				for k, v := range meta {
					gotMeta[k] = string(v)
				}
				if diff := cmp.Diff(tc.meta, gotMeta); diff != "" {
					t.Errorf("meta (-want +got):\n%s", diff)
				}
			}
		})
	}
}

func TestFieldText(t *testing.T) {
	t.Parallel()
	rec := []byte(`{"a":{"b":"x\"y"},"list":[1,{"updated_at":"no"}],"s":"has } and ]","updated_at":"2026-01-02T03:04:05Z","n":12,"nul":null,"k\u0065y":"esc"}`)
	for _, tc := range []struct {
		path string
		want string
		ok   bool
	}{
		{"updated_at", "2026-01-02T03:04:05Z", true},
		{"a.b", `x"y`, true},
		{"n", "12", true},
		{"nul", "", false},
		{"list", "", false},
		{"key", "esc", true},
		{"missing", "", false},
	} {
		got, ok := fieldText(rec, strings.Split(tc.path, "."))
		if got != tc.want || ok != tc.ok {
			t.Errorf("fieldText(%s) = %q, %v; want %q, %v", tc.path, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCompareCursor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", -1},
		{"2026-01-01T00:00:00.5Z", "2026-01-01T00:00:00Z", 1},
		{"2026-01-01T01:00:00+01:00", "2026-01-01T00:00:00Z", 0},
		{"9", "10", -1},
		{"-5", "3", -1},
		{"1.5", "1.25", 1},
		{"0010", "0009", 1},
		{"b", "a", 1},
		{"x", "x", 0},
	} {
		if got := compareCursor(tc.a, tc.b); got != tc.want {
			t.Errorf("compareCursor(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestBadRecord(t *testing.T) {
	t.Parallel()
	for rec, want := range map[string]string{
		`{"a":1}`:              "",
		` {"a":1}`:             "",
		`[1]`:                  "not a JSON object",
		`"s"`:                  "not a JSON object",
		`{"a":"x\u0000y"}`:     `contains \u0000, which jsonb cannot store`,
		`{"a":"x\\u0000y"}`:    "",
		`{"a":"\uD83D\uDE00"}`: "",
		`{"a":"\uD83Dx"}`:      "contains a lone UTF-16 surrogate escape, which jsonb cannot store",
		`{"a":"\uDE00"}`:       "contains a lone UTF-16 surrogate escape, which jsonb cannot store",
		`{"a":"\u00e9\u0000"}`: `contains \u0000, which jsonb cannot store`,
	} {
		if got := badRecord([]byte(rec)); got != want {
			t.Errorf("badRecord(%s) = %q, want %q", rec, got, want)
		}
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://u:p@api.example/x?a=1":                    "https://REDACTED@api.example/x?a=1",
		"https://api.example/x?access_token=abc&page=2":    "https://api.example/x?access_token=REDACTED&page=2",
		"https://api.example/x?client_secret=s&my_key=k":   "https://api.example/x?client_secret=REDACTED&my_key=REDACTED",
		"https://api.example/x?sig=1&Signature=2&keep=yes": "https://api.example/x?Signature=REDACTED&keep=yes&sig=REDACTED",
	} {
		if got := redactURL(in, nil); got != want {
			t.Errorf("redactURL(%s) = %s, want %s", in, got, want)
		}
	}
	if got := redactURL("https://a/x?apiKeyX=1", []string{"apiKeyX"}); got != "https://a/x?apiKeyX=REDACTED" {
		t.Errorf("extra parameter not redacted: %s", got)
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"3":                             3 * time.Second,
		"0":                             0,
		"-1":                            0,
		"":                              0,
		"soon":                          0,
		"Thu, 01 Jan 2026 00:00:30 GMT": 30 * time.Second,
		"Wed, 31 Dec 2025 23:00:00 GMT": 0,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
