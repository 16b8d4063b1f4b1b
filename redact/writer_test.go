package redact_test

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/orca-sync/orca-sync/redact"
)

// writeInChunks writes in to a Writer in chunks cut at the given offsets and
// returns what reached the underlying writer after Close.
func writeInChunks(t *testing.T, r *redact.Redactor, in string, cuts ...int) string {
	t.Helper()
	var out bytes.Buffer
	w := r.Writer(&out)
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if n, err := w.Write([]byte(in[prev:c])); err != nil || n != c-prev {
			t.Fatalf("Write = %d, %v", n, err)
		}
		prev = c
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// TestWriterChunkBoundaries: a stream cut anywhere, in two or byte by byte,
// comes out as String redacts the whole text.
func TestWriterChunkBoundaries(t *testing.T) {
	for _, c := range redactCases {
		t.Run(c.name, func(t *testing.T) {
			r := redact.New(c.values)
			for cut := range len(c.in) + 1 {
				if got := writeInChunks(t, r, c.in, cut); got != c.want {
					t.Fatalf("cut at %d: got %q, want %q", cut, got, c.want)
				}
			}
			bytewise := make([]int, 0, len(c.in))
			for i := 1; i < len(c.in); i++ {
				bytewise = append(bytewise, i)
			}
			if got := writeInChunks(t, r, c.in, bytewise...); got != c.want {
				t.Fatalf("byte by byte: got %q, want %q", got, c.want)
			}
		})
	}
}

// TestWriterHoldsBackOnlyAPossibleValue: text that cannot be the start of a
// value reaches the reader at once (a log follow is not delayed); the start
// of one waits for the next write.
func TestWriterHoldsBackOnlyAPossibleValue(t *testing.T) {
	var out bytes.Buffer
	w := redact.New(map[string]string{"P": "hunter2-s3cret"}).Writer(&out)
	write := func(s, want string) {
		t.Helper()
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if out.String() != want {
			t.Fatalf("after writing %q the reader has %q, want %q", s, out.String(), want)
		}
	}
	write("starting\n", "starting\n")
	write("password hunt", "starting\npassword ")
	write("er2-s3", "starting\npassword ")
	write("cret ok\n", "starting\npassword ${secrets.P} ok\n")
	write("hunting", "starting\npassword ${secrets.P} ok\nhunting")
	write(" hun", "starting\npassword ${secrets.P} ok\nhunting ")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if want := "starting\npassword ${secrets.P} ok\nhunting hun"; out.String() != want {
		t.Fatalf("after Close the reader has %q, want %q", out.String(), want)
	}
}

// TestWriterWithoutValuesPassesThrough: no values, no holding back.
func TestWriterWithoutValuesPassesThrough(t *testing.T) {
	var out bytes.Buffer
	w := redact.New(nil).Writer(&out)
	if _, err := w.Write([]byte("a b")); err != nil || out.String() != "a b" {
		t.Fatalf("got %q, %v", out.String(), err)
	}
}

// brokenPipe is a reader that went away.
type brokenPipe struct{}

func (brokenPipe) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }

func TestWriterReturnsTheUnderlyingError(t *testing.T) {
	w := redact.New(map[string]string{"P": "hunter2"}).Writer(brokenPipe{})
	if n, err := w.Write([]byte("some text")); !errors.Is(err, io.ErrClosedPipe) || n != 0 {
		t.Fatalf("Write = %d, %v; want 0 and the underlying error", n, err)
	}
}
