package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

const okService = `
[[service]]
name = "web"
image = "app:v1"
port = 8080
`

// TestServiceValidation feeds one bad input per rule and checks the one-line
// message an operator would read.
func TestServiceValidation(t *testing.T) {
	cases := []struct {
		name string
		toml string
		want string // substring of the only error
		line int    // expected line, 0 = not checked
	}{
		{"toml syntax", "[[service]]\nname = \"web\nimage = \"x\"", "TOML syntax", 2},
		{"unknown key typo", "[[service]]\nname = \"web\"\nimage = \"app:v1\"\nreplica = 2\n", `web: unknown key "replica"`, 4},
		{"unknown nested key", "[[service]]\nname = \"web\"\nimage = \"app:v1\"\n[service.deploy]\nstratgy = \"rolling\"\n", `unknown key "deploy.stratgy"`, 5},
		{"unknown key names the right service", okService + "\n[[service]]\nname = \"db\"\nimage = \"pg:16\"\nvolume = []\n", `db: unknown key "volume"`, 10},
		{"key in wrong case", "[[service]]\nname = \"web\"\nImage = \"app:v1\"\n", `web: unknown key "Image"`, 3},
		{"wrong type", "[[service]]\nname = \"web\"\nimage = \"app:v1\"\nreplicas = \"two\"\n", "replicas: wrong type", 4},
		{"missing name", "[[service]]\nimage = \"app:v1\"\n", "service #1: name is required", 1},
		{"missing image", "[[service]]\nname = \"web\"\n", "web: image is required", 1},
		{"bad name", "[[service]]\nname = \"Web_1\"\nimage = \"app:v1\"\n", `name "Web_1" must match [a-z0-9][a-z0-9-]*`, 2},
		{"duplicate name", okService + okService, `duplicate service name "web" (first defined at line 2)`, 8},
		{"depends_on unknown", okService + "depends_on = [\"db\"]\n", `depends_on "db": no such service`, 6},
		{"depends_on self", okService + "depends_on = [\"web\"]\n", "depends_on names the service itself", 6},
		{"depends_on cycle", "[[service]]\nname = \"a\"\nimage = \"x:1\"\ndepends_on = [\"b\"]\n[[service]]\nname = \"b\"\nimage = \"x:1\"\ndepends_on = [\"c\"]\n[[service]]\nname = \"c\"\nimage = \"x:1\"\ndepends_on = [\"a\"]\n", "depends_on cycle: a -> b -> c -> a", 4},
		{"domain and domains", okService + "domain = \"a.example.com\"\ndomains = [\"b.example.com\"]\n", "set either domain or domains, not both", 7},
		{"command and cmd", okService + "command = [\"a\"]\ncmd = [\"b\"]\n", "set either command or cmd, not both", 7},
		{"bad domain", okService + "domain = \"Bad Domain\"\n", `domain "Bad Domain" is not a host name`, 6},
		{"domain without port", "[[service]]\nname = \"web\"\nimage = \"app:v1\"\ndomain = \"a.example.com\"\n", "a service with a domain needs port", 0},
		{"bad memory", okService + "resources = {memory = \"lots\"}\n", `resources.memory "lots": not a size`, 6},
		{"tiny memory", okService + "resources = {memory = \"1Ki\"}\n", "Docker needs at least 6Mi", 6},
		{"bad cpu", okService + "[service.resources]\ncpu = -1.0\n", "resources.cpu -1: must be more than 0", 7},
		// A size or a count of cores that is not a number, infinite or below
		// one unit Docker can hold is an error, never "no limit".
		{"memory NaN", okService + "resources = {memory = \"NaN\"}\n", `resources.memory "NaN": not a size`, 6},
		{"memory Inf", okService + "resources = {memory = \"Inf\"}\n", `resources.memory "Inf": not a size`, 6},
		{"memory below a byte", okService + "resources = {memory = \"0.5\"}\n", `resources.memory "0.5": a size must be at least one byte`, 6},
		{"memory zero", okService + "resources = {memory = \"0Mi\"}\n", `resources.memory "0Mi": a size must be at least one byte`, 6},
		{"cpu NaN", okService + "[service.resources]\ncpu = nan\n", "resources.cpu NaN: must be more than 0", 7},
		{"cpu Inf", okService + "[service.resources]\ncpu = inf\n", "resources.cpu +Inf: must be more than 0", 7},
		{"cpu too small for Docker", okService + "[service.resources]\ncpu = 0.001\n", "resources.cpu 0.001: Docker needs at least 0.01", 7},
		{"error rate NaN", okService + "[service.deploy.analysis]\nmax_error_rate = nan\n", "max_error_rate = NaN: must be a fraction", 7},
		{"bad image", "[[service]]\nname = \"web\"\nimage = \"UPPER/Case::tag\"\n", `image "UPPER/Case::tag" is not an image reference`, 3},
		{"probe interval", okService + "[service.readiness]\npath = \"/healthz\"\ninterval_secs = 0\n", "readiness.interval_secs = 0: must be at least 1", 8},
		{"probe threshold", okService + "[service.liveness]\npath = \"/healthz\"\nfailure_threshold = 0\n", "liveness.failure_threshold = 0: must be at least 1", 8},
		{"probe type", okService + "[service.readiness]\ntype = \"grpc\"\n", `readiness.type = "grpc": must be "http", "tcp" or "exec"`, 7},
		{"http probe without path", okService + "[service.readiness]\ntype = \"http\"\n", "readiness: an http probe needs a path", 0},
		{"exec probe without command", okService + "[service.readiness]\ntype = \"exec\"\n", "an exec probe needs a command", 0},
		{"probe port range", okService + "[service.readiness]\ntype = \"tcp\"\nport = 70000\n", `readiness.port "70000" is not a port`, 8},
		{"expect_status", okService + "[service.readiness]\npath = \"/\"\nexpect_status = \"abc\"\n", `readiness.expect_status: "abc" is not a status`, 8},
		{"expect_status range", okService + "[service.readiness]\npath = \"/\"\nexpect_status = \"399-200\"\n", "must be a range within 100-599", 8},
		{"unknown strategy", okService + "[service.deploy]\nstrategy = \"yolo\"\n", `deploy.strategy = "yolo": must be one of`, 7},
		{"unknown pull_policy", okService + "pull_policy = \"sometimes\"\n", `pull_policy = "sometimes": must be one of`, 6},
		{"unknown restart_policy", okService + "restart_policy = \"on-failure:x\"\n", `restart_policy = "on-failure:x"`, 6},
		{"unknown drift", okService + "drift = \"ignore\"\n", `drift = "ignore": must be one of`, 6},
		{"unknown runtime", okService + "runtime = \"podman\"\n", `runtime = "podman": must be one of`, 6},
		{"negative replicas", okService + "replicas = -1\n", "replicas = -1: must be 0 or more", 6},
		{"canary step weight", okService + "[service.deploy]\nstrategy = \"canary\"\nsteps = [{weight = 20, pause_secs = 5}, {weight = 150}]\n", "deploy.steps[1].weight = 150: must be a percentage in 1..100", 8},
		{"canary weight", okService + "[service.deploy]\nstrategy = \"canary\"\ncanary_weight = 0\n", "deploy.canary_weight = 0", 8},
		{"max_surge", okService + "[service.deploy]\nmax_surge = 0\n", "deploy.max_surge = 0: must be at least 1", 7},
		{"error rate", okService + "[service.deploy.analysis]\nmax_error_rate = 5.0\n", "max_error_rate = 5: must be a fraction", 7},
		{"reserved label", okService + "labels = {\"orca.managed\" = \"false\"}\n", `label "orca.managed": the orca. prefix is reserved`, 6},
		{"bad env name", okService + "[service.env]\n\"1BAD\" = \"x\"\n", `env name "1BAD"`, 7},
		{"secret ref typo", okService + "[service.env]\nDB = \"${secret.DB}\"\n", `"${secret.DB}" is not a secret reference`, 7},
		{"secret ref unclosed", okService + "command = [\"${secrets.X\"]\n", `unclosed "${"`, 6},
		{"extra_ports syntax", okService + "extra_ports = [\"22\"]\n", `"22": expected "host:container"`, 6},
		{"extra_ports twice in a service", okService + "extra_ports = [\"2222:22\", \"2222:23\"]\n", "host port 2222/tcp is published twice", 6},
		{"extra_ports with replicas", okService + "replicas = 2\nextra_ports = [\"2222:22\"]\n", "which 2 replicas cannot share", 7},
		{"extra_ports with rolling", okService + "extra_ports = [\"2222:22\"]\n[service.deploy]\nstrategy = \"rolling\"\n", `use "recreate" with extra_ports`, 8},
		{"volume source is a path", okService + "volumes = [{source = \"/data\", target = \"/data\"}]\n", `volume source "/data" is not a Docker volume name`, 6},
		{"relative target", okService + "volumes = [{source = \"data\", target = \"data\"}]\n", `volumes target "data" must be an absolute path`, 6},
		{"mount outside repo", okService + "mounts = [{source = \"./../etc\", target = \"/etc/x\"}]\n", "service.toml:6: web: mounts: mount source ./../etc resolves outside the checkout", 6},
		{"mount not relative", okService + "mounts = [{source = \"config\", target = \"/etc/x\"}]\n", "must be absolute or start with ./", 6},
		{"route shape", okService + "routes = [\"api\"]\n", `route "api" must start with /`, 6},
		{"health shape", okService + "health = \"healthz\"\n", `health "healthz" must be an HTTP path`, 6},
		{"bad alias", okService + "aliases = [\"DB\"]\n", `alias "DB" must match`, 6},
		{"build without repo", "[[service]]\nname = \"web\"\n[service.build]\nbranch = \"main\"\n", "build.repo is required", 0},
		{"build secret arg", "[[service]]\nname = \"web\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\nargs = {TOKEN = \"${secrets.TOKEN}\"}\n", "build.args.TOKEN: ${secrets...} is not allowed in build args", 5},
		{"build context outside", "[[service]]\nname = \"web\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\ncontext = \"../x\"\n", `build.context = "../x": must be a relative path`, 0},
		{"build dockerfile absolute", "[[service]]\nname = \"web\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\ndockerfile = \"/Dockerfile\"\n", `build.dockerfile = "/Dockerfile": must be a relative path`, 0},
		{"build pulls", "[[service]]\nname = \"web\"\npull_policy = \"always\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\n", "a service with build never pulls its image", 3},
		{"build and watch", "[[service]]\nname = \"web\"\nwatch = {repo = \"o/app\"}\n[service.build]\nrepo = \"https://git.example.com/app.git\"\n", "set either watch or build", 0},
		{"build image digest", "[[service]]\nname = \"web\"\nimage = \"app@sha256:" + strings.Repeat("a", 64) + "\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\n", "a digest cannot name it", 3},
		{"build repo credentials", "[[service]]\nname = \"web\"\n[service.build]\nrepo = \"https://u:pw@git.example.com/app.git\"\n", "credentials in the URL would be kept in container labels", 0},
		{"build unknown key", "[[service]]\nname = \"web\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\ntarget = \"prod\"\n", `unknown key "build.target"`, 5},
		{"no service", "# nothing here\n", "no [[service]] table", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := ParseServiceFile("services/p/service.toml", "p", []byte(tc.toml))
			if len(errs) != 1 {
				t.Fatalf("want exactly one error containing %q, got %d:\n%v", tc.want, len(errs), errs)
			}
			if msg := errs[0].Error(); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not contain %q", msg, tc.want)
			}
			if !strings.HasPrefix(errs[0].Error(), "services/p/service.toml") {
				t.Errorf("error %q does not start with the file", errs[0].Error())
			}
			if tc.line != 0 && errs[0].Line != tc.line {
				t.Errorf("line = %d, want %d (%s)", errs[0].Line, tc.line, errs[0].Error())
			}
		})
	}
}

// TestBuildDefaults checks what a [service.build] table defaults to and the
// tag its image gets.
func TestBuildDefaults(t *testing.T) {
	toml := "[[service]]\nname = \"web\"\n[service.build]\nrepo = \"https://git.example.com/app.git\"\n" +
		"[[service]]\nname = \"api\"\nimage = \"registry.example.com/team/api:v3\"\n[service.build]\nrepo = \"https://git.example.com/api.git\"\nbranch = \"prod\"\ncontext = \"srv\"\ndockerfile = \"Dockerfile.prod\"\nargs = {GO = \"1.24\"}\n"
	ss, errs := ParseServiceFile("services/p/service.toml", "p", []byte(toml))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	web, api := ss[0], ss[1]
	if b := web.Build; b.Branch != "main" || b.Context != "." || b.Dockerfile != "Dockerfile" || web.PullPolicy != PullNever {
		t.Errorf("web build = %+v, pull_policy %q; want main, ., Dockerfile, never", b, web.PullPolicy)
	}
	if got := web.BuildTag("0123456789abcdef0123"); got != "orca-build/p-web:0123456789ab" {
		t.Errorf("web tag = %q", got)
	}
	if b := api.Build; b.Branch != "prod" || b.Context != "srv" || b.Dockerfile != "Dockerfile.prod" || b.Args["GO"] != "1.24" {
		t.Errorf("api build = %+v", b)
	}
	if got := api.BuildTag("0123456789abcdef0123"); got != "registry.example.com/team/api:0123456789ab" {
		t.Errorf("api tag = %q (the tag in image is replaced by the commit)", got)
	}
}

// TestAllErrorsAtOnce checks that one file with several problems reports all
// of them, each naming its service.
func TestAllErrorsAtOnce(t *testing.T) {
	src := "[[service]]\nname = \"web\"\nimage = \"app:v1\"\nreplica = 2\n\n[[service]]\nname = \"db\"\n[service.deploy]\nstrategy = \"yolo\"\n"
	_, errs := ParseServiceFile("services/p/service.toml", "p", []byte(src))
	sortErrors(errs)
	want := []string{
		`services/p/service.toml:4: web: unknown key "replica"`,
		"services/p/service.toml:6: db: image is required",
		`services/p/service.toml:9: db: deploy.strategy = "yolo": must be one of "rolling", "recreate", "blue-green", "canary"`,
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if errs[i].Error() != w {
			t.Errorf("error %d:\n got %s\nwant %s", i, errs[i].Error(), w)
		}
	}
}

func TestDefaults(t *testing.T) {
	src := okService + "health = \"/healthz\"\nvolumes = [{source = \"data\", target = \"/data\"}]\n" +
		"[[service]]\nname = \"canary\"\nimage = \"app\"\nport = 80\n[service.deploy]\nstrategy = \"canary\"\nsteps = [{weight = 10, pause_secs = 30}]\n"
	svcs, errs := ParseServiceFile("services/p/service.toml", "p", []byte(src))
	if errs != nil {
		t.Fatal(errs)
	}
	web, canary := svcs[0], svcs[1]
	checks := []struct {
		what      string
		got, want any
	}{
		{"replicas", web.Replicas, 1},
		{"routes", web.Routes, []string{"/"}},
		{"strategy with a volume", web.Deploy.Strategy, StrategyRecreate},
		{"pull policy of a pinned tag", web.PullPolicy, PullIfNotPresent},
		{"pull policy of an untagged image", canary.PullPolicy, PullAlways},
		{"restart policy", web.RestartPolicy, "unless-stopped"},
		{"drift", web.Drift, DriftCorrect},
		{"readiness from health", web.Readiness.Path, "/healthz"},
		{"liveness from health", web.Liveness.Path, "/healthz"},
		{"probe interval", web.Readiness.Interval.Seconds(), 10.0},
		{"probe expect", [2]int{web.Readiness.ExpectMin, web.Readiness.ExpectMax}, [2]int{200, 399}},
		{"timeout", web.Deploy.Timeout.Seconds(), 300.0},
		{"auto_promote with steps", canary.Deploy.AutoPromote, true},
		{"canary weight", canary.Deploy.CanaryWeight, 20},
		{"analysis", canary.Deploy.Analysis.MinRequests, 20},
		{"min ready", web.Deploy.MinReady.Seconds(), 2.0},
	}
	for _, c := range checks {
		if !equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func equal(a, b any) bool {
	as, aok := a.([]string)
	bs, bok := b.([]string)
	if aok && bok {
		return strings.Join(as, ",") == strings.Join(bs, ",")
	}
	return a == b
}

// writeTree creates files (path -> content) under a temp dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestLoadCheckoutErrors(t *testing.T) {
	svc := func(name, extra string) string {
		return "[[service]]\nname = \"" + name + "\"\nimage = \"app:v1\"\nport = 80\n" + extra
	}
	cases := []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"host and route claimed twice", map[string]string{
			"services/a/service.toml": svc("web", "domain = \"x.example.com\"\n"),
			"services/b/service.toml": svc("web", "domain = \"x.example.com\"\n"),
		}, "services/b/service.toml:1: web: domain x.example.com route / is already claimed by a/web"},
		{"host port published twice", map[string]string{
			"services/a/service.toml": svc("ssh", "extra_ports = [\"2222:22\"]\n"),
			"services/b/service.toml": svc("ssh", "extra_ports = [\"2222:22\"]\n"),
		}, "host port 2222/tcp is already published by a/ssh"},
		{"plaintext secrets", map[string]string{
			"services/a/service.toml": svc("web", ""),
			"services/a/secrets.yaml": "DB_PASSWORD: hunter2\n",
		}, "services/a/secrets.yaml: is not SOPS-encrypted"},
		{"plaintext cluster secrets", map[string]string{
			"services/a/service.toml": svc("web", ""),
			"secrets.sops.json":       `{"DB": "hunter2"}`,
		}, "secrets.sops.json: is not SOPS-encrypted"},
		{"missing service.toml", map[string]string{
			"services/a/service.toml":  svc("web", ""),
			"services/b/config/x.yaml": "x: 1\n",
		}, "services/b/service.toml: missing"},
		{"bad project name", map[string]string{
			"services/My_App/service.toml": svc("web", ""),
		}, `services/My_App: project directory name "My_App" must match`},
		{"missing mount source", map[string]string{
			"services/a/service.toml": svc("web", "mounts = [{source = \"./services/a/config\", target = \"/cfg\"}]\n"),
		}, `mount source "./services/a/config" does not exist in the repository`},
		{"placement without nodes", map[string]string{
			"services/a/service.toml": svc("web", "placement = {node = \"b\"}\n"),
		}, `services/a/service.toml:5: web: placement needs the nodes declared: add a [[node]] entry`},
		{"backup without volumes", map[string]string{
			"services/a/service.toml": svc("web", "backup = {pre_hook = \"pg_dump\"}\n"),
		}, `services/a/service.toml:5: web: backup is set but the service has no volumes`},
		{"backup pre_hook not a command", map[string]string{
			"services/a/service.toml": svc("web", "volumes = [{source = \"data\", target = \"/d\"}]\nbackup = {pre_hook = 3}\n"),
		}, `web: backup.pre_hook must be a string (run as ` + "`sh -c`" + `) or a list of strings`},
		{"backup pre_hook list of numbers", map[string]string{
			"services/a/service.toml": svc("web", "volumes = [{source = \"data\", target = \"/d\"}]\nbackup = {pre_hook = [\"dump\", 1]}\n"),
		}, `web: backup.pre_hook: a list must hold only strings`},
		{"no services dir", map[string]string{"cluster.toml": ""}, "no services/ directory here"},
		{"cluster unknown key", map[string]string{
			"services/a/service.toml": svc("web", ""),
			"cluster.toml":            "[reconcile]\ninterval = 5\n",
		}, `cluster.toml:2: unknown key "reconcile.interval"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Load(writeTree(t, tc.files))
			if err == nil {
				t.Fatalf("Load succeeded (%d projects), want error %q", len(d.Projects), tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestSOPSFileAccepted(t *testing.T) {
	enc := "DB_PASSWORD: ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]\nsops:\n    age:\n        - recipient: age1xyz\n    mac: ENC[AES256_GCM,data:m,iv:i,tag:t,type:str]\n    version: 3.9.0\n"
	root := writeTree(t, map[string]string{
		"services/a/service.toml":      okService,
		"services/a/secrets.sops.yaml": enc,
		"secrets.sops.env":             "DB=ENC[AES256_GCM,data:x]\nsops_mac=ENC[AES256_GCM,data:y]\n",
	})
	d, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.SecretFiles) != 2 || d.SecretFiles[0].Project != "" || d.SecretFiles[1].Project != "a" {
		t.Fatalf("secret files = %+v", d.SecretFiles)
	}
}

func TestClusterRegistries(t *testing.T) {
	c, errs := ParseClusterFile("cluster.toml", []byte("[[registry]]\nhost = \"Registry.Example.com:5000\"\nusername = \"bot\"\npassword = \"${secrets.REGISTRY_PASSWORD}\"\n"+
		"[[registry]]\nhost = \"https://index.docker.io/v1/\"\nusername = \"hub\"\npassword = \"p\"\n"))
	if len(errs) != 0 {
		t.Fatalf("errors: %v", errs)
	}
	want := []Registry{{Host: "registry.example.com:5000", Username: "bot", Password: "${secrets.REGISTRY_PASSWORD}"},
		{Host: "docker.io", Username: "hub", Password: "p"}}
	if !reflect.DeepEqual(c.Registries, want) {
		t.Errorf("registries = %+v, want %+v", c.Registries, want)
	}
	if !slices.Contains(c.SecretRefs, "REGISTRY_PASSWORD") {
		t.Errorf("secret refs = %v: the password's reference is not resolved", c.SecretRefs)
	}
}

func TestClusterValidation(t *testing.T) {
	cases := []struct {
		name, toml, want string
	}{
		{"interval", "[reconcile]\ninterval_secs = 0\n", "cluster.toml:2: reconcile.interval_secs must be at least 1"},
		{"prune guard", "[reconcile]\nprune_guard = 1.5\n", "reconcile.prune_guard = 1.5"},
		{"tls mode", "[acme]\ntls = \"maybe\"\n", `acme.tls = "maybe"`},
		{"ca and directory", "[acme]\nca = \"https://a/dir\"\ndirectory = \"https://b/dir\"\n", "set either acme.ca or orca's acme.directory"},
		{"trusted proxy", "[proxy]\ntrusted_proxies = [\"10.0.0.0/33\"]\n", `"10.0.0.0/33" is not an IP address or CIDR`},
		{"max body", "[proxy]\nmax_body = \"huge\"\n", `proxy.max_body "huge"`},
		// Each of these parsed to a limit of zero or less, which the proxy
		// reads as "no limit".
		{"max body NaN", "[proxy]\nmax_body = \"NaN\"\n", `cluster.toml:2: proxy.max_body "NaN": not a size`},
		{"max body Inf", "[proxy]\nmax_body = \"Inf\"\n", `cluster.toml:2: proxy.max_body "Inf": not a size`},
		{"max body negative", "[proxy]\nmax_body = \"-1\"\n", `cluster.toml:2: proxy.max_body "-1": a size must be at least one byte`},
		{"max body half a byte", "[proxy]\nmax_body = \"0.5\"\n", `cluster.toml:2: proxy.max_body "0.5": a size must be at least one byte`},
		{"max body with B", "\n[proxy]\nmax_body = \"0.5B\"\n", `cluster.toml:3: proxy.max_body "0.5B": not a size`},
		{"max body over 4Ei", "[proxy]\nmax_body = \"5000000Ti\"\n", `cluster.toml:2: proxy.max_body "5000000Ti": a size must be at most 4Ei`},
		{"prune guard NaN", "[reconcile]\nprune_guard = nan\n", "cluster.toml:2: reconcile.prune_guard = NaN"},
		{"same ports", "[proxy]\nhttp_port = 8080\nhttps_port = 8080\n", "are both 8080"},
		{"notify type", "[[notify]]\ntype = \"pager\"\nurl = \"https://h/x\"\n", `cluster.toml:2: notify type = "pager"`},
		{"notify event", "[[notify]]\ntype = \"slack\"\nurl = \"https://h/x\"\nevents = [\"sync_exploded\"]\n", `notify event "sync_exploded"`},
		{"notify url", "[[notify]]\ntype = \"slack\"\nurl = \"not a url\"\n", `url: "not a url" is not an http(s) URL`},
		{"token role", "[[token]]\nname = \"ci\"\nvalue = \"0123456789abcdef0123\"\nrole = \"root\"\n", `role = "root"`},
		{"token short", "[[token]]\nname = \"ci\"\nvalue = \"short\"\nrole = \"viewer\"\n", "at least 16 characters"},
		{"token hash", "[[token]]\nname = \"ci\"\nvalue = \"sha256:xyz\"\nrole = \"viewer\"\n", "64 lower-case hex digits"},
		{"github without token", "[github]\nrepo = \"org/infra\"\n", "github.repo is set but github.token is not"},
		{"github repo shape", "[github]\nrepo = \"infra\"\ntoken = \"t\"\n", `github.repo "infra" must be "owner/name"`},
		{"backup without targets", "[backup]\nenabled = true\nschedule = \"0 0 3 * * *\"\n", "cluster.toml:2: backup.enabled = true needs at least one [[backup.targets]]"},
		{"backup without schedule", "[backup]\nenabled = true\n[[backup.targets]]\ntype = \"local\"\npath = \"/b\"\n", "cluster.toml:2: backup.enabled = true needs backup.schedule"},
		{"backup five-field schedule", "[backup]\nschedule = \"0 3 * * *\"\n", `cluster.toml:2: backup.schedule "0 3 * * *": expected exactly 6 fields`},
		{"backup negative retention", "[backup]\nretention_days = -1\n", "cluster.toml:2: backup.retention_days must be 0"},
		{"backup target type", "[backup]\n[[backup.targets]]\ntype = \"ftp\"\n", `cluster.toml:3: backup target 1: type = "ftp" must be "local" or "s3"`},
		{"backup local relative", "[[backup.targets]]\ntype = \"local\"\npath = \"backups\"\n", `cluster.toml:3: backup target 1: type "local" needs an absolute path`},
		{"backup local with bucket", "[[backup.targets]]\ntype = \"local\"\npath = \"/b\"\nbucket = \"x\"\n", `cluster.toml:4: backup target 1: bucket is a key of type "s3"`},
		{"backup s3 without bucket", "[[backup.targets]]\ntype = \"local\"\npath = \"/b\"\n[[backup.targets]]\ntype = \"s3\"\nendpoint = \"https://s3.example.com\"\naccess_key = \"a\"\nsecret_key = \"b\"\n", `cluster.toml:4: backup target 2: type "s3" needs bucket`},
		{"backup s3 endpoint path", "[[backup.targets]]\ntype = \"s3\"\nendpoint = \"https://s3.example.com/x\"\nbucket = \"b\"\naccess_key = \"a\"\nsecret_key = \"b\"\n", `cluster.toml:3: backup target 1: endpoint "https://s3.example.com/x" must be`},
		{"node without name", "[[node]]\nname = \"a\"\n[[node]]\nlabels = {role = \"edge\"}\n", "cluster.toml:3: [[node]] needs a name"},
		{"node twice", "[[node]]\nname = \"a\"\n[[node]]\nname = \"a\"\n", `cluster.toml:4: name: node "a" is declared twice`},
		{"node name shape", "[[node]]\nname = \"Web_1\"\n", `cluster.toml:2: node name "Web_1" must match`},
		{"bad secret ref", "[webhook]\nsecret = \"${secrets.}\"\n", "is not a secret reference"},
		{"registry without host", "[[registry]]\nusername = \"u\"\npassword = \"p\"\n", "cluster.toml:1: registry host is required"},
		{"registry host with a path", "[[registry]]\nhost = \"ghcr.io/acme\"\nusername = \"u\"\npassword = \"p\"\n", `cluster.toml:2: registry host "ghcr.io/acme": give the host (and port) only`},
		{"registry host from a secret", "[[registry]]\nhost = \"${secrets.H}\"\nusername = \"u\"\npassword = \"p\"\n", "registry host cannot come from a secret"},
		{"registry twice", "[[registry]]\nhost = \"docker.io\"\nusername = \"u\"\npassword = \"p\"\n[[registry]]\nhost = \"index.docker.io\"\nusername = \"u\"\npassword = \"p\"\n", `cluster.toml:6: registry host "docker.io" is given twice`},
		{"registry without password", "[[registry]]\nhost = \"r.example.com\"\nusername = \"u\"\n", `registry "r.example.com": password is required`},
		{"registry unknown key", "[[registry]]\nhost = \"r.example.com\"\nusername = \"u\"\npassword = \"p\"\nemail = \"x\"\n", `unknown key "registry.email"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := ParseClusterFile("cluster.toml", []byte(tc.toml))
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("want one error containing %q, got %v", tc.want, errs)
			}
		})
	}
}

func TestClusterDefaultsAndSecrets(t *testing.T) {
	c, errs := ParseClusterFile("cluster.toml", []byte("[webhook]\nsecret = \"${secrets.HOOK}\"\n[[token]]\nname = \"ci\"\nvalue = \"${secrets.CI_TOKEN}\"\nrole = \"deployer\"\n"))
	if errs != nil {
		t.Fatal(errs)
	}
	if c.Reconcile.Interval.Seconds() != 60 || !c.Reconcile.Prune || c.Reconcile.PruneGuard != 0.5 {
		t.Errorf("reconcile defaults = %+v", c.Reconcile)
	}
	if c.Proxy.HTTPPort != 80 || c.Proxy.HTTPSPort != 443 || c.Proxy.MaxBodyBytes != 100<<20 {
		t.Errorf("proxy defaults = %+v", c.Proxy)
	}
	if c.ACME.TLS != TLSACME || c.ACME.CA != DefaultACMECA || !c.GitHub.PRPlans {
		t.Errorf("acme/github defaults = %+v %+v", c.ACME, c.GitHub)
	}
	if strings.Join(c.SecretRefs, ",") != "CI_TOKEN,HOOK" {
		t.Errorf("secret refs = %v", c.SecretRefs)
	}
}

// TestKeycloakSeedExampleValidates: orca's Keycloak example loads unchanged,
// its [backup] table (local and S3 targets, keys from secrets) included.
func TestKeycloakSeedExampleValidates(t *testing.T) {
	d, err := Load("testdata/keycloak")
	if err != nil {
		t.Fatal(err)
	}
	b := d.Cluster.Backup
	if !b.Enabled || b.Schedule != "0 0 3 * * *" || b.RetentionDays != 14 || len(b.Targets) != 2 {
		t.Fatalf("backup = %+v", b)
	}
	if b.Targets[0].Type != BackupLocal || b.Targets[0].Path != "/var/lib/orca/backups" ||
		b.Targets[1].Type != BackupS3 || b.Targets[1].Bucket != "my-backups" || b.Targets[1].SecretKey != "${secrets.HETZNER_S3_SECRET_KEY}" {
		t.Errorf("targets = %+v", b.Targets)
	}
	if got := strings.Join(d.Cluster.SecretRefs, ","); got != "HETZNER_S3_ACCESS_KEY,HETZNER_S3_SECRET_KEY" {
		t.Errorf("cluster secret refs = %s", got)
	}
	if err != nil {
		t.Fatal(err)
	}
	kc := d.Project("keycloak").Service("keycloak")
	if kc.Liveness.InitialDelay.Seconds() != 120 || kc.Mounts[0].HostPath == "" || !kc.Mounts[0].ReadOnly {
		t.Errorf("keycloak = %+v", kc)
	}
	if got := strings.Join(kc.SecretRefs, ","); got != "KEYCLOAK_ADMIN_USERNAME,KEYCLOAK_BOOTSTRAP_PASSWORD,KEYCLOAK_DB_PASSWORD,KEYCLOAK_DB_USER" {
		t.Errorf("secret refs = %s", got)
	}
	if d.Cluster.ACME.CA != DefaultACMECA || !d.Cluster.Proxy.Enabled {
		t.Errorf("cluster = %+v", d.Cluster)
	}
	waves := d.Project("keycloak").StartOrder()
	if len(waves) != 2 || waves[0][0].Name != "keycloak-db" || waves[1][0].Name != "keycloak" {
		t.Errorf("start order = %v", waves)
	}
}

// TestTokenFromSecretHeldToMinimum: a [[token]] value written as
// ${secrets.NAME} meets the same 16-character minimum once its secret is
// known, and the error neither quotes the value nor keeps it on the config.
func TestTokenFromSecretHeldToMinimum(t *testing.T) {
	src := "[[token]]\nname = \"ci\"\nvalue = \"${secrets.CI}\"\nrole = \"viewer\"\n[[token]]\nname = \"ops\"\nvalue = \"${secrets.OPS}\"\nrole = \"admin\"\n"
	c, errs := ParseClusterFile("cluster.toml", []byte(src))
	if errs != nil {
		t.Fatalf("a reference is checked once resolved, not as written: %v", errs)
	}
	values := map[string]string{"CI": "too-short", "OPS": "0123456789abcdef"}
	errs = c.CheckResolved(func(name string) (string, error) { return values[name], nil })
	if len(errs) != 1 {
		t.Fatalf("want one error (ci), got %v", errs)
	}
	want := `cluster.toml:3: token "ci": the value its secret gives: value must be at least 16 characters`
	if msg := errs[0].Error(); !strings.HasPrefix(msg, want) {
		t.Errorf("error = %q, want it to start %q", msg, want)
	}
	if strings.Contains(errs.Error(), "too-short") {
		t.Errorf("the error quotes the secret: %v", errs)
	}
	if c.Tokens[0].Value != "${secrets.CI}" {
		t.Errorf("CheckResolved changed the token to %q", c.Tokens[0].Value)
	}
}

// TestBackupPreHook: a string pre_hook runs as `sh -c`, a list as given; the
// secrets it names are the hook's, not the service's (which the spec hash
// covers), so a secret only the hook uses never rolls the service.
func TestBackupPreHook(t *testing.T) {
	src := "[[service]]\nname = \"db\"\nimage = \"postgres:16\"\nvolumes = [{source = \"data\", target = \"/d\"}]\n" +
		"backup = {pre_hook = \"pg_dump -U ${secrets.DB_USER} > /d/dump.sql\"}\n" +
		"[[service]]\nname = \"kv\"\nimage = \"redis:7\"\nvolumes = [{source = \"kvdata\", target = \"/k\"}]\n" +
		"backup = {pre_hook = [\"redis-cli\", \"save\"]}\n"
	ss, errs := ParseServiceFile("services/p/service.toml", "p", []byte(src))
	if errs != nil {
		t.Fatal(errs)
	}
	db, kv := ss[0], ss[1]
	if got := strings.Join(db.Backup.PreHook, "|"); got != "sh|-c|pg_dump -U ${secrets.DB_USER} > /d/dump.sql" {
		t.Errorf("string pre_hook = %q", got)
	}
	if strings.Join(db.Backup.SecretRefs, ",") != "DB_USER" || len(db.SecretRefs) != 0 {
		t.Errorf("hook refs %v, service refs %v", db.Backup.SecretRefs, db.SecretRefs)
	}
	if got := strings.Join(kv.Backup.PreHook, "|"); got != "redis-cli|save" {
		t.Errorf("list pre_hook = %q", got)
	}
}
