package e2e

// Files of the checkout deploy like code (docs/guides/files.md): their
// content is part of the spec, containers mount an immutable snapshot under
// the data dir, and the checkout is a trust boundary.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/internal/gittest"
)

// mountLines is a [[service.mounts]] table of source at target, with extra
// lines (`read_only = false`).
func mountLines(source, target string, extra ...string) string {
	s := fmt.Sprintf("[[service.mounts]]\nsource = %q\ntarget = %q\n", source, target)
	for _, e := range extra {
		s += e + "\n"
	}
	return s
}

// filesApp is a service of the test app named name that mounts tables.
func filesApp(name string, replicas int, tables string) svc {
	s := webApp(imageV1, replicas)
	s.Name, s.Tables = name, tables
	// The new container answers for a few seconds before it is ready, while
	// the old one still serves: the test sees both at once.
	s.Readiness.InitialDelaySecs = 2
	return s
}

// fileSample is what one container answered for a file at one moment.
type fileSample struct{ id, body string }

// fileWatch polls a file in every running container of a service.
type fileWatch struct {
	mu      sync.Mutex
	samples [][]fileSample // one poll of all containers each
	stopCh  chan struct{}
	done    chan struct{}
}

func (e *Env) watchFile(project, service, path string) *fileWatch {
	w := &fileWatch{stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stopCh:
				return
			case <-time.After(50 * time.Millisecond):
			}
			cs, err := e.containers(project, service)
			if err != nil {
				continue
			}
			var poll []fileSample
			for _, c := range cs {
				ip, err := e.containerIP(c.ID, "orca-"+project)
				if err != nil || ip == "" {
					continue
				}
				code, body, err := e.httpGet(fmt.Sprintf("http://%s:%d/file?path=%s", ip, testAppPort, path))
				if err == nil && code == 200 {
					poll = append(poll, fileSample{c.ID, body})
				}
			}
			w.mu.Lock()
			w.samples = append(w.samples, poll)
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *fileWatch) stop() [][]fileSample {
	close(w.stopCh)
	<-w.done
	return w.samples
}

// checkHandOver checks a rollout from the samples: the old container only
// ever served old, the new ones only new, and at some moment both answered.
func checkHandOver(t *testing.T, polls [][]fileSample, oldID, old, new string) {
	t.Helper()
	both := false
	for _, poll := range polls {
		sawOld, sawNew := false, false
		for _, s := range poll {
			switch {
			case s.id == oldID && s.body != old:
				t.Errorf("the old container %s served %q, want %q", s.id[:12], s.body, old)
			case s.id != oldID && s.body != new:
				t.Errorf("a new container %s served %q, want %q", s.id[:12], s.body, new)
			}
			sawOld = sawOld || s.id == oldID
			sawNew = sawNew || s.id != oldID
		}
		both = both || (sawOld && sawNew)
	}
	if !both {
		t.Errorf("no poll of %d saw the old and the new container serving at once", len(polls))
	}
}

// planChanges runs plan -o json and returns its changes by service.
func planChanges(t *testing.T, orca *orcaCLI) map[string]diff.Change {
	t.Helper()
	r := orca.plan("-o", "json")
	var p diff.Plan
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &p) != nil {
		t.Fatalf("plan -o json:\n%s", r)
	}
	out := map[string]diff.Change{}
	for _, c := range p.Changes {
		if c.Action != diff.ActionNone {
			out[c.Service] = c
		}
	}
	return out
}

func (e *Env) one(t *testing.T, project, service string) container.Summary {
	t.Helper()
	cs := e.mustContainers(t, project, service)
	if len(cs) != 1 {
		t.Fatalf("%s/%s: %s, want one container", project, service, describe(cs))
	}
	return cs[0]
}

// TestFilesDeployLikeCode changes only a mounted file, then a file deep in a
// mounted directory, then a file nobody mounts, then reverts the first
// change: each rolls exactly the services that mount what changed, the plan
// names the file, and old containers keep the old content until they stop.
func TestFilesDeployLikeCode(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("files")
	cfg := "services/" + p + "/config/"
	repo := gittest.NewRepo(t)
	repo.WriteFile("cluster.toml", clusterToml)
	repo.WriteFile(cfg+"app.yaml", "v: 1\n")
	repo.WriteFile(cfg+"theme/css/site.css", "body{}\n")
	repo.WriteFile(cfg+"theme/index.html", "<h1>shop</h1>\n")
	repo.WriteFile("services/"+p+"/README.md", "notes\n")
	repo.WriteFile("services/"+p+"/service.toml", services(
		filesApp("web", 1, mountLines("./"+cfg+"app.yaml", "/etc/app.yaml")),
		filesApp("theme", 1, mountLines("./"+cfg+"theme", "/srv/theme")),
		filesApp("plain", 1, "")))
	repo.Commit("shop with files")
	orca := newOrca(t, env, repo.Dir())
	orca.mustApply()
	url := func(c container.Summary) string { return env.appURL(t, c.ID, "orca-"+p) }
	web, theme, plain := env.one(t, p, "web"), env.one(t, p, "theme"), env.one(t, p, "plain")
	if got := env.get(t, url(web)+"/file?path=/etc/app.yaml"); got != "v: 1\n" {
		t.Fatalf("web /etc/app.yaml = %q", got)
	}
	// Read-only without read_only = true.
	resp, err := httpClient.Post(url(web)+"/file?path=/etc/app.yaml", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("writing to a ./ mount without read_only = false succeeded")
	}

	t.Run("a mounted file", func(t *testing.T) {
		repo.WriteFile(cfg+"app.yaml", "v: 2\n")
		repo.Commit("app.yaml v2")
		changes := planChanges(t, orca)
		want := "mounts[/etc/app.yaml]: content changed (" + cfg + "app.yaml)"
		if c, ok := changes["web"]; len(changes) != 1 || !ok || len(c.Fields) != 1 || c.Fields[0].String() != want {
			t.Fatalf("plan: %+v, want web only, with %q", changes, want)
		}
		w := env.watchFile(p, "web", "/etc/app.yaml")
		orca.mustApply()
		checkHandOver(t, w.stop(), web.ID, "v: 1\n", "v: 2\n")
		now := env.one(t, p, "web")
		if now.ID == web.ID || env.get(t, url(now)+"/file?path=/etc/app.yaml") != "v: 2\n" {
			t.Errorf("web was not rolled onto the new content")
		}
		if env.one(t, p, "theme").ID != theme.ID || env.one(t, p, "plain").ID != plain.ID {
			t.Errorf("a service that does not mount app.yaml was rolled")
		}
		web = now
	})
	t.Run("a nested file of a mounted directory", func(t *testing.T) {
		repo.WriteFile(cfg+"theme/css/site.css", "body{color:red}\n")
		repo.Commit("theme: red")
		changes := planChanges(t, orca)
		if c, ok := changes["theme"]; len(changes) != 1 || !ok || len(c.Fields) != 1 || c.Fields[0].Field != "mounts[/srv/theme]" {
			t.Fatalf("plan: %+v, want theme only, its mount named", changes)
		}
		w := env.watchFile(p, "theme", "/srv/theme/css/site.css")
		orca.mustApply()
		checkHandOver(t, w.stop(), theme.ID, "body{}\n", "body{color:red}\n")
		if env.one(t, p, "web").ID != web.ID || env.one(t, p, "plain").ID != plain.ID {
			t.Errorf("a service that does not mount the theme was rolled")
		}
		theme = env.one(t, p, "theme")
	})
	t.Run("a file nobody mounts", func(t *testing.T) {
		repo.WriteFile("services/"+p+"/README.md", "more notes\n")
		repo.Commit("readme")
		if r := orca.plan("--exit-code"); r.Code != 0 {
			t.Errorf("plan after an unmounted file changed: want no changes\n%s", r)
		}
	})
	t.Run("an invalid commit", func(t *testing.T) {
		repo.WriteFile(cfg+"app.yaml", "v: broken\n")
		repo.WriteFile("cluster.toml", clusterToml+"[reconcile]\ninterval = 5\n")
		repo.Commit("app.yaml and a broken cluster.toml")
		if r := orca.apply(); r.Code != 1 || !strings.Contains(r.Stderr, `cluster.toml:4: unknown key "reconcile.interval"`) {
			t.Errorf("apply of an invalid checkout: want exit 1 naming cluster.toml\n%s", r)
		}
		if got := env.get(t, url(web)+"/file?path=/etc/app.yaml"); got != "v: 2\n" {
			t.Errorf("after an invalid commit the running container reads %q, want the old %q", got, "v: 2\n")
		}
		repo.Git("reset", "-q", "--hard", "HEAD~1")
	})
	t.Run("a revert", func(t *testing.T) {
		repo.Git("revert", "--no-edit", "HEAD~2") // app.yaml v2
		w := env.watchFile(p, "web", "/etc/app.yaml")
		orca.mustApply()
		checkHandOver(t, w.stop(), web.ID, "v: 2\n", "v: 1\n")
		web = env.one(t, p, "web")
	})
	t.Run("only the snapshots in use remain", func(t *testing.T) {
		var used []string
		for _, c := range append(append(env.mustContainers(t, p, "web"), env.mustContainers(t, p, "theme")...), env.mustContainers(t, p, "plain")...) {
			for _, m := range env.inspect(t, c.ID).Mounts {
				used = append(used, filepath.Base(m.Source))
			}
		}
		des, err := os.ReadDir(filepath.Join(orca.dataDir, "files"))
		if err != nil {
			t.Fatal(err)
		}
		var held []string
		for _, de := range des {
			held = append(held, de.Name())
		}
		slices.Sort(used)
		slices.Sort(held)
		if !slices.Equal(held, used) || len(held) != 2 {
			t.Errorf("after three file changes the data dir holds %v, the containers mount %v", held, used)
		}
	})
}

// TestFilesTrustBoundary: a symlink out of the checkout is a validation
// error naming the file; a host path is refused by plan and apply, naming
// the flag, until --allow-host-path allows it; the Docker socket is never
// allowed by a prefix.
func TestFilesTrustBoundary(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("trust")

	t.Run("a symlink to /etc", func(t *testing.T) {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
		writeProject(t, dir, p, filesApp("web", 1, mountLines("./services/"+p+"/config/hostname", "/etc/x")).String())
		if err := os.Symlink("/etc", filepath.Join(dir, "services", p, "config")); err != nil {
			t.Fatal(err)
		}
		orca := newOrca(t, env, dir)
		r := orca.run("validate", dir)
		want := "services/" + p + "/service.toml:"
		if r.Code != 1 || !strings.Contains(r.Stderr+r.Stdout, want) ||
			!strings.Contains(r.Stderr+r.Stdout, "web: mounts: mount source ./services/"+p+"/config/hostname resolves outside the checkout") {
			t.Errorf("validate: want exit 1 and the file, service and source named\n%s", r)
		}
	})

	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "motd"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml})
	writeProject(t, dir, p, filesApp("web", 1, mountLines(host, "/host")).String())
	orca := newOrca(t, env, dir)
	t.Run("a host path without --allow-host-path", func(t *testing.T) {
		if r := orca.run("validate", dir); r.Code != 0 {
			t.Errorf("validate refuses a host path it cannot judge:\n%s", r)
		}
		for _, r := range []cliResult{orca.plan(), orca.apply()} {
			if r.Code != 1 || !strings.Contains(r.Stderr, "mount source "+host+" is a host path this host does not allow") ||
				!strings.Contains(r.Stderr, "--allow-host-path") {
				t.Errorf("want exit 1 naming the source and the flag\n%s", r)
			}
		}
		if cs, err := env.containers(p, "web"); err != nil || len(cs) != 0 {
			t.Errorf("a refused apply started %s (%v)", describe(cs), err)
		}
	})
	t.Run("with --allow-host-path", func(t *testing.T) {
		orca.mustApply("--allow-host-path", filepath.Dir(host))
		web := env.one(t, p, "web")
		if got := env.get(t, env.appURL(t, web.ID, "orca-"+p)+"/file?path=/host/motd"); got != "from the host\n" {
			t.Errorf("/host/motd = %q", got)
		}
	})
	t.Run("the Docker socket under an allowed prefix", func(t *testing.T) {
		sockDir := t.TempDir()
		writeFiles(t, sockDir, map[string]string{"cluster.toml": clusterToml})
		writeProject(t, sockDir, p, filesApp("web", 1, mountLines("/var/run/docker.sock", "/var/run/docker.sock")).String())
		r := newOrca(t, env, sockDir).plan("--allow-host-path", "/")
		if r.Code != 1 || !strings.Contains(r.Stderr, "--allow-host-path /var/run/docker.sock") {
			t.Errorf("plan mounting the Docker socket with --allow-host-path /: want it refused, naming the socket's own flag\n%s", r)
		}
	})
}

// TestFilesWritableCopies: with read_only = false each replica writes to
// a copy of its own; neither sees the other's write, and the snapshot and
// the checkout keep the committed content.
func TestFilesWritableCopies(t *testing.T) {
	env := newEnv(t)
	t.Parallel()
	p := env.project("rwcopy")
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"cluster.toml": clusterToml, "services/" + p + "/data/notes.txt": "committed\n"})
	writeProject(t, dir, p, filesApp("web", 2, mountLines("./services/"+p+"/data/notes.txt", "/data/notes.txt", "read_only = false")).String())
	orca := newOrca(t, env, dir)
	orca.mustApply()
	web := env.mustContainers(t, p, "web")
	if len(web) != 2 {
		t.Fatalf("web: %s", describe(web))
	}
	for _, c := range web {
		resp, err := httpClient.Post(env.appURL(t, c.ID, "orca-"+p)+"/file?path=/data/notes.txt", "text/plain", strings.NewReader("written by "+nameOf(c)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: write to the read_only = false mount: %d", nameOf(c), resp.StatusCode)
		}
	}
	for _, c := range web {
		if got := env.get(t, env.appURL(t, c.ID, "orca-"+p)+"/file?path=/data/notes.txt"); got != "written by "+nameOf(c) {
			t.Errorf("%s reads %q, want its own write", nameOf(c), got)
		}
	}
	des, err := os.ReadDir(filepath.Join(orca.dataDir, "files"))
	if err != nil {
		t.Fatal(err)
	}
	snapshots := 0
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), "rw-") {
			snapshots++
			if b, err := os.ReadFile(filepath.Join(orca.dataDir, "files", de.Name())); err != nil || string(b) != "committed\n" {
				t.Errorf("snapshot %s holds %q (%v), want the committed content", de.Name(), b, err)
			}
		}
	}
	if snapshots != 1 {
		t.Errorf("data dir files: %d snapshots, want 1", snapshots)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "services", p, "data", "notes.txt")); string(b) != "committed\n" {
		t.Errorf("the checkout's file reads %q", b)
	}
	if r := orca.plan("--exit-code"); r.Code != 0 {
		t.Errorf("plan after the writes: want no changes\n%s", r)
	}
}

// TestFilesDriftRepaired: a snapshot file changed on the host by hand is
// drift of the containers that mount it, and drift = "correct" replaces them
// with a fresh copy of the committed content.
func TestFilesDriftRepaired(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	p := env.project("fdrift")
	web := driftWeb(1)
	web.Tables = mountLines("./services/"+p+"/config/app.yaml", "/etc/app.yaml")
	d, _ := serveRepo(t, env, map[string]string{
		"cluster.toml":                       clusterInterval(3600),
		"services/" + p + "/config/app.yaml": "v: 1\n",
		"services/" + p + "/service.toml":    web.String(),
	}, nil)
	cs := d.waitSynced(t, p, 1)
	old := cs[0]
	var snap string
	for _, m := range env.inspect(t, old.ID).Mounts {
		if m.Destination == "/etc/app.yaml" {
			snap = m.Source
		}
	}
	if !strings.HasPrefix(snap, filepath.Join(d.dataDir, "files")+"/") {
		t.Fatalf("/etc/app.yaml is mounted from %q, want a snapshot under %s", snap, d.dataDir)
	}
	d.waitQuiet(t)
	if err := os.Chmod(snap, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(snap, []byte("v: by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := d.call(http.MethodPost, "/api/v1/sync"); code != http.StatusAccepted {
		t.Fatalf("sync: %d %s", code, body)
	}
	d.waitRepaired(t, "modified "+nameOf(old)+": mounts[/etc/app.yaml]: content modified")
	env.waitFor(t, 60*time.Second, func() (bool, string) {
		cs, _ := env.containers(p, "web")
		for _, c := range cs {
			if c.ID != old.ID && c.State == "running" {
				got := env.get(t, env.appURL(t, c.ID, "orca-"+p)+"/file?path=/etc/app.yaml")
				return got == "v: 1\n", fmt.Sprintf("the replacement reads %q", got)
			}
		}
		return false, fmt.Sprintf("web: %s, want %s replaced", describe(cs), old.ID[:12])
	})
	d.waitSynced(t, p, 1)
	if rep := d.drift(); len(rep.Findings) != 0 {
		t.Errorf("after the repair the drift report still has %+v", rep.Findings)
	}
}
