package docker

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/orca-sync/orca-sync/apply"
)

// TestDockerRepoDigestCachedWhileWatching runs RepoDigest against a fake
// engine (no Docker needed): without an event stream every call inspects
// the image; while one runs (past its first watchGrace), an answer is kept
// until an image event comes, after which the tag's new digest is read.
func TestDockerRepoDigestCachedWhileWatching(t *testing.T) {
	var inspects atomic.Int32
	var digest atomic.Value
	digest.Store("sha256:" + strings.Repeat("a", 64))
	events := make(chan string, 1)
	subscribed := make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/images/app:1/json"):
			inspects.Add(1)
			json.NewEncoder(w).Encode(map[string]any{"Id": "sha256:" + strings.Repeat("1", 64),
				"RepoDigests": []string{"app@" + digest.Load().(string)}})
		case strings.HasSuffix(r.URL.Path, "/events"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			subscribed <- struct{}{}
			for {
				select {
				case e := <-events:
					w.Write([]byte(e + "\n"))
					w.(http.Flusher).Flush()
				case <-r.Context().Done():
					return
				}
			}
		default:
			http.Error(w, "unexpected "+r.URL.Path, http.StatusNotFound)
		}
	}))
	defer srv.Close()
	cli, err := client.New(client.WithHost("tcp://"+strings.TrimPrefix(srv.URL, "http://")), client.WithAPIVersion("1.41"))
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	d := &Engine{cli: cli}
	ctx := t.Context()
	get := func() string {
		t.Helper()
		dg, err := d.RepoDigest(ctx, "app:1", "app:1")
		if err != nil {
			t.Fatal(err)
		}
		return dg
	}

	get()
	get()
	if n := inspects.Load(); n != 2 {
		t.Fatalf("without an event stream: %d inspects for 2 lookups of a tag; want 2", n)
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { d.Events(sctx, func(apply.Event) {}); close(done) }()
	<-subscribed
	// Past the stream's first watchGrace, of two lookups in a row at most
	// the first inspects.
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := inspects.Load()
		get()
		get()
		if inspects.Load()-before <= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("while watching, every lookup of the tag still inspects the image")
		}
		time.Sleep(50 * time.Millisecond)
	}
	moved := "sha256:" + strings.Repeat("b", 64)
	digest.Store(moved)
	events <- `{"Type":"image","Action":"tag","Actor":{"ID":"app:1"},"timeNano":` + jsonNow() + `}`
	deadline = time.Now().Add(10 * time.Second)
	for get() != moved {
		if time.Now().After(deadline) {
			t.Fatal("the tag's new digest never read after an image event")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	<-done
}

func jsonNow() string { b, _ := json.Marshal(time.Now().UnixNano()); return string(b) }
