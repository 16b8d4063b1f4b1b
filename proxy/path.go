package proxy

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// Path cleaning (docs/guides/proxy-and-tls.md, routing). Routes are a
// boundary only if the path that is routed is the path the upstream acts
// on, so the proxy cleans the request path once, routes the result and
// forwards the result. An upstream that decodes and normalises the path
// again must arrive where the proxy did; a path it could read otherwise is
// refused with 400 instead of being guessed at:
//
//   - `.` and `..` segments (also spelled %2e) are resolved and `//` is
//     merged, as RFC 3986 section 5.2.4 removes dot segments;
//   - `..` above the root is ambiguous (one server stops at the root,
//     another fails) and gets 400, as nginx answers;
//   - a segment that decodes to `/`, `\` or NUL (%2f, %5c, a raw `\`,
//     %00) is ambiguous: many upstreams split on a decoded slash, Windows
//     and some frameworks on a backslash, C code stops at NUL;
//   - so is a segment whose second decoding is a dot segment or holds one of
//     those bytes (%252e%252e, %252f): an upstream that decodes twice
//     would see another path;
//   - and a `.` or `..` with `;parameters` (`..;x`), which servlet
//     containers strip back to a dot segment.
//
// Every other segment goes upstream as the client encoded it, with the bytes
// not allowed raw in a path percent-encoded. The query is left untouched.

// errAmbiguousPath is the 400 answer's cause.
var errAmbiguousPath = errors.New("ambiguous request path")

// segment is one path segment, as sent (escaped) and decoded.
type segment struct{ raw, dec string }

// cleanPath is a cleaned request path: no empty, `.` or `..` segments.
type cleanPath struct {
	segs []segment
	dir  bool // a trailing slash
}

// requestPath returns the path of r's request-target as the client sent it
// (origin-form or absolute-form), before any decoding. ok is false for a
// target that is no path ("*", authority-form, an opaque URI such as
// "a:b", whose Opaque the upstream would be sent instead of a path).
func requestPath(r *http.Request) (string, bool) {
	if r.URL.Opaque != "" {
		return "", false
	}
	uri := r.RequestURI
	if uri == "" { // a request made in-process, not read from a client
		uri = r.URL.EscapedPath()
	}
	if i := strings.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if strings.HasPrefix(uri, "/") {
		return uri, true
	}
	if _, rest, ok := strings.Cut(uri, "://"); ok {
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			return rest[i:], true
		}
		return "/", true
	}
	return "", false
}

// parsePath cleans an escaped absolute path, or returns errAmbiguousPath.
func parsePath(escaped string) (cleanPath, error) {
	parts := strings.Split(escaped[1:], "/")
	cp := cleanPath{segs: make([]segment, 0, len(parts))}
	for _, raw := range parts {
		cp.dir = true
		if raw == "" {
			continue
		}
		dec, err := url.PathUnescape(raw)
		if err != nil || ambiguousSegment(dec) {
			return cleanPath{}, errAmbiguousPath
		}
		switch dec {
		case ".":
		case "..":
			if len(cp.segs) == 0 {
				return cleanPath{}, errAmbiguousPath
			}
			cp.segs = cp.segs[:len(cp.segs)-1]
		default:
			cp.segs = append(cp.segs, segment{raw: escapeSegment(raw), dec: dec})
			cp.dir = false
		}
	}
	return cp, nil
}

// ambiguousSegment reports whether an upstream could read the decoded
// segment dec as something other than one segment named dec, decoding it
// once more included.
func ambiguousSegment(dec string) bool {
	if unsafeSegment(dec) {
		return true
	}
	if !strings.Contains(dec, "%") {
		return false
	}
	twice, err := url.PathUnescape(dec)
	return err == nil && twice != dec && (twice == "." || twice == ".." || unsafeSegment(twice))
}

// unsafeSegment reports a separator or NUL in a decoded segment, or a dot
// segment with ;parameters.
func unsafeSegment(s string) bool {
	if strings.ContainsAny(s, "/\\\x00") {
		return true
	}
	name, _, ok := strings.Cut(s, ";")
	return ok && (name == "." || name == "..")
}

// escapeSegment percent-encodes the bytes of a raw segment that may not
// appear raw in a path (RFC 3986 pchar), leaving the client's own escapes.
func escapeSegment(raw string) string {
	n := 0
	for i := 0; i < len(raw); i++ {
		if !pathByte(raw[i]) {
			n++
		}
	}
	if n == 0 {
		return raw
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(raw)+2*n)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if pathByte(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	return string(b)
}

// pathByte reports whether c may stand raw in a path segment ('%' too: the
// segment decoded, so every '%' starts an escape).
func pathByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!$&'()*+,;=:@%", c) >= 0
}

// decoded is the path routes match.
func (cp cleanPath) decoded() string { return cp.join(func(s segment) string { return s.dec }) }

// escaped is the path the upstream gets.
func (cp cleanPath) escaped() string { return cp.join(func(s segment) string { return s.raw }) }

func (cp cleanPath) join(part func(segment) string) string {
	if len(cp.segs) == 0 {
		return "/"
	}
	var b strings.Builder
	for _, s := range cp.segs {
		b.WriteByte('/')
		b.WriteString(part(s))
	}
	if cp.dir {
		b.WriteByte('/')
	}
	return b.String()
}

// strip removes the segments of a matched route prefix (a cleaned path
// matches on a segment boundary, so its first segments are the prefix's).
func (cp cleanPath) strip(prefix string) cleanPath {
	n := 0
	for s := range strings.SplitSeq(prefix, "/") {
		if s != "" {
			n++
		}
	}
	n = min(n, len(cp.segs))
	out := cleanPath{segs: cp.segs[n:], dir: cp.dir}
	if len(out.segs) == 0 {
		out.dir = false
	}
	return out
}

// cleanPrefix is a route prefix in the form cleaned paths take, so a route
// written "/a/./b" or "/a//b" still matches "/a/b"; a trailing slash stays.
// Prefixes are decoded text already: nothing is unescaped.
func cleanPrefix(prefix string) string {
	var segs []string
	for s := range strings.SplitSeq(prefix, "/") {
		switch s {
		case "", ".":
		case "..":
			if len(segs) > 0 {
				segs = segs[:len(segs)-1]
			}
		default:
			segs = append(segs, s)
		}
	}
	if len(segs) == 0 {
		return "/"
	}
	out := "/" + strings.Join(segs, "/")
	if strings.HasSuffix(prefix, "/") {
		out += "/"
	}
	return out
}
