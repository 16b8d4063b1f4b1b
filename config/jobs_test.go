package config

import (
	"strings"
	"testing"
	"time"
)

// jobService is a valid job; keys are appended to its [[service]] table.
const jobService = "[[service]]\nname = \"report\"\nimage = \"app:v1\"\nschedule = \"0 */5 * * * *\"\n"

// TestJobAndHookValidation: each bad job or hook key is one error at its
// service, with the key named.
func TestJobAndHookValidation(t *testing.T) {
	cases := []struct{ name, toml, want string }{
		{"five-field schedule", "[[service]]\nname = \"r\"\nimage = \"a:1\"\nschedule = \"*/5 * * * *\"\n", `schedule "*/5 * * * *": expected exactly 6 fields`},
		{"bad schedule", "[[service]]\nname = \"r\"\nimage = \"a:1\"\nschedule = \"0 0 25 * * *\"\n", `schedule "0 0 25 * * *"`},
		{"replicas on a job", jobService + "replicas = 2\n", "replicas: a service with schedule is a job"},
		{"port on a job", jobService + "port = 80\n", "port: a service with schedule is a job"},
		{"domain on a job", jobService + "domain = \"a.example.com\"\n", "domain: a service with schedule is a job"},
		{"domains on a job", jobService + "domains = [\"a.example.com\"]\n", "domains: a service with schedule is a job"},
		{"health on a job", jobService + "health = \"/h\"\n", "health: a service with schedule is a job"},
		{"readiness on a job", jobService + "[service.readiness]\ntype = \"exec\"\ncommand = [\"true\"]\n", "readiness: a service with schedule is a job"},
		{"liveness on a job", jobService + "[service.liveness]\ntype = \"exec\"\ncommand = [\"true\"]\n", "liveness: a service with schedule is a job"},
		{"deploy on a job", jobService + "[service.deploy]\ntimeout_secs = 5\n", "deploy: a service with schedule is a job"},
		{"hooks on a job", jobService + "[service.hooks.pre_deploy]\ncommand = [\"x\"]\n", "hooks: a service with schedule is a job"},
		{"hook without command", okService + "[service.hooks.pre_deploy]\ntimeout_secs = 5\n", "hooks.pre_deploy.command is required"},
		{"hook timeout", okService + "[service.hooks.post_deploy]\ncommand = [\"x\"]\ntimeout_secs = 0\n", "hooks.post_deploy.timeout_secs = 0: must be at least 1"},
		{"empty hooks", okService + "[service.hooks]\n", "names no hook"},
		{"unknown hook", okService + "[service.hooks.pre_start]\ncommand = [\"x\"]\n", `unknown key "hooks.pre_start"`},
		{"bad secret in a hook", okService + "[service.hooks.pre_deploy]\ncommand = [\"${secrets.}\"]\n", "hooks.pre_deploy.command"},
		{"stop_grace_secs negative", okService + "stop_grace_secs = -1\n", "stop_grace_secs = -1: must be 0..3600"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := ParseServiceFile("services/p/service.toml", "p", []byte(tc.toml))
			if tc.name == "unknown hook" { // the key and its subkey, and no hook is left
				if !strings.Contains(errs.Error(), tc.want) {
					t.Fatalf("errors %v do not contain %q", errs, tc.want)
				}
				return
			}
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1: %v", len(errs), errs)
			}
			if msg := errs[0].Error(); !strings.Contains(msg, tc.want) {
				t.Fatalf("error %q does not contain %q", msg, tc.want)
			}
		})
	}
}

// TestJobAndHookDefaults: a job keeps no replicas; hooks time out after
// 300 s; every service stops with a 10 s grace unless it says otherwise.
func TestJobAndHookDefaults(t *testing.T) {
	src := jobService + "command = [\"report\", \"${secrets.MAIL}\"]\n" + okService +
		"stop_grace_secs = 30\n[service.hooks.pre_deploy]\ncommand = [\"migrate\", \"--password=${secrets.DB}\"]\n"
	svcs, errs := ParseServiceFile("services/p/service.toml", "p", []byte(src))
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	job, web := svcs[0], svcs[1]
	if !job.IsJob() || job.Replicas != 0 || job.StopGrace != 10*time.Second || job.Hooks != nil {
		t.Errorf("job = %+v", job)
	}
	if web.IsJob() || web.StopGrace != 30*time.Second || web.Hooks == nil || web.Hooks.PreDeploy.Timeout != 300*time.Second || web.Hooks.PostDeploy != nil {
		t.Errorf("web = %+v (hooks %+v)", web, web.Hooks)
	}
	if strings.Join(web.SecretRefs, ",") != "DB" {
		t.Errorf("web's secret refs = %v, want the hook's", web.SecretRefs)
	}
}
