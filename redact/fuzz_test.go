package redact_test

import (
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/redact"
)

// FuzzRedact: for any value of at least redact.MinLen bytes and any text
// holding it, neither String nor a Writer fed the text in two chunks lets the
// value through, and both give the same output.
func FuzzRedact(f *testing.F) {
	f.Add("DB_PASSWORD", "hunter2-s3cret", "dial postgres://app:", "@db refused", 7)
	f.Add("TLS_KEY", pem, "key:\n", "\n", 40)
	f.Add("P", "correct\thorse  battery", "", "", 0)
	f.Add("TOKEN", "TOKEN", "${secrets.", "}", 3)
	f.Add("N", "}abc", "x", "abcabc", 2)
	f.Add("S", "secrets", "${", "}", 5)
	f.Add("X", "ab$", "", "{secrets.X}", 1)
	f.Fuzz(func(t *testing.T, name, value, before, after string, cut int) {
		if len(value) < redact.MinLen {
			return
		}
		name = identifier(name)
		r := redact.New(map[string]string{name: value})
		in := before + value + after
		out := r.String(in)
		if strings.Contains(out, value) {
			t.Fatalf("String(%q) = %q holds the value %q", in, out, value)
		}
		if cut < 0 {
			cut = -cut
		}
		cut %= len(in) + 1
		if got := writeInChunks(t, r, in, cut); got != out {
			t.Fatalf("Writer cut at %d gave %q, String %q", cut, got, out)
		}
	})
}

// identifier turns s into a secret name (letters, digits and _), as
// secrets set allows.
func identifier(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "S"
	}
	return string(b)
}
