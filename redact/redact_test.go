package redact_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/redact"
)

// pem is a made-up key in the shape of a real one: lines of base64 between
// the armour lines.
const pem = "-----BEGIN PRIVATE KEY-----\n" +
	"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n" +
	"MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n" +
	"NMoSfm76oqFvAp8Gy0iz5sxjZmSnXyCdPEovGhLa0VzMaQ8s+CLOyS56YyCFGeJZ\n" +
	"-----END PRIVATE KEY-----\n"

var redactCases = []struct {
	name   string
	values map[string]string
	in     string
	want   string
}{
	{"plain", map[string]string{"DB_PASSWORD": "hunter2-s3cret"},
		"dial postgres://app:hunter2-s3cret@db/app refused",
		"dial postgres://app:${secrets.DB_PASSWORD}@db/app refused"},
	{"every occurrence", map[string]string{"T": "tok3n"},
		"tok3n tok3ntok3n", "${secrets.T} ${secrets.T}${secrets.T}"},
	{"tab", map[string]string{"P": "correct\thorse"},
		"auth failed for correct\thorse\n", "auth failed for ${secrets.P}\n"},
	{"two spaces", map[string]string{"P": "correct  horse"},
		"auth failed for 'correct  horse'", "auth failed for '${secrets.P}'"},
	{"newline in value, printed whole", map[string]string{"P": "first-line\nsecond-line"},
		"got first-line\nsecond-line!", "got ${secrets.P}!"},
	{"newline in value, each line alone", map[string]string{"P": "first-line\nsecond-line"},
		"a=first-line b=second-line", "a=${secrets.P} b=${secrets.P}"},
	{"newline in value, printed with CRLF (a TTY)", map[string]string{"P": "first-line\nsecond-line"},
		"first-line\r\nsecond-line\r\n", "${secrets.P}\r\n${secrets.P}\r\n"},
	{"trailing newline of a value read from a file", map[string]string{"P": "s3cret-value\n"},
		"token=s3cret-value;", "token=${secrets.P};"},
	{"PEM whole", map[string]string{"TLS_KEY": pem},
		"loading key:\n" + pem + "failed", "loading key:\n${secrets.TLS_KEY}failed"},
	{"PEM lines indented", map[string]string{"TLS_KEY": pem},
		"bad key:\n    " + strings.ReplaceAll(strings.TrimSpace(pem), "\n", "\n    "),
		"bad key:\n    ${secrets.TLS_KEY}\n    ${secrets.TLS_KEY}\n    ${secrets.TLS_KEY}\n    ${secrets.TLS_KEY}\n    ${secrets.TLS_KEY}"},
	{"PEM JSON-escaped", map[string]string{"TLS_KEY": pem},
		`{"key":"` + strings.ReplaceAll(pem, "\n", `\n`) + `"}`, `{"key":"${secrets.TLS_KEY}"}`},
	{"query-escaped", map[string]string{"P": "p@ss word/&x"},
		"GET /login?pw=p%40ss+word%2F%26x", "GET /login?pw=${secrets.P}"},
	{"path-escaped", map[string]string{"P": "p@ss word/&x"},
		"GET /u/p@ss%20word%2F&x", "GET /u/${secrets.P}"},
	{"JSON-escaped with HTML escaping", map[string]string{"P": `a"b\c<d>&e`},
		`{"pw":"a\"b\\c\u003cd\u003e\u0026e"}`, `{"pw":"${secrets.P}"}`},
	{"JSON-escaped without HTML escaping", map[string]string{"P": `a"b\c<d>&e`},
		`{"pw":"a\"b\\c<d>&e"}`, `{"pw":"${secrets.P}"}`},
	{"a value containing another is replaced whole", map[string]string{"LONG": "hunter2-long", "SHORT": "hunter2"},
		"hunter2-long and hunter2", "${secrets.LONG} and ${secrets.SHORT}"},
	{"overlapping values: the leftmost wins, the other is cut", map[string]string{"A": "abcd-1234", "B": "1234-wxyz"},
		"abcd-1234-wxyz", "${secrets.A}-wxyz"},
	{"two secrets of one value: the first name", map[string]string{"B_COPY": "same-value", "A_ORIG": "same-value"},
		"is same-value", "is ${secrets.A_ORIG}"},
	{"a value under 4 bytes is left", map[string]string{"PIN": "42", "ABC": "abc"},
		"pin 42 abc", "pin 42 abc"},
	{"a value of 4 bytes is replaced", map[string]string{"PIN": "4242"},
		"pin 4242", "pin ${secrets.PIN}"},
	{"a short line of a longer value is left", map[string]string{"P": "long-enough\nab"},
		"long-enough ab", "${secrets.P} ab"},
	{"a value that is part of its own reference is masked", map[string]string{"TOKEN": "TOKEN"},
		"the TOKEN is TOKEN", "the *** is ***"},
	{"a value starting with } is masked", map[string]string{"N": "}abc"},
		"x}abcabc", "x***abc"},
	{"the mask avoids the value's bytes", map[string]string{"N": "}***"},
		"x}*** y", "x### y"},
	{"no values", nil, "nothing to hide", "nothing to hide"},
}

func TestString(t *testing.T) {
	for _, c := range redactCases {
		t.Run(c.name, func(t *testing.T) {
			if got := redact.New(c.values).String(c.in); got != c.want {
				t.Errorf("String(%q)\n got %q\nwant %q", c.in, got, c.want)
			}
		})
	}
}

func TestNilRedactorChangesNothing(t *testing.T) {
	var r *redact.Redactor
	if got := r.String("a secret"); got != "a secret" {
		t.Errorf("nil Redactor: %q", got)
	}
}

// TestPEMLeavesNoLine: whatever the reformatting after redaction, no line of
// the key survives.
func TestPEMLeavesNoLine(t *testing.T) {
	r := redact.New(map[string]string{"TLS_KEY": pem})
	in := "key one:\n" + pem + "key two: " + strings.ReplaceAll(pem, "\n", " ") + "\n" + strings.ReplaceAll(pem, "\n", "\t")
	out := r.String(in)
	for line := range strings.SplitSeq(strings.TrimSpace(pem), "\n") {
		if strings.Contains(out, line) {
			t.Errorf("line %q of the key is in %q", line, out)
		}
	}
}

// BenchmarkString redacts 1 MiB of log lines, a few holding a value, with a
// PEM key and nine short secrets: go test ./redact -bench . -run '^$'
func BenchmarkString(b *testing.B) {
	values := map[string]string{"TLS_KEY": pem}
	for i := range 9 {
		values[fmt.Sprintf("S%d", i)] = fmt.Sprintf("secret-value-%d-%d", i, i*7919)
	}
	r := redact.New(values)
	var log strings.Builder
	for i := 0; log.Len() < 1<<20; i++ {
		fmt.Fprintf(&log, "2026-01-02T03:04:05Z INFO request %d served in 12ms path=/api/v1/items?page=%d\n", i, i)
		if i%1000 == 0 {
			log.WriteString("ERROR connect: secret-value-3-23757 refused\n")
		}
	}
	in := log.String()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r.String(in)
	}
}
