package proxy

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/orca-sync/orca-sync/routing"
)

// BenchmarkProxy measures the hot path over real loopback connections:
// keep-alive clients → proxy → keep-alive upstream. Run with
//
//	go test -run x -bench Proxy -benchmem -cpuprofile cpu.out ./proxy
//
// (not part of go test ./...; the figures that count are bench/proxy.sh's).
func BenchmarkProxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", "bench")
		io.WriteString(w, "bench")
	}))
	defer up.Close()
	p := New(Options{})
	p.RouteIn(svc("p", "web", []string{"bench.test"}, []string{"/"}, false), routing.Target{ContainerID: "c", Addr: up.Listener.Addr().String()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: p}
	go srv.Serve(ln)
	defer srv.Close()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, Proxy: nil}
	c := &http.Client{Transport: tr}
	url := "http://" + ln.Addr().String() + "/"
	b.ReportAllocs()
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest("GET", url, nil)
			req.Host = "bench.test"
			resp, err := c.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

// BenchmarkParsePath is the cost of cleaning a typical request path.
//
//	go test -run x -bench ParsePath -benchmem ./proxy
func BenchmarkParsePath(b *testing.B) {
	for range b.N {
		if _, err := parsePath("/api/v1/users/42/orders"); err != nil {
			b.Fatal(err)
		}
	}
}
