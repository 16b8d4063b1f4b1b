package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/moby/moby/client"
)

// s3Server is a real S3 server (versitygw, posix backend) on loopback.
type s3Server struct {
	cmd      *exec.Cmd
	addr     string
	dir      string
	bucket   string
	key, sec string
	cli      *minio.Client
}

// versitygwBinary is versitygw as .ci/install-test-parts installs it.
func versitygwBinary(t testing.TB) string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	gopath, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("versitygw is not installed: run .ci/install-test-parts")
	return ""
}

// startS3 starts versitygw with one bucket; stop ends it.
func startS3(t testing.TB) *s3Server {
	t.Helper()
	s := &s3Server{dir: t.TempDir(), bucket: "orca-backups", key: "e2e-access-key", sec: "e2e-secret-key-0123456789"}
	if err := os.Mkdir(filepath.Join(s.dir, s.bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	s.addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	s.cmd = exec.Command(versitygwBinary(t), "--port", s.addr, "posix", s.dir)
	s.cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.key, "ROOT_SECRET_KEY="+s.sec)
	var logs lockedBuffer
	s.cmd.Stdout, s.cmd.Stderr = &logs, &logs
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(s.stop)
	waitFor(t, 30*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil, fmt.Sprintf("versitygw on %s: %v\n%s", s.addr, err, logs.String())
	})
	cli, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(s.key, s.sec, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	s.cli = cli
	return s
}

func (s *s3Server) stop() {
	if s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

// names lists the bucket's objects.
func (s *s3Server) names(t testing.TB) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out []string
	for o := range s.cli.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{}) {
		if o.Err != nil {
			t.Fatalf("list bucket: %v", o.Err)
		}
		out = append(out, o.Key)
	}
	sort.Strings(out)
	return out
}

func (s *s3Server) get(t testing.TB, name string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o, err := s.cli.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	return b
}

func (s *s3Server) put(t testing.TB, name string, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.cli.PutObject(ctx, s.bucket, name, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

// archiveFiles reads a gzip'd tar into path -> contents of its regular files.
func archiveFiles(t testing.TB, b []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("archive is not gzip: %v", err)
	}
	tr := tar.NewReader(zr)
	out := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		if h.Typeflag == tar.TypeReg {
			c, _ := io.ReadAll(tr)
			out[h.Name] = string(c)
		}
	}
}

// localNames lists a directory.
func localNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// appPost POSTs body to the test app's /file?path=P.
func appPost(t testing.TB, base, path, body string) {
	t.Helper()
	resp, err := http.Post(base+"/file?path="+path, "application/octet-stream", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("POST /file?path=%s: %d", path, resp.StatusCode)
	}
}

// appGet is a GET that reads the whole body (env.httpGet stops at 1 MiB).
func appGet(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

var archiveRE = regexp.MustCompile(`^(.+)-(\d{8}T\d{6}Z)\.tar\.gz$`)

// TestBackupRunRestore: a volume with known files and a pre_hook that
// writes a dump: `backup run` writes one archive holding exactly those
// files to a local directory and to a real S3 server, retention removes an
// archive dated older than retention_days from both, `backup restore` gives
// the emptied volume back the same bytes, and with the S3 server stopped
// the backup fails (exit 1, backup_failed, status) while the local target
// is still written.
func TestBackupRunRestore(t *testing.T) {
	env := newEnv(t)
	s3 := startS3(t)
	sink := newNotifySink(t, 200)
	local := t.TempDir()
	p, vol := env.project("bk"), env.Prefix+"data"
	repo, srv := newServedRepo(t)
	id, keyFile := ageKey(t)
	tag := canary(t, "dump")
	repo.WriteFile(".sops.yaml", "creation_rules:\n  - path_regex: secrets\\.sops\\.yaml$\n    age: "+id.Recipient().String()+"\n")
	repo.WriteFile("cluster.toml", fmt.Sprintf(`[backup]
enabled = true
schedule = "0 0 3 1 1 *"
retention_days = 7
[[backup.targets]]
type = "local"
path = %q
[[backup.targets]]
type = "s3"
endpoint = "http://%s"
bucket = %q
region = "us-east-1"
access_key = "${secrets.S3_ACCESS_KEY}"
secret_key = "${secrets.S3_SECRET_KEY}"
[[notify]]
type = "webhook"
url = %q
events = ["backup_failed"]
`, local, s3.addr, s3.bucket, sink.URL))
	setup := newOrca(t, env, repo.Dir())
	for name, value := range map[string]string{"S3_ACCESS_KEY": s3.key, "S3_SECRET_KEY": s3.sec, "DUMP_TAG": tag} {
		if r := setup.run("secrets", "set", "--dir", repo.Dir(), "--age-key-file", keyFile, name, value); r.Code != 0 {
			t.Fatalf("secrets set:\n%s", r)
		}
	}
	db := webApp(imageBackup, 1)
	db.Name = "db"
	volumes := fmt.Sprintf("[[service.volumes]]\nsource = %q\ntarget = \"/data\"\n", vol)
	db.Tables = volumes + "[service.backup]\npre_hook = [\"/app\", \"dump\", \"/data/dump-${secrets.DUMP_TAG}.sql\", \"-- dump of db\"]\n"
	file := "services/" + p + "/service.toml"
	repo.WriteFile(file, db.String())
	repo.CommitPush("db with a volume")
	d := startServeEnv(t, env, srv.URL("infra.git"), nil, "--age-key-file", keyFile)
	d.waitIdle(t)
	cli := &orcaCLI{t: t, dataDir: d.dataDir, docker: newScopedDocker(t, env.Prefix)}
	server := "--server=http://" + d.api

	base := dbURL(t, env, p)
	big := make([]byte, 3<<20)
	rand.Read(big)
	appPost(t, base, "/data/a.txt", "alpha\n")
	appPost(t, base, "/data/sub/b.bin", string(big))
	want := map[string]string{"a.txt": "alpha\n", "sub/b.bin": string(big), "dump-" + tag + ".sql": "-- dump of db"}

	old := p + "-" + vol + "-20200101T000000Z.tar.gz"
	if err := os.WriteFile(filepath.Join(local, old), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	s3.put(t, old, []byte("old"))

	r := cli.run("backup", "run", p+"/db", server)
	if r.Code != 0 {
		t.Fatalf("backup run: want exit 0\n%s", r)
	}
	names := localNames(t, local)
	if len(names) != 1 || !archiveRE.MatchString(names[0]) || !strings.HasPrefix(names[0], p+"-"+vol+"-") {
		t.Fatalf("local target holds %v, want one new archive (the old one removed by retention, no temporary file)\n%s", names, r)
	}
	archive := names[0]
	if !strings.Contains(r.Stdout, archive) || !strings.Contains(r.Stdout, "dumped 13 bytes to /data/dump-${secrets.DUMP_TAG}.sql") {
		t.Errorf("backup run output does not name the archive and the hook's output, the secret redacted:\n%s", r)
	}
	if strings.Contains(r.Stdout+r.Stderr+d.logs.String(), tag) {
		t.Errorf("the hook's output leaked the secret DUMP_TAG into the report or serve's logs:\n%s", r)
	}
	b, err := os.ReadFile(filepath.Join(local, archive))
	if err != nil {
		t.Fatal(err)
	}
	checkFiles(t, "local archive", archiveFiles(t, b), want)
	if got := s3.names(t); len(got) != 1 || got[0] != archive {
		t.Fatalf("bucket holds %v, want [%s]", got, archive)
	}
	checkFiles(t, "S3 archive", archiveFiles(t, s3.get(t, archive)), want)

	if r := cli.run("backup", "list", p+"/db", server); r.Code != 0 || strings.Count(r.Stdout, archive) != 2 {
		t.Errorf("backup list: want the archive once per target\n%s", r)
	}

	t.Run("restore gives the emptied volume back the same bytes", func(t *testing.T) {
		appPost(t, base, "/data/a.txt", "changed\n")
		appPost(t, base, "/data/extra.txt", "not in the archive\n")
		before := runningIDs(t, env, p, "db")
		r := cli.run("backup", "restore", p+"/db", vol, archive, server)
		if r.Code != 0 {
			t.Fatalf("backup restore: want exit 0\n%s", r)
		}
		var nb string
		waitFor(t, 120*time.Second, func() (bool, string) {
			ids := runningIDs(t, env, p, "db")
			return len(ids) == 1 && ids[0] != before[0], fmt.Sprintf("containers %v, before %v", ids, before)
		})
		nb = dbURL(t, env, p)
		for path, content := range want {
			if code, body, err := appGet(nb + "/file?path=/data/" + path); err != nil || code != 200 || body != content {
				t.Errorf("after restore %s: %d, %d bytes, %v; want the archived %d bytes", path, code, len(body), err, len(content))
			}
		}
		if code, _, _ := env.httpGet(nb + "/file?path=/data/extra.txt"); code != 404 {
			t.Errorf("after restore extra.txt answers %d, want 404: the volume was not emptied", code)
		}
		base = nb
	})

	t.Run("a failing pre_hook fails the service's backup and archives nothing", func(t *testing.T) {
		failing := db
		failing.Tables = volumes + "[service.backup]\npre_hook = [\"/app\", \"dump\", \"/no/such/dir/x\", \"y\"]\n"
		repo.WriteFile(file, failing.String())
		repo.CommitPush("a pre_hook that fails")
		d.syncAndWait(t)
		before := localNames(t, local)
		time.Sleep(1100 * time.Millisecond) // a new archive name: names are to the second
		r := cli.run("backup", "run", p+"/db", server)
		if r.Code != 1 || !strings.Contains(r.Stdout, "pre_hook exited 2") {
			t.Fatalf("backup run with a failing pre_hook: want exit 1 and its exit code\n%s", r)
		}
		if got := localNames(t, local); len(got) != len(before) {
			t.Errorf("local target holds %v, had %v: a failed hook archived anyway", got, before)
		}
	})

	t.Run("with no running container the volume is archived without the hook", func(t *testing.T) {
		stopped := db
		stopped.Replicas = count(0)
		repo.WriteFile(file, stopped.String())
		repo.CommitPush("db scaled to 0")
		d.syncAndWait(t)
		waitFor(t, 60*time.Second, func() (bool, string) {
			ids := runningIDs(t, env, p, "db")
			return len(ids) == 0, fmt.Sprintf("running: %v", ids)
		})
		time.Sleep(1100 * time.Millisecond)
		r := cli.run("backup", "run", p+"/db", server)
		if r.Code != 0 || !strings.Contains(r.Stdout, "no running container") {
			t.Fatalf("backup run of a stopped service: want exit 0 and the report saying no hook ran\n%s", r)
		}
		newest := ""
		for _, n := range localNames(t, local) {
			newest = max(newest, n)
		}
		b, err := os.ReadFile(filepath.Join(local, newest))
		if err != nil {
			t.Fatal(err)
		}
		checkFiles(t, "archive of the stopped service", archiveFiles(t, b), want)
		ctx, cancel := env.ctx()
		defer cancel()
		left, err := docker.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("name", p+"-db-backup")})
		if err != nil || len(left.Items) != 0 {
			t.Errorf("the container made to read the volume was left: %v %v", left.Items, err)
		}
	})

	t.Run("a stopped S3 target fails the backup, the local one is still written", func(t *testing.T) {
		s3.stop()
		before := len(localNames(t, local))
		time.Sleep(1100 * time.Millisecond) // a new archive name: names are to the second
		r := cli.run("backup", "run", p, server)
		if r.Code != 1 || !strings.Contains(r.Stdout, "FAILED") {
			t.Fatalf("backup run with S3 down: want exit 1 and FAILED\n%s", r)
		}
		if got := localNames(t, local); len(got) != before+1 {
			t.Errorf("local target holds %v, want one more archive than the %d before", got, before)
		}
		waitFor(t, 60*time.Second, func() (bool, string) {
			evs := sink.all()
			for _, e := range evs {
				if e["kind"] == "backup_failed" && fmt.Sprint(e["services"]) == "["+p+"/db]" && strings.Contains(fmt.Sprint(e["reason"]), "s3://") {
					return true, ""
				}
			}
			return false, fmt.Sprintf("events: %v", evs)
		})
		st := d.status()
		found := false
		for _, bs := range st.Backups {
			if bs.Project == p && bs.Volume == vol {
				found = bs.LastError != "" && bs.LastSuccess != nil
			}
		}
		if !found {
			t.Errorf("status backups = %+v: want %s with the last error and the earlier success", st.Backups, vol)
		}
		for _, leak := range []string{s3.sec} {
			if strings.Contains(r.Stdout+r.Stderr, leak) || strings.Contains(d.logs.String(), leak) || strings.Contains(fmt.Sprint(sink.all()), leak) {
				t.Errorf("the S3 secret key leaked into output, logs or events")
			}
		}
	})
}

func checkFiles(t testing.TB, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		var names []string
		for n := range got {
			names = append(names, n)
		}
		t.Errorf("%s holds %v, want exactly %d files", what, names, len(want))
	}
	for n, c := range want {
		if got[n] != c {
			t.Errorf("%s: %s has %d bytes, want %d (same bytes)", what, n, len(got[n]), len(c))
		}
	}
}

// runningIDs are the IDs of the running containers of project/service.
func runningIDs(t testing.TB, env *Env, project, service string) []string {
	t.Helper()
	cs, err := env.containers(project, service)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		if c.State == "running" {
			ids = append(ids, c.ID)
		}
	}
	return ids
}

// dbURL is the base URL of the one running container of project/db.
func dbURL(t testing.TB, env *Env, project string) string {
	t.Helper()
	var ids []string
	waitFor(t, 60*time.Second, func() (bool, string) {
		ids = runningIDs(t, env, project, "db")
		return len(ids) == 1, fmt.Sprintf("running db containers: %v", ids)
	})
	return env.appURL(t, ids[0], "orca-"+project)
}
