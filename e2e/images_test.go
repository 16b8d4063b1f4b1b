package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/build"
	"github.com/moby/moby/client"
)

// Test images, built FROM scratch from ./testapp by TestMain (see
// testapp/main.go for what the app does). All EXPOSE 8080 and run /app.
const (
	imageV1          = "orca-test/app:v1"          // VERSION=v1
	imageV2          = "orca-test/app:v2"          // VERSION=v2
	imageV3          = "orca-test/app:v3"          // VERSION=v3
	imageBroken      = "orca-test/app:broken"      // VERSION=broken, HEALTHZ_FAIL=1: /healthz answers 500
	imageHealthcheck = "orca-test/app:healthcheck" // VERSION=hc, Docker HEALTHCHECK /app healthcheck every 1s
)

// testAppPort is the port the test app listens on in every image.
const testAppPort = 8080

const (
	labelBinary     = "orca-test.binary"     // sha256 of /app
	labelDockerfile = "orca-test.dockerfile" // sha256 of the Dockerfile without its LABEL line
)

var testImages = []struct{ tag, lines string }{
	{imageV1, "ENV VERSION=v1\n"},
	{imageV2, "ENV VERSION=v2\n"},
	{imageV3, "ENV VERSION=v3\n"},
	{imageBroken, "ENV VERSION=broken HEALTHZ_FAIL=1\n"},
	{imageHealthcheck, "ENV VERSION=hc\n" +
		`HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["/app","healthcheck"]` + "\n"},
}

// buildTestImages compiles testapp once and builds every test image whose tag
// is missing or was built from another binary or Dockerfile.
func buildTestImages() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	ver, err := docker.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return err
	}
	arch := ver.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	bin, err := buildTestApp(ctx, arch)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(bin)
	binHash := hex.EncodeToString(sum[:])

	var wg sync.WaitGroup
	errs := make([]error, len(testImages))
	for i, img := range testImages {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ensureImage(ctx, img.tag, img.lines, bin, binHash)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// buildTestApp returns a static linux/arch build of ./testapp. -trimpath
// makes the binary (and so its hash) reproducible across runs.
func buildTestApp(ctx context.Context, arch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "orca-testapp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "app")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testapp")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build ./testapp: %v\n%s", err, b)
	}
	return os.ReadFile(out)
}

func ensureImage(ctx context.Context, tag, lines string, bin []byte, binHash string) error {
	dockerfile := "FROM scratch\nCOPY app /app\n" + lines + "EXPOSE 8080\nENTRYPOINT [\"/app\"]\n"
	dsum := sha256.Sum256([]byte(dockerfile))
	dfHash := hex.EncodeToString(dsum[:])
	dockerfile += fmt.Sprintf("LABEL %s=%s %s=%s\n", labelBinary, binHash, labelDockerfile, dfHash)

	var oldID string
	if img, err := docker.ImageInspect(ctx, tag); err == nil {
		if img.Config != nil && img.Config.Labels[labelBinary] == binHash && img.Config.Labels[labelDockerfile] == dfHash {
			return nil // up to date
		}
		oldID = img.ID
	} else if !isNotFound(err) {
		return fmt.Errorf("inspect %s: %w", tag, err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"app", 0o755, bin}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}

	res, err := docker.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags:        []string{tag},
		Dockerfile:  "Dockerfile",
		Remove:      true, // false would send rm=0 and keep intermediate containers
		ForceRemove: true,
		Version:     build.BuilderV1, // legacy builder: no BuildKit session needed
	})
	if err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	defer res.Body.Close()
	if err := readBuildStream(res.Body); err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	if oldID != "" { // drop the image this build replaced (fails harmlessly if in use)
		_, _ = docker.ImageRemove(ctx, oldID, client.ImageRemoveOptions{})
	}
	return nil
}

// readBuildStream drains the JSON message stream of /build and returns the
// first error in it, with the build output for context.
func readBuildStream(r io.Reader) error {
	var out strings.Builder
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Stream      string `json:"stream"`
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		out.WriteString(m.Stream)
		if m.Error != "" || m.ErrorDetail != nil {
			msg := m.Error
			if msg == "" {
				msg = m.ErrorDetail.Message
			}
			return fmt.Errorf("%s\n%s", msg, out.String())
		}
	}
}
