// Command testapp is a tiny static HTTP server baked into the e2e test images
// (orca-test/app:*). It only uses the standard library so it runs in a
// FROM scratch image.
//
// Environment:
//
//	PORT           listen port (default 8080)
//	VERSION        body of GET / and value of the X-Version header
//	HEALTHZ_FAIL=1 GET /healthz answers 500
//	ERROR_RATE=F   GET / answers 500 to a random fraction F (0..1) of requests
//	EXIT_AFTER_MS  exit with code 3 after that many milliseconds
//	LOG_ENV=A,B    print NAME=value of those variables at start (as an app that logs its DSN)
//	REQUIRE_FILE=P exit with code 4 at start unless file P exists (as an app that needs its migration)
//	SHUTDOWN_DELAY_MS  on SIGTERM, wait that long before exiting 0 (as a database's clean shutdown)
//
// Endpoints:
//
//	GET  /               200 VERSION (500 for the ERROR_RATE fraction)
//	GET  /healthz        200 "ok" or 500; POST /healthz/fail, POST /healthz/ok toggle it
//	GET  /slow?ms=N      sleeps N ms, then 200
//	GET  /bytes/{n}      n bytes of "x" (at most 16 MiB), sized (the benchmark's 1 KB and 100 KB shapes)
//	ANY  /status/{code}  answers that status code
//	GET  /ws             WebSocket echo (RFC 6455, text and binary, ping/pong, close)
//	GET  /env?name=X     value of env X (404 if unset); without name: every variable
//	GET  /file?path=P    contents of file P; POST /file?path=P writes the body to P
//	GET  /fetch?url=U    GETs U; answers with its status and body (502 + X-Fetch-Error if it fails)
//	GET  /headers        JSON: method, host, remote address and request headers
//	GET  /sse?n=N&ms=M   N server-sent events, one every M ms
//	GET  /redirect?to=U  302 to U
//	GET  /cookies        200 with two Set-Cookie headers (a=1, b=2)
//
// Every response carries X-Version and X-Hostname.
//
// "testapp sh ARGS..." runs /bin/busybox sh ARGS (images that hold busybox):
// a hook or job command is the arguments of the image's entrypoint.
// "testapp dump PATH TEXT" writes TEXT to PATH and says so (a backup
// pre_hook's database dump, in a scratch image without a shell).
//
// "testapp healthcheck" GETs http://127.0.0.1:$PORT/healthz and exits 0 on 200,
// else 1 (for a Docker HEALTHCHECK in a scratch image).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// logEnv prints NAME=value of each comma-separated name, so tests can see
// what orca-sync does with a container's output that holds a secret.
func logEnv(names string) {
	for _, n := range strings.Split(names, ",") {
		if n != "" {
			log.Printf("%s=%s", n, os.Getenv(n))
		}
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "healthcheck" {
		os.Exit(healthcheck("http://127.0.0.1:" + port(os.LookupEnv) + "/healthz"))
	}
	if len(os.Args) > 1 && os.Args[1] == "sh" {
		err := syscall.Exec("/bin/busybox", append([]string{"sh"}, os.Args[2:]...), os.Environ())
		log.Printf("exec /bin/busybox: %v", err)
		os.Exit(127)
	}
	if len(os.Args) == 4 && os.Args[1] == "dump" {
		if err := os.WriteFile(os.Args[2], []byte(os.Args[3]), 0o644); err != nil {
			fmt.Println("dump:", err)
			os.Exit(2)
		}
		fmt.Printf("dumped %d bytes to %s\n", len(os.Args[3]), os.Args[2])
		os.Exit(0)
	}
	os.Exit(run())
}

func port(lookup func(string) (string, bool)) string {
	if p, ok := lookup("PORT"); ok && p != "" {
		return p
	}
	return "8080"
}

func run() int {
	log.SetFlags(log.LstdFlags | log.Lmicroseconds)
	logEnv(os.Getenv("LOG_ENV"))
	if p := os.Getenv("REQUIRE_FILE"); p != "" {
		b, err := os.ReadFile(p)
		if err != nil {
			log.Printf("REQUIRE_FILE: %v", err)
			return 4
		}
		log.Printf("REQUIRE_FILE %s: %q", p, strings.TrimSpace(string(b)))
	}
	a := newApp(os.LookupEnv)
	srv := &http.Server{
		Addr:              ":" + port(os.LookupEnv),
		Handler:           a.handler(),
		ReadHeaderTimeout: 10 * time.Second,
	}

	if v, ok := os.LookupEnv("EXIT_AFTER_MS"); ok && v != "" {
		ms, err := strconv.Atoi(v)
		if err != nil {
			log.Printf("bad EXIT_AFTER_MS %q: %v", v, err)
			return 2
		}
		time.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
			log.Printf("EXIT_AFTER_MS=%d reached, exiting with code 3", ms)
			os.Exit(3)
		})
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)

	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("testapp version=%s listening on %s", a.version, srv.Addr)

	select {
	case err := <-errc:
		log.Printf("server error: %v", err)
		return 1
	case sig := <-sigs:
		log.Printf("received %v, shutting down", sig)
	}
	if v := os.Getenv("SHUTDOWN_DELAY_MS"); v != "" {
		ms, _ := strconv.Atoi(v)
		log.Printf("shutting down takes %d ms", ms)
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Printf("shutdown: %v", err)
		_ = srv.Close()
	}
	log.Printf("stopped")
	return 0
}

// healthcheck returns the exit code of the healthcheck subcommand.
func healthcheck(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		return 1
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "healthcheck: status", resp.StatusCode)
		return 1
	}
	return 0
}

type app struct {
	lookup    func(string) (string, bool)
	version   string
	hostname  string
	errorRate float64
	unhealthy atomic.Bool // switched at runtime by POST /healthz/fail|ok
	failEnv   bool        // HEALTHZ_FAIL=1
	client    *http.Client
}

func newApp(lookup func(string) (string, bool)) *app {
	a := &app{lookup: lookup, client: &http.Client{Timeout: 10 * time.Second}}
	a.version, _ = lookup("VERSION")
	a.hostname, _ = os.Hostname()
	if v, _ := lookup("HEALTHZ_FAIL"); v == "1" || v == "true" {
		a.failEnv = true
	}
	if v, ok := lookup("ERROR_RATE"); ok && v != "" {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			a.errorRate = f
		} else {
			log.Printf("ignoring bad ERROR_RATE %q", v)
		}
	}
	return a
}

func (a *app) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.root)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("POST /healthz/fail", func(w http.ResponseWriter, r *http.Request) {
		a.unhealthy.Store(true)
		fmt.Fprintln(w, "healthz now failing")
	})
	mux.HandleFunc("POST /healthz/ok", func(w http.ResponseWriter, r *http.Request) {
		a.unhealthy.Store(false)
		fmt.Fprintln(w, "healthz now ok")
	})
	mux.HandleFunc("GET /slow", a.slow)
	mux.HandleFunc("GET /bytes/{n}", a.bytes)
	mux.HandleFunc("/status/{code}", a.status)
	mux.HandleFunc("GET /ws", a.ws)
	mux.HandleFunc("GET /env", a.env)
	mux.HandleFunc("GET /file", a.readFile)
	mux.HandleFunc("POST /file", a.writeFile)
	mux.HandleFunc("GET /fetch", a.fetch)
	mux.HandleFunc("GET /headers", a.headers)
	mux.HandleFunc("GET /sse", a.sse)
	mux.HandleFunc("GET /redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
	})
	mux.HandleFunc("GET /cookies", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "a", Value: "1", Path: "/"})
		http.SetCookie(w, &http.Cookie{Name: "b", Value: "2", Path: "/"})
		fmt.Fprintln(w, "cookies set")
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", a.version)
		w.Header().Set("X-Hostname", a.hostname)
		mux.ServeHTTP(w, r)
	})
}

func (a *app) root(w http.ResponseWriter, r *http.Request) {
	if a.errorRate > 0 && rand.Float64() < a.errorRate {
		http.Error(w, "injected error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, a.version)
}

func (a *app) healthz(w http.ResponseWriter, r *http.Request) {
	if a.failEnv || a.unhealthy.Load() {
		http.Error(w, "unhealthy", http.StatusInternalServerError)
		return
	}
	io.WriteString(w, "ok")
}

func (a *app) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 {
		http.Error(w, "ms must be a non-negative integer", http.StatusBadRequest)
		return
	}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-r.Context().Done():
		return
	}
	fmt.Fprintf(w, "slept %d ms", ms)
}

// maxBytes bounds GET /bytes/{n}.
const maxBytes = 16 << 20

func (a *app) bytes(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || n > maxBytes {
		http.Error(w, "n must be an integer from 0 to 16777216", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(n))
	w.Header().Set("Content-Type", "application/octet-stream")
	chunk := []byte(strings.Repeat("x", min(n, 32<<10)))
	for n > 0 {
		k, err := w.Write(chunk[:min(n, len(chunk))])
		if err != nil {
			return
		}
		n -= k
	}
}

func (a *app) status(w http.ResponseWriter, r *http.Request) {
	code, err := strconv.Atoi(r.PathValue("code"))
	if err != nil || code < 200 || code > 599 {
		http.Error(w, "status code must be 200..599", http.StatusBadRequest)
		return
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "status %d", code)
}

func (a *app) env(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		vars := os.Environ()
		slices.Sort(vars)
		io.WriteString(w, strings.Join(vars, "\n")+"\n")
		return
	}
	v, ok := a.lookup(name)
	if !ok {
		http.Error(w, "not set", http.StatusNotFound)
		return
	}
	io.WriteString(w, v)
}

func (a *app) readFile(w http.ResponseWriter, r *http.Request) {
	b, err := os.ReadFile(r.URL.Query().Get("path"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		http.Error(w, err.Error(), http.StatusNotFound)
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
	default:
		w.Write(b)
	}
}

func (a *app) writeFile(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	if p == "" {
		http.Error(w, "path required", http.StatusBadRequest)
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 16<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	fmt.Fprintf(w, "wrote %d bytes", len(b))
}

func (a *app) fetch(w http.ResponseWriter, r *http.Request) {
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, r.URL.Query().Get("url"), nil)
	if err == nil && req.URL.Host == "" {
		err = errors.New("url must be absolute")
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	resp, err := a.client.Do(req)
	if err != nil {
		w.Header().Set("X-Fetch-Error", "1")
		http.Error(w, "fetch error: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		w.Header().Set("X-Fetch-Error", "1")
		http.Error(w, "fetch error: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("X-Upstream-Status", strconv.Itoa(resp.StatusCode))
	if v := resp.Header.Get("X-Version"); v != "" {
		w.Header().Set("X-Upstream-Version", v)
	}
	w.WriteHeader(resp.StatusCode)
	w.Write(body)
}

func (a *app) headers(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"method":      r.Method,
		"host":        r.Host,
		"remote_addr": r.RemoteAddr,
		"uri":         r.RequestURI,
		"headers":     r.Header,
	})
}

func (a *app) sse(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("n"))
	if err != nil || n < 0 {
		n = 3
	}
	ms, err := strconv.Atoi(q.Get("ms"))
	if err != nil || ms < 0 {
		ms = 100
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	rc := http.NewResponseController(w)
	for i := range n {
		if i > 0 {
			select {
			case <-time.After(time.Duration(ms) * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
		fmt.Fprintf(w, "id: %d\ndata: %s %d\n\n", i, a.version, i)
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// --- WebSocket (RFC 6455), server side ---
