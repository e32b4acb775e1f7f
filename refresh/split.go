package refresh

import (
	"strings"
	"unicode"
)

// statement is one SQL statement of a step file and the 1-based line it starts on, so an error can point into
// the file.
type statement struct {
	sql  string
	line int
}

// splitStatements cuts a SQL script at the semicolons that end statements. It knows enough of PostgreSQL's
// lexical rules to skip semicolons inside string constants ('...', E'...'), quoted identifiers, dollar-quoted
// bodies and comments. Pieces holding only whitespace and comments are dropped.
//
// Each statement then runs on its own with the extended protocol, so a step file can use named parameters
// (@batch_from) and PostgreSQL plans it with their actual values.
func splitStatements(script string) []statement {
	var out []statement
	start, line, startLine := 0, 1, 1
	emit := func(end int) {
		s := script[start:end]
		if hasCode(s) {
			// Move the reported line to the first line with code, past blank lines and comments.
			lead := len(s) - len(strings.TrimLeftFunc(s, unicode.IsSpace))
			out = append(out, statement{sql: strings.TrimSpace(s), line: startLine + strings.Count(s[:lead], "\n")})
		}
	}
	i := 0
	for i < len(script) {
		c := script[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == '-' && strings.HasPrefix(script[i:], "--"):
			end := strings.IndexByte(script[i:], '\n')
			if end < 0 {
				i = len(script)
			} else {
				i += end
			}
		case c == '/' && strings.HasPrefix(script[i:], "/*"):
			depth := 0
			for i < len(script) {
				switch {
				case strings.HasPrefix(script[i:], "/*"):
					depth++
					i += 2
				case strings.HasPrefix(script[i:], "*/"):
					depth--
					i += 2
				default:
					if script[i] == '\n' {
						line++
					}
					i++
				}
				if depth == 0 {
					break
				}
			}
		case c == '\'':
			escapes := i > 0 && (script[i-1] == 'E' || script[i-1] == 'e') && (i < 2 || !isIdentByte(script[i-2]))
			i, line = skipQuoted(script, i, '\'', escapes, line)
		case c == '"':
			i, line = skipQuoted(script, i, '"', false, line)
		case c == '$' && (i == 0 || !isIdentByte(script[i-1])):
			tag, ok := dollarTag(script[i:])
			if !ok {
				i++
				continue
			}
			end := strings.Index(script[i+len(tag):], tag)
			if end < 0 {
				end = len(script) - i - len(tag)
			} else {
				end += len(tag)
			}
			line += strings.Count(script[i:i+len(tag)+end], "\n")
			i += len(tag) + end
		case c == ';':
			emit(i + 1)
			i++
			start, startLine = i, line
		default:
			i++
		}
	}
	emit(len(script))
	return out
}

// skipQuoted returns the index after the quoted token that starts at i, and the line count past it. A doubled
// quote stands for itself; with escapes, so does a backslash-escaped one.
func skipQuoted(s string, i int, q byte, escapes bool, line int) (int, int) {
	i++
	for i < len(s) {
		switch c := s[i]; {
		case c == '\n':
			line++
			i++
		case escapes && c == '\\':
			i += 2
		case c == q && i+1 < len(s) && s[i+1] == q:
			i += 2
		case c == q:
			return i + 1, line
		default:
			i++
		}
	}
	return i, line
}

// dollarTag returns the opening tag ($$ or $name$) at the start of s.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		if s[j] == '$' {
			return s[:j+1], true
		}
		if !isIdentByte(s[j]) || (j == 1 && s[j] >= '0' && s[j] <= '9') {
			return "", false
		}
	}
	return "", false
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// hasCode reports whether s holds anything but whitespace, comments and semicolons.
func hasCode(s string) bool {
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "--"):
			end := strings.IndexByte(s[i:], '\n')
			if end < 0 {
				return false
			}
			i += end
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i:], "*/")
			if end < 0 {
				return false
			}
			i += end + 2
		case s[i] == ';' || unicode.IsSpace(rune(s[i])):
			i++
		default:
			return true
		}
	}
	return false
}
