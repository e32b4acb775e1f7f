package extract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// This file reads records out of a response body as raw bytes, and reads single fields out of a raw record,
// without ever decoding a record into Go values: the bytes go to Postgres unchanged.

// errTruncated marks a body that ended in the middle of a JSON value; the page is retried.
var errTruncated = errors.New("truncated body")

// readNDJSON streams the lines of an NDJSON body to emit; a line that is not valid JSON is passed with
// bad set, so the caller can reject it or fail.
func readNDJSON(r io.Reader, emit func(rec []byte, bad string) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line = append(long, line...)
			long = nil
		}
		if err != nil && err != io.EOF {
			return err
		}
		last := err == io.EOF
		rec := bytes.TrimSpace(line)
		if len(rec) > 0 {
			if !json.Valid(rec) {
				if last {
					return errTruncated
				}
				if e := emit(append([]byte(nil), rec...), "invalid JSON"); e != nil {
					return e
				}
			} else if e := emit(append([]byte(nil), rec...), ""); e != nil {
				return e
			}
		}
		if last {
			return nil
		}
	}
}

// badRecord says why Postgres would refuse rec as a staging record, or "" when it is fine: not an object,
// a \u0000 escape or a lone UTF-16 surrogate escape (jsonb can store neither).
func badRecord(rec []byte) string {
	i := skipWS(rec, 0)
	if i >= len(rec) || rec[i] != '{' {
		return "not a JSON object"
	}
	if bytes.Contains(rec, []byte(`\u`)) {
		return badEscape(rec)
	}
	return ""
}

// badEscape finds \u escapes jsonb refuses: \u0000, and a high surrogate not followed by a low one or a low
// one alone.
func badEscape(b []byte) string {
	hex4 := func(i int) (int, bool) {
		if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
			return 0, false
		}
		v := 0
		for _, c := range b[i+2 : i+6] {
			switch {
			case c >= '0' && c <= '9':
				v = v*16 + int(c-'0')
			case c >= 'a' && c <= 'f':
				v = v*16 + int(c-'a'+10)
			case c >= 'A' && c <= 'F':
				v = v*16 + int(c-'A'+10)
			default:
				return 0, false
			}
		}
		return v, true
	}
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		v, ok := hex4(i)
		if !ok {
			i++ // skip the escaped character
			continue
		}
		switch {
		case v == 0:
			return `contains \u0000, which jsonb cannot store`
		case v >= 0xD800 && v <= 0xDBFF:
			if w, ok := hex4(i + 6); !ok || w < 0xDC00 || w > 0xDFFF {
				return "contains a lone UTF-16 surrogate escape, which jsonb cannot store"
			}
			i += 11
			continue
		case v >= 0xDC00 && v <= 0xDFFF:
			return "contains a lone UTF-16 surrogate escape, which jsonb cannot store"
		}
		i += 5
	}
	return ""
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// lookup returns the raw value at the dotted path in the JSON object rec.
func lookup(rec []byte, path []string) ([]byte, bool) {
	v := rec
	for _, key := range path {
		var ok bool
		v, ok = member(v, key)
		if !ok {
			return nil, false
		}
	}
	return v, true
}

// member returns the raw value of key in the JSON object obj, scanning only the top level.
func member(obj []byte, key string) ([]byte, bool) {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipWS(obj, i)
		if i >= len(obj) || obj[i] != '"' {
			return nil, false
		}
		end, esc := stringEnd(obj, i)
		if end < 0 {
			return nil, false
		}
		k := obj[i+1 : end-1]
		match := false
		if esc {
			var s string
			if json.Unmarshal(obj[i:end], &s) == nil {
				match = s == key
			}
		} else {
			match = string(k) == key
		}
		i = skipWS(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return nil, false
		}
		i = skipWS(obj, i+1)
		vend := valueEnd(obj, i)
		if vend < 0 {
			return nil, false
		}
		if match {
			return obj[i:vend], true
		}
		i = skipWS(obj, vend)
		if i >= len(obj) || obj[i] != ',' {
			return nil, false
		}
		i++
	}
}

// stringEnd returns the index after the closing quote of the string starting at b[i], and whether it holds
// escapes.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j + 1, esc
		}
	}
	return -1, esc
}

// valueEnd returns the index after the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		end, _ := stringEnd(b, i)
		return end
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, _ := stringEnd(b, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// scalarText renders a raw scalar JSON value as text: a string unquoted, a number or boolean as written.
// Null, objects and arrays have no text.
func scalarText(v []byte) (string, bool) {
	if len(v) == 0 {
		return "", false
	}
	switch v[0] {
	case '"':
		if bytes.IndexByte(v, '\\') < 0 {
			return string(v[1 : len(v)-1]), true
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return s, true
	case 'n', '{', '[':
		return "", false
	default:
		return string(v), true
	}
}

// fieldText returns the text of the scalar at path in rec.
func fieldText(rec []byte, path []string) (string, bool) {
	v, ok := lookup(rec, path)
	if !ok {
		return "", false
	}
	return scalarText(v)
}

// compareCursor orders two cursor values: as integers, as numbers, as RFC 3339 timestamps when both parse,
// else as strings. Equal-length timestamps in the same layout compare as bytes, which is the common case.
func compareCursor(a, b string) int {
	if a == b {
		return 0
	}
	if len(a) == len(b) && sameLayout(a, b) {
		return strings.Compare(a, b)
	}
	if x, err := strconv.ParseInt(a, 10, 64); err == nil {
		if y, err := strconv.ParseInt(b, 10, 64); err == nil {
			return cmpOrdered(x, y)
		}
	}
	if x, err := strconv.ParseFloat(a, 64); err == nil {
		if y, err := strconv.ParseFloat(b, 64); err == nil {
			return cmpOrdered(x, y)
		}
	}
	if x, err := time.Parse(time.RFC3339Nano, a); err == nil {
		if y, err := time.Parse(time.RFC3339Nano, b); err == nil {
			return x.Compare(y)
		}
	}
	return strings.Compare(a, b)
}

func cmpOrdered[T int64 | float64](x, y T) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// sameLayout reports whether a and b (same length) are UTC timestamps with digits in the same places,
// such as 2026-11-24T13:05:12Z, or unsigned integers of the same width: byte order is then value order.
func sameLayout(a, b string) bool {
	if len(a) == 0 {
		return false
	}
	allDigits := true
	for i := 0; i < len(a); i++ {
		da := a[i] >= '0' && a[i] <= '9'
		db := b[i] >= '0' && b[i] <= '9'
		if da != db || (!da && a[i] != b[i]) {
			return false
		}
		if !da {
			allDigits = false
		}
	}
	if allDigits {
		return true
	}
	// Non-digit characters match position by position: a timestamp layout needs a UTC zone.
	return len(a) >= 20 && a[4] == '-' && a[10] == 'T' && a[len(a)-1] == 'Z'
}
