package e2e

// Helpers for the dashboard's test: Debian's chromium, headless, driven by
// chromedp, with every request the pages make recorded.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// browser is one headless chromium tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	mu   sync.Mutex
	urls []string // every request the pages sent, in order
}

// chromiumPath finds the browser .ci/install-test-parts installs.
func chromiumPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on PATH: the dashboard test drives a real browser; install it with .ci/install-test-parts (apt-get install chromium)")
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin, err := chromiumPath()
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in a container: chromium's sandbox needs user namespaces
		chromedp.WindowSize(1280, 800),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	b := &browser{t: t, ctx: ctx}
	// Listen starts the browser and its tab (network events are on); the
	// browser lives as long as ctx.
	err = chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			b.mu.Lock()
			b.urls = append(b.urls, e.Request.URL)
			b.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatalf("start chromium %s: %v", bin, err)
	}
	return b
}

// run runs steps with a generous bound, failing the test on error.
func (b *browser) run(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 90*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		loc, _ := evalJS[string](b, `location.href`)
		body, _ := evalJS[string](b, `document.body ? document.body.innerText : ""`)
		b.t.Fatalf("browser: %s: %v\nat %s:\n%s", what, err, loc, body)
	}
}

// evalJS evaluates a JavaScript expression in the page (awaiting a promise).
func evalJS[T any](b *browser, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
}

// waitJS polls a JavaScript expression until it gives want.
func (b *browser) waitJS(t *testing.T, expr, want string) {
	t.Helper()
	waitFor(t, 90*time.Second, func() (bool, string) {
		got, err := evalJS[string](b, expr)
		if err != nil {
			return false, fmt.Sprintf("%s: %v", expr, err)
		}
		return got == want, fmt.Sprintf("%s = %q, want %q", expr, got, want)
	})
}

// text is the page's visible text.
func (b *browser) text() string {
	b.t.Helper()
	s, err := evalJS[string](b, `document.body.innerText`)
	if err != nil {
		b.t.Fatalf("page text: %v", err)
	}
	return s
}

// screenshot writes the viewport at w×h as dir/name-WxH.png and logs its path.
func (b *browser) screenshot(t *testing.T, dir, name string, w, h int64) string {
	t.Helper()
	b.run("resize for "+name, chromedp.EmulateViewport(w, h))
	ctx, cancel := context.WithTimeout(b.ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%dx%d.png", name, w, h))
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
	// ORCA_E2E_SCREENSHOTS=DIR keeps a copy past the test's temp dir: how
	// docs/images/ are refreshed.
	if keep := os.Getenv("ORCA_E2E_SCREENSHOTS"); keep != "" {
		if err := os.WriteFile(filepath.Join(keep, filepath.Base(path)), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// requests is every URL the pages requested so far.
func (b *browser) requests() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}

// offOrigin lists the requests to anything but origin (data: URLs are the
// page's own bytes, not requests).
func offOrigin(urls []string, origin string) []string {
	var out []string
	for _, u := range urls {
		if !strings.HasPrefix(u, origin+"/") && !strings.HasPrefix(u, "data:") {
			out = append(out, u)
		}
	}
	return out
}
