package proxy

import (
	"bufio"
	"bytes"
	"net/http"
)

// The fast path reads most upstream response heads without net/http: the
// common shape — HTTP/1.1, a final status, one Content-Length, plain
// header lines — is parsed straight into the client's header map from the
// bytes already buffered, where http.ReadResponse would build a header map,
// a Response and its body reader, and copyResponseHeader a second map.
// Profiles under wrk put that at about a tenth of the proxy's CPU
// (docs/design.md, the proxy's speed). Anything else — chunked or unsized
// bodies, trailers, Connection headers, 1xx, 204/304, HTTP/1.0, a head not
// yet buffered whole, any byte a strict parser might read otherwise — is
// left untouched for http.ReadResponse.

// maxSimpleHeaders bounds the header lines of a head parsed here.
const maxSimpleHeaders = 32

// simpleHead is a response head parsed by parseSimpleHead.
type simpleHead struct {
	code   int
	length int64
	sse    bool // Content-Type text/event-stream: flush every write
}

// span is one header line's name and value, offsets into the head.
type span struct{ k0, k1, v0, v1 int }

// parseSimpleHead parses the response head at the start of br's buffer when
// it has the common shape, adds its headers to dst and consumes it. ok
// false: nothing was read or written.
func parseSimpleHead(br *bufio.Reader, dst http.Header) (h simpleHead, ok bool) {
	data, _ := br.Peek(br.Buffered())
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return h, false
	}
	head := data[:end+2] // each line with its CRLF
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	if h.code, ok = statusLine(line); !ok {
		return h, false
	}
	var spans [maxSimpleHeaders]span
	n, off, lengths := 0, len(line)+2, 0
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		s, ok := headerLine(line, off)
		if !ok || n == maxSimpleHeaders {
			return h, false
		}
		off += len(line) + 2
		switch name := head[s.k0:s.k1]; {
		case equalFold(name, "Content-Length"):
			lengths++
			if h.length, ok = digits(head[s.v0:s.v1]); !ok {
				return h, false
			}
		case equalFold(name, "Content-Type"):
			h.sse = bytes.HasPrefix(head[s.v0:s.v1], []byte("text/event-stream"))
		case isFraming(name):
			return h, false
		}
		spans[n] = s
		n++
	}
	if lengths != 1 {
		return h, false
	}
	str := string(head) // one allocation holds every name and value
	vals := make([]string, n)
	for i, s := range spans[:n] {
		vals[i] = str[s.v0:s.v1]
		k := http.CanonicalHeaderKey(str[s.k0:s.k1])
		dst[k] = append(dst[k], vals[i:i+1:i+1]...)
	}
	br.Discard(end + 4)
	return h, true
}

// statusLine reads "HTTP/1.1 NNN reason" for a final status from 200 to 599
// that has a body (not 204 or 304).
func statusLine(l []byte) (int, bool) {
	if len(l) < 13 || string(l[:9]) != "HTTP/1.1 " || l[12] != ' ' {
		return 0, false
	}
	code := 0
	for _, c := range l[9:12] {
		if c < '0' || c > '9' {
			return 0, false
		}
		code = code*10 + int(c-'0')
	}
	for _, c := range l[13:] {
		if !fieldByte(c) {
			return 0, false
		}
	}
	return code, code >= 200 && code <= 599 && code != 204 && code != 304
}

// headerLine splits "Name: value" (off is the line's offset in the head),
// trimming the value's surrounding blanks. A name of other than token
// characters, a value with a control character, or a folded line is refused.
func headerLine(l []byte, off int) (span, bool) {
	colon := bytes.IndexByte(l, ':')
	if colon <= 0 {
		return span{}, false
	}
	for _, c := range l[:colon] {
		if !tokenByte(c) {
			return span{}, false
		}
	}
	v0, v1 := colon+1, len(l)
	for v0 < v1 && (l[v0] == ' ' || l[v0] == '\t') {
		v0++
	}
	for v1 > v0 && (l[v1-1] == ' ' || l[v1-1] == '\t') {
		v1--
	}
	for _, c := range l[v0:v1] {
		if !fieldByte(c) {
			return span{}, false
		}
	}
	return span{off, off + colon, off + v0, off + v1}, true
}

// digits parses a Content-Length: 1 to 18 decimal digits.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// isFraming reports the headers that change how the message is framed or
// which headers pass: those heads go to net/http.
func isFraming(name []byte) bool {
	for _, k := range [...]string{"Transfer-Encoding", "Connection", "Keep-Alive", "Proxy-Connection",
		"Trailer", "Upgrade", "Te"} {
		if equalFold(name, k) {
			return true
		}
	}
	return false
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// tokenByte: RFC 9110 tchar.
func tokenByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// fieldByte: a field value's VCHAR, SP, HTAB or obs-text.
func fieldByte(c byte) bool { return c == '\t' || (c >= ' ' && c != 0x7f) }
