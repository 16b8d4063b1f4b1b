package reconcile

import (
	"strings"
	"testing"
)

// TestPrefixWriterKeepsALastLineWithoutNewline: with several replicas each
// log line gets its container's name, and a last line that ends the stream
// without a newline is written out when the stream closes, not lost.
func TestPrefixWriterKeepsALastLineWithoutNewline(t *testing.T) {
	var out strings.Builder
	pw := &prefixWriter{w: &out, prefix: "web-1 | "}
	for _, chunk := range []string{"first li", "ne\nsecond\nla", "st"} {
		if _, err := pw.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pw.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "web-1 | first line\nweb-1 | second\nweb-1 | last"; out.String() != want {
		t.Fatalf("got %q, want %q", out.String(), want)
	}
}
