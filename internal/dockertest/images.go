package dockertest

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

// Labels an image built here carries, so that a later run rebuilds it only
// when the binary or the Dockerfile changed.
const (
	LabelBinary     = "orca-test.binary"     // sha256 of the binary
	LabelDockerfile = "orca-test.dockerfile" // sha256 of the Dockerfile without its LABEL line
)

// Program is a Go main package compiled into the test images.
type Program struct {
	// Dir is the package's directory (relative to the test's working
	// directory, or absolute).
	Dir string
	// Binary is the file name of the binary in the image: it is /Binary.
	Binary string
	// Standalone builds Dir's .go files as a module of their own (stdlib
	// only), so the build does not depend on the state of this repository's
	// go.mod.
	Standalone bool
}

// Image is one FROM scratch image holding the Program's binary at /Binary.
type Image struct {
	Tag string
	// Lines are the Dockerfile lines after FROM scratch and the COPY of the
	// binary: ENV, EXPOSE, HEALTHCHECK, ENTRYPOINT or CMD.
	Lines string
	// Files are host files copied into the image, each before Lines.
	Files []File
}

// File is a host file an Image holds.
type File struct {
	// Host is its path on this machine; Path where the image has it.
	Host, Path string
}

// Busybox is Debian's static busybox (package busybox-static, which
// .ci/install-test-parts installs): a shell for a FROM scratch image.
var Busybox = File{Host: "/bin/busybox", Path: "/bin/busybox"}

// BuildImages compiles prog once for the engine's architecture and builds
// every image whose tag is missing or was built from another binary or
// Dockerfile, in parallel, with the legacy builder (no registry and no
// BuildKit session needed).
func BuildImages(ctx context.Context, cli *client.Client, prog Program, images ...Image) error {
	ver, err := cli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return fmt.Errorf("docker version: %w", err)
	}
	arch := ver.Arch
	if arch == "" {
		arch = runtime.GOARCH
	}
	bin, err := Compile(ctx, prog, arch)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(images))
	for i, img := range images {
		wg.Go(func() { errs[i] = ensureImage(ctx, cli, prog.Binary, img, bin) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Compile returns a static linux/arch build of prog. -trimpath makes the
// binary (and so its hash, and whether an image is rebuilt) reproducible
// across runs.
func Compile(ctx context.Context, prog Program, arch string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "orca-test-bin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, prog.Binary)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, ".")
	cmd.Dir = prog.Dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
	if prog.Standalone {
		src := filepath.Join(dir, "src")
		if err := copyModule(prog.Dir, src, prog.Binary); err != nil {
			return nil, fmt.Errorf("compile %s: %w", prog.Dir, err)
		}
		cmd.Dir = src
		cmd.Env = append(cmd.Env, "GOWORK=off", "GOFLAGS=", "GOTOOLCHAIN=local")
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("compile %s: %v\n%s", prog.Dir, err, b)
	}
	return os.ReadFile(out)
}

// copyModule copies the .go files (tests left out) of from into a new
// module named name in to.
func copyModule(from, to, name string) error {
	files, err := filepath.Glob(filepath.Join(from, "*.go"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(to, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644)
}

func ensureImage(ctx context.Context, cli *client.Client, binary string, img Image, bin []byte) error {
	bsum := sha256.Sum256(bin)
	binHash := hex.EncodeToString(bsum[:])
	files := []tarFile{{binary, 0o755, bin}}
	dockerfile := "FROM scratch\nCOPY " + binary + " /" + binary + "\n"
	for i, f := range img.Files {
		b, err := os.ReadFile(f.Host)
		if err != nil {
			return fmt.Errorf("build %s: %w (see .ci/install-test-parts)", img.Tag, err)
		}
		name := fmt.Sprintf("file%d", i)
		files = append(files, tarFile{name, 0o755, b})
		sum := sha256.Sum256(b)
		// The file's hash in the Dockerfile rebuilds the image when it changes.
		dockerfile += fmt.Sprintf("COPY %s %s\n# %s\n", name, f.Path, hex.EncodeToString(sum[:8]))
	}
	dockerfile += img.Lines
	dsum := sha256.Sum256([]byte(dockerfile))
	dfHash := hex.EncodeToString(dsum[:])
	dockerfile += fmt.Sprintf("LABEL %s=%s %s=%s\n", LabelBinary, binHash, LabelDockerfile, dfHash)

	var oldID string
	if cur, err := cli.ImageInspect(ctx, img.Tag); err == nil {
		if cur.Config != nil && cur.Config.Labels[LabelBinary] == binHash && cur.Config.Labels[LabelDockerfile] == dfHash {
			return nil // up to date
		}
		oldID = cur.ID
	} else if !IsNotFound(err) {
		return fmt.Errorf("inspect %s: %w", img.Tag, err)
	}
	buildCtx, err := tarOf(append([]tarFile{{"Dockerfile", 0o644, []byte(dockerfile)}}, files...))
	if err != nil {
		return fmt.Errorf("build %s: %w", img.Tag, err)
	}
	res, err := cli.ImageBuild(ctx, buildCtx, client.ImageBuildOptions{
		Tags:        []string{img.Tag},
		Dockerfile:  "Dockerfile",
		Remove:      true, // false would send rm=0 and keep intermediate containers
		ForceRemove: true,
		Version:     build.BuilderV1, // legacy builder: no BuildKit session needed
	})
	if err != nil {
		return fmt.Errorf("build %s: %w", img.Tag, err)
	}
	defer res.Body.Close()
	if err := readBuildStream(res.Body); err != nil {
		return fmt.Errorf("build %s: %w", img.Tag, err)
	}
	if oldID != "" { // drop the image this build replaced (fails harmlessly if in use)
		_, _ = cli.ImageRemove(ctx, oldID, client.ImageRemoveOptions{})
	}
	return nil
}

type tarFile struct {
	name string
	mode int64
	data []byte
}

// tarOf is a build context holding files, in order. Times are zero so equal
// files make equal archives.
func tarOf(files []tarFile) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Unix(0, 0)}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
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
