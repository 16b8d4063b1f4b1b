package wire_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

var at = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// TestJSONUnchanged: the bodies encode byte for byte as they did when the
// types lived in reconcile (the golden strings were produced by that code);
// scripts that parse `orca-sync status --output json` see no change.
func TestJSONUnchanged(t *testing.T) {
	st := wire.Status{Commit: "abc", Message: "m", CommitTime: at, Syncing: true,
		LastSync: &state.SyncRecord{ID: 3, Commit: "abc", Trigger: "api", Started: at, Finished: at, Result: "failed", Error: "e", Plan: "p",
			Services: []state.ServiceResult{{Project: "p", Service: "s", Action: "update", Error: "x", Started: []string{"a"}, Removed: []string{"b"}, Duration: time.Second, Repaired: []string{"r"}}}},
		FetchError: "f", Errors: config.Errors{{File: "f.toml", Line: 2, Message: "bad"}},
		Services: []wire.ServiceStatus{{Project: "p", Name: "s", Sync: wire.SyncSynced, Health: wire.HealthHealthy, Replicas: 2, Ready: 1, Image: "i", Reason: "r", Drift: 1, DriftPolicy: "warn", ProbeError: "pe",
			Canary: &wire.CanaryStatus{Phase: "analysing", Step: 1, Steps: 2, Weight: 10, Hash: "h", Containers: []string{"c"}, Names: []string{"n"}, StepStarted: at,
				Canary: wire.RoleFigures{Requests: 1, Errors: 2, ErrorRate: 0.5, P95Ms: 3}, Stable: wire.RoleFigures{Requests: 4, Errors: 5, ErrorRate: 0.25, P95Ms: 6}, Waiting: "w"},
			Containers: []wire.ContainerStatus{{Name: "p-s-1", State: "running", Status: "Up 1 minute", Role: "stable", Digest: "sha256:d", Ready: true}}}}}
	rep := wire.DriftReport{Commit: "c", Checked: at, Syncing: true, Error: "e", Policies: map[string]string{"p/s": "warn"},
		Findings: []diff.Finding{{Project: "p", Service: "s", Kind: diff.KindModified, Container: "c", ID: "id", Field: "env", From: "a", To: "b", FirstSeen: at}}}
	rp := wire.RefPlan{Ref: "r", Commit: "c", Subject: "s", Valid: true, Plan: &diff.Plan{}, Changes: 1, Text: "t"}
	for i, c := range []struct {
		v    any
		want string
	}{
		{st, `{"commit":"abc","message":"m","commit_time":"2024-05-06T07:08:09Z","syncing":true,"last_sync":{"id":3,"commit":"abc","trigger":"api","started":"2024-05-06T07:08:09Z","finished":"2024-05-06T07:08:09Z","result":"failed","error":"e","plan":"p","services":[{"project":"p","service":"s","action":"update","error":"x","started":["a"],"removed":["b"],"repaired":["r"],"duration_ns":1000000000}]},"fetch_error":"f","errors":[{"file":"f.toml","line":2,"message":"bad"}],"services":[{"project":"p","name":"s","sync":"Synced","health":"Healthy","replicas":2,"ready":1,"image":"i","reason":"r","drift":1,"drift_policy":"warn","probe_error":"pe","canary":{"phase":"analysing","step":1,"steps":2,"weight":10,"spec_hash":"h","containers":["c"],"names":["n"],"step_started":"2024-05-06T07:08:09Z","canary":{"requests":1,"errors":2,"error_rate":0.5,"p95_ms":3},"stable":{"requests":4,"errors":5,"error_rate":0.25,"p95_ms":6},"waiting_for":"w"},"containers":[{"name":"p-s-1","state":"running","status":"Up 1 minute","role":"stable","digest":"sha256:d","ready":true}]}]}`},
		{wire.Status{}, `{"syncing":false,"services":null}`},
		{rep, `{"commit":"c","checked":"2024-05-06T07:08:09Z","syncing":true,"error":"e","findings":[{"project":"p","service":"s","container":"c","container_id":"id","kind":"modified","field":"env","from":"a","to":"b","first_seen":"2024-05-06T07:08:09Z"}],"policies":{"p/s":"warn"}}`},
		{wire.DriftReport{}, `{"findings":null}`},
		{rp, `{"ref":"r","commit":"c","subject":"s","valid":true,"plan":{"changes":null},"changes":1,"text":"t"}`},
		{wire.RefPlan{}, `{"ref":"","commit":"","valid":false,"changes":0,"text":""}`},
	} {
		got, err := json.Marshal(c.v)
		if err != nil || string(got) != c.want {
			t.Errorf("body %d:\n got %s\nwant %s", i, got, c.want)
		}
	}
}

// TestStalledAndRetryInStatus: the new fields are absent when unset (the
// bodies above), present with the next attempt when set, and the text
// status says what holds the loop.
func TestStalledAndRetryInStatus(t *testing.T) {
	st := wire.Status{Commit: "c2", Services: []wire.ServiceStatus{},
		Stalled: &wire.Stall{Commit: "c2", Result: "invalid", Reason: "invalid: services/p/service.toml:3: bad", Since: at},
		Retry:   &wire.Retry{Failures: 2, Reason: "fetch failed: timeout", Backoff: "10s", NextAttempt: at.Add(10 * time.Second)}}
	got, _ := json.Marshal(st)
	want := `{"commit":"c2","syncing":false,"services":[],"stalled":{"commit":"c2","result":"invalid","reason":"invalid: services/p/service.toml:3: bad","since":"2024-05-06T07:08:09Z"},` +
		`"retry":{"failures":2,"reason":"fetch failed: timeout","backoff":"10s","next_attempt":"2024-05-06T07:08:19Z"}}`
	if string(got) != want {
		t.Errorf("status:\n got %s\nwant %s", got, want)
	}
	var buf bytes.Buffer
	if err := wire.WriteStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Stalled: commit c2 since 2024-05-06 07:08:09: invalid: services/p/service.toml:3: bad",
		"Retrying: next attempt at 2024-05-06 07:08:19 (in 0s) after 2 failed sync(s): fetch failed: timeout"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("text status lacks %q:\n%s", line, buf.String())
		}
	}
}

// TestStatusNamesNodes: the node, why a host applies nothing, and where the
// services placed elsewhere run.
func TestStatusNamesNodes(t *testing.T) {
	st := wire.Status{Commit: "c3", Node: "zz", NodeError: "zz is not a [[node]] of cluster.toml",
		Elsewhere: []wire.Elsewhere{{Project: "p", Name: "edge", Nodes: []string{"b", "c"}}}}
	got, _ := json.Marshal(st)
	want := `{"commit":"c3","syncing":false,"services":null,"node":"zz","node_error":"zz is not a [[node]] of cluster.toml","elsewhere":[{"project":"p","name":"edge","nodes":["b","c"]}]}`
	if string(got) != want {
		t.Fatalf("json:\n got %s\nwant %s", got, want)
	}
	var buf bytes.Buffer
	if err := wire.WriteStatus(&buf, st); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"Node:    zz\n", "Not applied here: zz is not a [[node]] of cluster.toml\n", "elsewhere: b, c\n"} {
		if !strings.Contains(buf.String(), line) {
			t.Errorf("status text lacks %q:\n%s", line, buf.String())
		}
	}
}
