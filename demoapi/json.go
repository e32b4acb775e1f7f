package demoapi

import (
	"strconv"
	"time"
)

// The API renders JSON by appending bytes rather than through encoding/json: it serves millions of records
// and must never be the bottleneck of a benchmark. The tests check that every record renders exactly as
// encoding/json would marshal the exported struct.

// AppendJSON appends the customer exactly as the API sends it.
func (c Customer) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, c.ID)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, c.Name)
	dst = append(dst, `,"plan":`...)
	dst = appendString(dst, c.Plan)
	dst = append(dst, `,"country":`...)
	dst = appendString(dst, c.Country)
	dst = append(dst, `,"timezone":`...)
	dst = appendString(dst, c.TimeZone)
	dst = append(dst, `,"created_at":`...)
	dst = appendTime(dst, c.CreatedAt.Unix())
	dst = append(dst, `,"updated_at":`...)
	dst = appendTime(dst, c.UpdatedAt.Unix())
	return append(dst, '}')
}

// AppendJSON appends the user exactly as the API sends it.
func (u User) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, u.ID)
	dst = append(dst, `,"customer_id":`...)
	dst = appendString(dst, u.CustomerID)
	dst = append(dst, `,"email":`...)
	dst = appendString(dst, u.Email)
	dst = append(dst, `,"name":`...)
	dst = appendString(dst, u.Name)
	dst = append(dst, `,"role":`...)
	dst = appendString(dst, u.Role)
	dst = append(dst, `,"created_at":`...)
	dst = appendTime(dst, u.CreatedAt.Unix())
	dst = append(dst, `,"updated_at":`...)
	dst = appendTime(dst, u.UpdatedAt.Unix())
	return append(dst, '}')
}

// AppendJSON appends the event exactly as the API sends it.
func (e Event) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, e.ID)
	dst = append(dst, `,"customer_id":`...)
	dst = appendString(dst, e.CustomerID)
	dst = append(dst, `,"user_id":`...)
	dst = appendString(dst, e.UserID)
	dst = append(dst, `,"feature":`...)
	dst = appendString(dst, e.Feature)
	dst = append(dst, `,"occurred_at":`...)
	dst = appendTime(dst, e.OccurredAt.Unix())
	dst = append(dst, `,"updated_at":`...)
	dst = appendTime(dst, e.UpdatedAt.Unix())
	dst = append(dst, `,"properties":`...)
	dst = e.Properties.AppendJSON(dst)
	return append(dst, '}')
}

// AppendJSON appends the properties object exactly as the API sends it.
func (p Properties) AppendJSON(dst []byte) []byte {
	dst = append(dst, `{"client":`...)
	dst = appendString(dst, p.Client)
	dst = append(dst, `,"duration_ms":`...)
	dst = strconv.AppendInt(dst, int64(p.DurationMS), 10)
	if p.Revision != 0 {
		dst = append(dst, `,"revision":`...)
		dst = strconv.AppendInt(dst, int64(p.Revision), 10)
	}
	return append(dst, '}')
}

// appendString appends s as a JSON string. The generated text is plain, but escaping keeps the output
// valid whatever a future word list holds.
func appendString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendTime appends a Unix time in seconds as a quoted RFC 3339 UTC timestamp ("2026-11-24T13:05:09Z")
// without going through time.Time, which is several times slower.
func appendTime(dst []byte, sec int64) []byte {
	days := sec / 86400
	rem := sec % 86400
	if rem < 0 {
		rem += 86400
		days--
	}
	y, m, d := civil(days)
	dst = append(dst, '"')
	dst = appendPadded(dst, uint64(y), 4)
	dst = append(dst, '-')
	dst = appendPadded(dst, uint64(m), 2)
	dst = append(dst, '-')
	dst = appendPadded(dst, uint64(d), 2)
	dst = append(dst, 'T')
	dst = appendPadded(dst, uint64(rem/3600), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, uint64(rem/60%60), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, uint64(rem%60), 2)
	return append(dst, 'Z', '"')
}

// civil converts days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil,
// inverted).
func civil(days int64) (year, month, day int64) {
	z := days + 719468
	era := z / 146097
	if z < 0 && z%146097 != 0 {
		era--
	}
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	year = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	day = doy - (153*mp+2)/5 + 1
	if mp < 10 {
		month = mp + 3
	} else {
		month = mp - 9
	}
	if month <= 2 {
		year++
	}
	return year, month, day
}

// appendPadded appends v in decimal, left-padded with zeros to width digits.
func appendPadded(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 || len(buf)-i < width-1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	buf[i] = byte('0' + v)
	return append(dst, buf[i:]...)
}

// unix converts seconds to the time.Time the exported records carry.
func unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }
