// Package redact replaces the secret values a container was given with their
// references (${secrets.NAME}) in text that container wrote, before that text
// leaves orca-sync: rollout and hook errors, history, status, notifications,
// commit statuses and the logs API. The rule is documented for users in
// docs/guides/secrets.md.
//
// A Redactor works on the raw text, before any reformatting: collapsing
// whitespace or joining lines first would turn a value with a tab, two spaces
// or a newline into text that no longer contains it, yet still shows it.
package redact

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
)

// MinLen is the shortest text a Redactor replaces. A value (or one of its
// lines or escaped forms) shorter than that is left as it is: replacing every
// "42" or "on" in a log would mangle ordinary text, and where the reference
// then stands would itself tell the value. docs/guides/secrets.md tells users
// such a value is not a secret orca-sync can keep out of its output.
const MinLen = 4

// Redactor replaces secret values in text. It is immutable once built, so
// one Redactor may serve any number of goroutines; a Writer, which holds the
// end of a stream back, is one per stream.
type Redactor struct {
	// byFirst lists, for each first byte, the texts to replace that start
	// with it, longest first, so that at any position the longest wins and a
	// value containing another is replaced whole.
	byFirst [256][]match
	maxLen  int
	// withhold is set in the one case no replacement can be proven not to
	// recreate a value (every byte value occurs in some value): then nothing
	// of the text is let through.
	withhold bool
}

// match is one text to replace and what replaces it.
type match struct {
	text, with string
}

// New returns a Redactor of values (secret name → value). It replaces, for
// each value of at least MinLen bytes: the value; the value without its
// surrounding white space; each line of a value of several (a PEM key), the
// line's surrounding white space aside; and each of these as url.QueryEscape,
// url.PathEscape and json.Marshal (without the quotes, with and without its
// HTML escaping of <, > and &) write it. A nil or empty map gives a Redactor
// that changes nothing.
func New(values map[string]string) *Redactor {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	slices.Sort(names) // two secrets of one value: the first name is shown
	byText := map[string]string{}
	var texts []string
	for _, n := range names {
		for _, t := range forms(values[n]) {
			if _, dup := byText[t]; !dup {
				byText[t] = n
				texts = append(texts, t)
			}
		}
	}
	r := &Redactor{}
	if len(texts) == 0 {
		return r
	}
	with := placeholders(names, texts)
	if with == nil {
		r.withhold = true
		return r
	}
	slices.SortFunc(texts, func(a, b string) int {
		if len(a) != len(b) {
			return len(b) - len(a)
		}
		return strings.Compare(a, b)
	})
	for _, t := range texts {
		r.byFirst[t[0]] = append(r.byFirst[t[0]], match{text: t, with: with[byText[t]]})
		r.maxLen = max(r.maxLen, len(t))
	}
	return r
}

// forms returns the texts of v to replace, at least MinLen bytes each.
func forms(v string) []string {
	pieces := []string{v, strings.TrimSpace(v)}
	if strings.Contains(v, "\n") {
		for line := range strings.SplitSeq(v, "\n") {
			pieces = append(pieces, strings.TrimSpace(line))
		}
	}
	var out []string
	for _, p := range pieces {
		for _, f := range []string{p, url.QueryEscape(p), url.PathEscape(p), jsonEscape(p, true), jsonEscape(p, false)} {
			if len(f) >= MinLen && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
	}
	return out
}

// jsonEscape is s as encoding/json writes it in a string, without the quotes.
func jsonEscape(s string, html bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(html)
	if err := enc.Encode(s); err != nil {
		return s // a string always encodes
	}
	return string(bytes.TrimSuffix(bytes.TrimSpace(b.Bytes()), []byte(`"`))[1:])
}

// String returns s with every secret value in it replaced.
func (r *Redactor) String(s string) string {
	if r == nil {
		return s
	}
	if r.withhold {
		return ""
	}
	if r.maxLen == 0 {
		return s
	}
	var b strings.Builder
	r.scan(&b, s, true)
	return b.String()
}

// scan writes s to b, replacing what it should, leftmost-longest. When final
// is false more text may follow s: it stops at the first position where a
// text to replace could still begin and returns how much of s it wrote (the
// rest is for the caller to hold back); at any other position it decides as
// it would on the whole text, so a stream redacts as String does.
func (r *Redactor) scan(b *strings.Builder, s string, final bool) int {
	done := 0 // s[:done] is written
	for i := 0; i < len(s); {
		candidates := r.byFirst[s[i]]
		if len(candidates) == 0 {
			i++
			continue
		}
		if !final && len(s)-i < r.maxLen && couldStart(candidates, s[i:]) {
			b.WriteString(s[done:i])
			return i
		}
		m, ok := longestAt(candidates, s[i:])
		if !ok {
			i++
			continue
		}
		b.WriteString(s[done:i])
		b.WriteString(m.with)
		i += len(m.text)
		done = i
	}
	b.WriteString(s[done:])
	return len(s)
}

// couldStart reports whether rest is the start of a text to replace longer
// than rest: whether it matches depends on what follows.
func couldStart(candidates []match, rest string) bool {
	for _, m := range candidates {
		if len(m.text) <= len(rest) {
			return false // the rest are no longer either
		}
		if strings.HasPrefix(m.text, rest) {
			return true
		}
	}
	return false
}

func longestAt(candidates []match, rest string) (match, bool) {
	for _, m := range candidates {
		if strings.HasPrefix(rest, m.text) {
			return m, true
		}
	}
	return match{}, false
}
