package proxy

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/routing"
)

// The dashboard's session cookie reaches the proxy whenever an app shares
// the dashboard's host name (browsers do not tell ports apart); it must
// never reach the app, on the fast path (GET) or through ReverseProxy (PUT).
func TestSessionCookieNeverForwarded(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "cookie=%q", strings.Join(r.Header.Values("Cookie"), " | "))
	}))
	t.Cleanup(up.Close)
	p := New(Options{DropCookie: "orca_session"})
	p.RouteIn(svc("p", "web", []string{"shop.test"}, []string{"/"}, false), routing.Target{ContainerID: "w1", Addr: up.Listener.Addr().String()})
	for _, c := range []struct{ method, cookie, want string }{
		{http.MethodGet, "a=1; orca_session=secret; b=2", `cookie="a=1; b=2"`},
		{http.MethodPut, "orca_session=secret; theme=dark", `cookie="theme=dark"`},
		{http.MethodGet, "orca_session=secret", `cookie=""`},
		{http.MethodGet, "not_orca_session=1", `cookie="not_orca_session=1"`},
	} {
		r := httptest.NewRequest(c.method, "http://shop.test/", nil)
		r.RemoteAddr = "192.0.2.7:1234"
		r.Header.Set("Cookie", c.cookie)
		w := httptest.NewRecorder()
		p.ServeHTTP(w, r)
		if got := w.Body.String(); got != c.want {
			t.Errorf("%s with Cookie %q: upstream saw %s, want %s", c.method, c.cookie, got, c.want)
		}
	}
}
