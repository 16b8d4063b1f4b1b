package docker

import (
	"errors"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/build"
)

// TestDockerReadBuild reads a classic builder stream: text split into lines
// (also across messages), and the builder's error as a *build.Refused.
func TestDockerReadBuild(t *testing.T) {
	stream := `{"stream":"Step 1/2 : FROM scratch\n"}
{"stream":" ---\u003e \n"}{"stream":"Step 2/2 : COPY app /app"}{"stream":"\n"}
{"errorDetail":{"message":"COPY failed: file not found in build context"},"error":"COPY failed: file not found in build context"}
`
	var lines []string
	err := readBuild(strings.NewReader(stream), func(l string) { lines = append(lines, l) })
	var refused *build.Refused
	if !errors.As(err, &refused) || refused.Message != "COPY failed: file not found in build context" {
		t.Fatalf("error = %v, want the builder's error as Refused", err)
	}
	want := []string{"Step 1/2 : FROM scratch", " ---> ", "Step 2/2 : COPY app /app"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", lines, want)
	}
	lines = nil
	if err := readBuild(strings.NewReader(`{"stream":"Successfully built 0123\n"}`), func(l string) { lines = append(lines, l) }); err != nil || len(lines) != 1 {
		t.Errorf("good build: %v, %q", err, lines)
	}
}
