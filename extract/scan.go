package extract

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// This file reads a JSON body as a stream: it walks the envelope to the records array and hands each record
// over as its own bytes, checking the JSON grammar on the way in a single pass (strings, which are most of
// the bytes, are found with bufio's ReadSlice). It replaces encoding/json's Decoder, which scans each record
// twice through a state machine called per byte: the extractor's largest cost after Postgres itself.

// maxDepth bounds the nesting of a JSON value.
const maxDepth = 1000

// jsonReader reads JSON values from a stream.
type jsonReader struct {
	r    *bufio.Reader
	read int64 // bytes read from the underlying reader
}

func newJSONReader(r io.Reader) *jsonReader {
	j := &jsonReader{}
	j.r = bufio.NewReaderSize(&offsetReader{r: r, n: &j.read}, 64<<10)
	return j
}

type offsetReader struct {
	r io.Reader
	n *int64
}

func (o *offsetReader) Read(p []byte) (int, error) {
	n, err := o.r.Read(p)
	*o.n += int64(n)
	return n, err
}

// offset is the position in the body of the next unread byte.
func (j *jsonReader) offset() int64 { return j.read - int64(j.r.Buffered()) }

func (j *jsonReader) syntax(msg string) error {
	return fmt.Errorf("invalid JSON at byte %d: %s", j.offset(), msg)
}

// eof turns the end of the stream in the middle of a value into errTruncated.
func eof(err error) error {
	if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return errTruncated
	}
	return err
}

// next skips whitespace and returns the next byte, consumed.
func (j *jsonReader) next() (byte, error) {
	for {
		c, err := j.r.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\n' && c != '\r' && c != '\t' {
			return c, nil
		}
	}
}

// value reads one JSON value whose first byte c was already consumed, appending it (without insignificant
// whitespace) to dst.
func (j *jsonReader) value(dst []byte, c byte, depth int) ([]byte, error) {
	if depth > maxDepth {
		return dst, j.syntax("nested too deep")
	}
	var err error
	switch c {
	case '{':
		dst = append(dst, '{')
		c, err = j.next()
		if err != nil {
			return dst, eof(err)
		}
		if c == '}' {
			return append(dst, '}'), nil
		}
		for {
			if c != '"' {
				return dst, j.syntax("expected a string key")
			}
			if dst, err = j.str(dst); err != nil {
				return dst, err
			}
			if c, err = j.next(); err != nil {
				return dst, eof(err)
			}
			if c != ':' {
				return dst, j.syntax("expected ':' after a key")
			}
			dst = append(dst, ':')
			if c, err = j.next(); err != nil {
				return dst, eof(err)
			}
			if dst, err = j.value(dst, c, depth+1); err != nil {
				return dst, err
			}
			if c, err = j.next(); err != nil {
				return dst, eof(err)
			}
			switch c {
			case ',':
				dst = append(dst, ',')
				if c, err = j.next(); err != nil {
					return dst, eof(err)
				}
			case '}':
				return append(dst, '}'), nil
			default:
				return dst, j.syntax("expected ',' or '}' in an object")
			}
		}
	case '[':
		dst = append(dst, '[')
		if c, err = j.next(); err != nil {
			return dst, eof(err)
		}
		if c == ']' {
			return append(dst, ']'), nil
		}
		for {
			if dst, err = j.value(dst, c, depth+1); err != nil {
				return dst, err
			}
			if c, err = j.next(); err != nil {
				return dst, eof(err)
			}
			switch c {
			case ',':
				dst = append(dst, ',')
				if c, err = j.next(); err != nil {
					return dst, eof(err)
				}
			case ']':
				return append(dst, ']'), nil
			default:
				return dst, j.syntax("expected ',' or ']' in an array")
			}
		}
	case '"':
		return j.str(dst)
	case 't':
		return j.literal(dst, "true")
	case 'f':
		return j.literal(dst, "false")
	case 'n':
		return j.literal(dst, "null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return j.number(dst, c)
		}
		return dst, j.syntax(fmt.Sprintf("unexpected character %q", c))
	}
}

// str reads the rest of a string whose opening quote was consumed, checking its escapes and that it has no
// raw control characters.
func (j *jsonReader) str(dst []byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, '"')
	for {
		chunk, err := j.r.ReadSlice('"')
		dst = append(dst, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return dst, eof(err)
		}
		// The quote ends the string unless an odd number of backslashes precede it.
		n := 0
		for i := len(dst) - 2; i > start && dst[i] == '\\'; i-- {
			n++
		}
		if n%2 == 0 {
			break
		}
	}
	s := dst[start+1 : len(dst)-1]
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 {
			return dst, j.syntax("control character in a string")
		}
		if c != '\\' {
			continue
		}
		i++
		if i >= len(s) {
			return dst, j.syntax("bad escape")
		}
		switch s[i] {
		case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		case 'u':
			if i+4 >= len(s) {
				return dst, j.syntax(`bad \u escape`)
			}
			for k := 1; k <= 4; k++ {
				h := s[i+k]
				if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
					return dst, j.syntax(`bad \u escape`)
				}
			}
			i += 4
		default:
			return dst, j.syntax("bad escape")
		}
	}
	return dst, nil
}

func (j *jsonReader) literal(dst []byte, lit string) ([]byte, error) {
	dst = append(dst, lit[0])
	for i := 1; i < len(lit); i++ {
		c, err := j.r.ReadByte()
		if err != nil {
			return dst, eof(err)
		}
		if c != lit[i] {
			return dst, j.syntax("invalid literal")
		}
		dst = append(dst, c)
	}
	return dst, nil
}

// number reads a number whose first byte c was consumed, checking the JSON number grammar.
func (j *jsonReader) number(dst []byte, c byte) ([]byte, error) {
	start := len(dst)
	dst = append(dst, c)
	for {
		c, err := j.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return dst, err
		}
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			_ = j.r.UnreadByte()
			break
		}
		dst = append(dst, c)
	}
	if !validNumber(dst[start:]) {
		return dst, j.syntax(fmt.Sprintf("invalid number %q", dst[start:]))
	}
	return dst, nil
}

func validNumber(s []byte) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		k := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			k++
		}
		return k
	}
	if i < len(s) && s[i] == '0' {
		i++
	} else if digits() == 0 {
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// walker walks a JSON body's envelope to its records array, keeping the wanted fields on the way.
type walker struct {
	j      *jsonReader
	wanted []string
	meta   map[string]json.RawMessage
	emit   func([]byte) error
	found  bool
	skip   []byte
	size   int // size of the last record, to size the next one's buffer
}

// readJSONPage streams the records of a JSON body at recordsPath (empty: the body is the array) to emit, and
// returns the values found at the wanted dotted paths (pagination fields such as next_cursor).
func readJSONPage(r io.Reader, recordsPath string, wanted []string, emit func(rec []byte) error) (map[string]json.RawMessage, error) {
	w := &walker{j: newJSONReader(r), wanted: wanted, meta: map[string]json.RawMessage{}, emit: emit}
	var path []string
	if recordsPath != "" {
		path = strings.Split(recordsPath, ".")
	}
	c, err := w.j.next()
	if err != nil {
		if err == io.EOF {
			return nil, errors.New("empty body")
		}
		return nil, err
	}
	if len(path) == 0 {
		w.found = true
		err = w.array(c)
	} else {
		if c != '{' {
			return nil, fmt.Errorf("body is not a JSON object (records: %q)", recordsPath)
		}
		err = w.object(path, "")
	}
	if err != nil {
		return nil, err
	}
	if !w.found {
		return nil, fmt.Errorf("body has no records array at %q", recordsPath)
	}
	if _, err := w.j.next(); err != io.EOF {
		if err == nil {
			return nil, w.j.syntax("data after the JSON body")
		}
		return nil, err
	}
	return w.meta, nil
}

// array streams the records of the array whose first byte c was consumed ("null" is an empty page).
func (w *walker) array(c byte) error {
	if c == 'n' {
		_, err := w.j.literal(nil, "null")
		return err
	}
	if c != '[' {
		return w.j.syntax("records are not an array")
	}
	c, err := w.j.next()
	if err != nil {
		return eof(err)
	}
	if c == ']' {
		return nil
	}
	for {
		rec, err := w.j.value(make([]byte, 0, w.size+w.size/4+16), c, 1)
		if err != nil {
			return err
		}
		w.size = len(rec)
		if err := w.emit(rec); err != nil {
			return err
		}
		if c, err = w.j.next(); err != nil {
			return eof(err)
		}
		switch c {
		case ',':
			if c, err = w.j.next(); err != nil {
				return eof(err)
			}
		case ']':
			return nil
		default:
			return w.j.syntax("expected ',' or ']' between records")
		}
	}
}

// object walks the object whose '{' was consumed: path leads to the records, prefix is the dotted path so far.
func (w *walker) object(path []string, prefix string) error {
	c, err := w.j.next()
	if err != nil {
		return eof(err)
	}
	if c == '}' {
		return nil
	}
	for {
		if c != '"' {
			return w.j.syntax("expected a string key")
		}
		raw, err := w.j.str(nil)
		if err != nil {
			return err
		}
		key := string(raw[1 : len(raw)-1])
		if strings.IndexByte(key, '\\') >= 0 {
			if json.Unmarshal(raw, &key) != nil {
				return w.j.syntax("bad key")
			}
		}
		if c, err = w.j.next(); err != nil {
			return eof(err)
		}
		if c != ':' {
			return w.j.syntax("expected ':' after a key")
		}
		if c, err = w.j.next(); err != nil {
			return eof(err)
		}
		full := prefix + key
		switch {
		case len(path) > 0 && key == path[0] && len(path) == 1:
			w.found = true
			err = w.array(c)
		case len(path) > 0 && key == path[0] && c == '{':
			err = w.object(path[1:], full+".")
		case w.wants(full):
			var v []byte
			v, err = w.j.value(nil, c, 1)
			w.meta[full] = v
		case c == '{' && w.wantsBelow(full):
			err = w.object(nil, full+".")
		default:
			w.skip, err = w.j.value(w.skip[:0], c, 1)
		}
		if err != nil {
			return err
		}
		if c, err = w.j.next(); err != nil {
			return eof(err)
		}
		switch c {
		case ',':
			if c, err = w.j.next(); err != nil {
				return eof(err)
			}
		case '}':
			return nil
		default:
			return w.j.syntax("expected ',' or '}' in an object")
		}
	}
}

func (w *walker) wants(p string) bool {
	for _, x := range w.wanted {
		if x == p {
			return true
		}
	}
	return false
}

func (w *walker) wantsBelow(p string) bool {
	for _, x := range w.wanted {
		if strings.HasPrefix(x, p+".") {
			return true
		}
	}
	return false
}
