package proxy

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// TestSyncRoutesByTheListedAddress: a container whose address came with the
// list call is routed without asking ContainerIPs (which knows nothing
// here), so a restarted serve routes its containers without an inspect each.
func TestSyncRoutesByTheListedAddress(t *testing.T) {
	b := backend(t, "web")
	host, port, _ := net.SplitHostPort(b.Listener.Addr().String())
	p := New(Options{IPs: fakeIPs{}})
	d := &config.Desired{Projects: []*config.Project{{Name: "p", Services: []*config.Service{
		{Project: "p", Name: "web", Domains: []string{"shop.test"}, Routes: []string{"/"}, Port: atoi(port)},
	}}}}
	live := []diff.Container{{ID: "c1", Project: "p", Service: "web", State: "running",
		IPs: map[string]string{"orca-p": host, "bridge": "192.0.2.1"}}}
	if err := p.Sync(context.Background(), d, live, ""); err != nil {
		t.Fatal(err)
	}
	if code, body := do(t, p, "shop.test", "/", nil); code != 200 || !strings.HasPrefix(body, "web") {
		t.Fatalf("after Sync: %d %q, want the backend's 200", code, body)
	}
}
