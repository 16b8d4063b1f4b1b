package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/routing"
)

// syncBuffer is a log sink safe for the proxy's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestRemovedServiceDrains: a service dropped from git loses its route at
// the sync that sees it gone, but apply's RouteOut of its containers (the
// prune that follows) still drains the requests in flight on them.
func TestRemovedServiceDrains(t *testing.T) {
	release := make(chan struct{})
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "finished")
	}))
	defer b.Close()
	host, port, _ := net.SplitHostPort(b.Listener.Addr().String())
	var logs syncBuffer
	p := New(Options{IPs: fakeIPs{"c1": host}, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	d := &config.Desired{Projects: []*config.Project{{Name: "p", Services: []*config.Service{
		{Project: "p", Name: "web", Domains: []string{"shop.test"}, Routes: []string{"/"}, Port: atoi(port),
			Deploy: config.Deploy{Drain: time.Millisecond}},
	}}}}
	live := []diff.Container{{ID: "c1", Project: "p", Service: "web", State: "running", Node: "n1"}}
	if err := p.Sync(context.Background(), d, live, "n1"); err != nil {
		t.Fatal(err)
	}
	done := make(chan string)
	go func() {
		_, body := do(t, p, "shop.test", "/", nil)
		done <- body
	}()
	waitInflight(t, p, "p/web", 1)

	if err := p.Sync(context.Background(), &config.Desired{}, live, "n1"); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, p, "shop.test", "/", nil); code != 404 {
		t.Errorf("a service gone from git is still routed: %d", code)
	}
	p.RouteOut(context.Background(), "p", "web", routing.Target{ContainerID: "c1"})
	if !strings.Contains(logs.String(), "requests still in flight") {
		t.Errorf("RouteOut of a removed service's container did not wait for its request in flight; log:\n%s", logs.String())
	}
	close(release)
	if body := <-done; body != "finished" {
		t.Errorf("the request in flight: %q", body)
	}
	if err := p.Sync(context.Background(), &config.Desired{}, nil, "n1"); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.leaving) != 0 {
		t.Errorf("services still kept for draining once none of their containers runs: %v", p.leaving)
	}
}
