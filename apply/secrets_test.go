package apply_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/apply"
	"github.com/orca-sync/orca-sync/apply/applytest"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// fakeSecrets resolves from a map; its hash is a stand-in for the keyed one.
type fakeSecrets map[string]string

func (f fakeSecrets) Value(_, name string) (string, error) {
	v, ok := f[name]
	if !ok {
		return "", fmt.Errorf("no secret %s", name)
	}
	return v, nil
}
func (f fakeSecrets) Hash(_, name string) string { return "h(" + f[name] + ")" }

// TestRotationReplacesOnlyUsers: a new value of one secret updates exactly the
// services that use it.
func TestRotationReplacesOnlyUsers(t *testing.T) {
	f := applytest.NewRuntime()
	api := testService("api", "app:v1", 1, config.StrategyRolling)
	api.Env["DB_PASSWORD"], api.SecretRefs = "${secrets.DB_PASSWORD}", []string{"DB_PASSWORD"}
	mail := testService("mail", "app:v1", 1, config.StrategyRolling)
	mail.Command, mail.SecretRefs = []string{"--smtp=${secrets.SMTP}"}, []string{"SMTP"}
	web := testService("web", "app:v1", 1, config.StrategyRolling)
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{api, mail, web}}}}
	ctx := context.Background()
	plan := func(s fakeSecrets) diff.Plan {
		d.Secrets = s
		live, _ := f.List(ctx)
		return diff.Compute(apply.Desire(ctx, f, d, nil), live, diff.Options{})
	}
	p := plan(fakeSecrets{"DB_PASSWORD": "one", "SMTP": "x"})
	for _, r := range apply.New(f, apply.Options{}).Apply(ctx, d, p, "rev") {
		if r.Failed() {
			t.Fatalf("%s: %s", r.Service, r.Error)
		}
	}
	p = plan(fakeSecrets{"DB_PASSWORD": "two", "SMTP": "x"})
	// Every service must be in the plan, or the loop below checks nothing.
	if len(p.Changes) != 3 {
		t.Fatalf("plan has %d changes, want one per service: %+v", len(p.Changes), p.Changes)
	}
	for _, c := range p.Changes {
		want := diff.ActionNone
		if c.Service == "api" {
			want = diff.ActionUpdate
		}
		if c.Action != want {
			t.Errorf("%s: %s, want %s", c.Service, c.Action, want)
		}
		if c.Service == "api" && (len(c.Fields) != 1 || c.Fields[0].Field != "secrets.DB_PASSWORD" || !c.Fields[0].Secret) {
			t.Errorf("api fields = %+v, want only secrets.DB_PASSWORD as a secret change", c.Fields)
		}
	}
}

// TestUndoRestoresOldSecretValue: a rollout that rotates a secret and fails
// puts the old container back with the value its hash label names, not the
// new one; a process that never saw the old value restores with the new one
// and says so.
func TestUndoRestoresOldSecretValue(t *testing.T) {
	ctx := context.Background()
	db := func(image string) *config.Service {
		s := testService("db", image, 1, config.StrategyRecreate)
		s.Env["DB_PASSWORD"], s.SecretRefs = "${secrets.DB_PASSWORD}", []string{"DB_PASSWORD"}
		return s
	}
	sync := func(f *applytest.Runtime, a *apply.Applier, s *config.Service, secrets fakeSecrets) apply.Result {
		d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}}, Secrets: secrets}
		live, _ := f.List(ctx)
		return onlyResult(t, a.Apply(ctx, d, diff.Compute(apply.Desire(ctx, f, d, nil), live, diff.Options{}), "rev"))
	}
	only := func(m map[string]string) string {
		if len(m) != 1 {
			t.Fatalf("containers: %v", m)
		}
		for _, v := range m {
			return v
		}
		return ""
	}

	f := applytest.NewRuntime()
	a := apply.New(f, apply.Options{})
	if r := sync(f, a, db("app:v1"), fakeSecrets{"DB_PASSWORD": "old"}); r.Failed() {
		t.Fatal(r.Error)
	}
	r := sync(f, a, db("app:broken"), fakeSecrets{"DB_PASSWORD": "new"})
	if !r.Failed() || !strings.Contains(r.Error, "undone") || strings.Contains(r.Error, "restored with the current value") {
		t.Fatalf("result: %+v", r)
	}
	if got := only(f.Env("db", "DB_PASSWORD")); got != "old" {
		t.Errorf("restored container's DB_PASSWORD = %q, want the old value its label names", got)
	}

	// A new process (a restart between the two commits) never saw "old".
	f = applytest.NewRuntime()
	if r := sync(f, apply.New(f, apply.Options{}), db("app:v1"), fakeSecrets{"DB_PASSWORD": "old"}); r.Failed() {
		t.Fatal(r.Error)
	}
	r = sync(f, apply.New(f, apply.Options{}), db("app:broken"), fakeSecrets{"DB_PASSWORD": "new"})
	if !r.Failed() || !strings.Contains(r.Error, "restored with the current value of secrets.DB_PASSWORD") {
		t.Fatalf("error %q should say the old value was unknown", r.Error)
	}
	if got := only(f.Env("db", "DB_PASSWORD")); got != "new" {
		t.Errorf("restored container's DB_PASSWORD = %q", got)
	}
}

// TestNotReadyLogsRedactSecrets: a container that prints a secret as it
// dies has it replaced by its reference in the error, which goes to the
// history, status and notifications.
func TestNotReadyLogsRedactSecrets(t *testing.T) {
	f := applytest.NewRuntime()
	s := testService("api", "app:broken", 1, config.StrategyRolling)
	s.Env["CRASH_LOG"] = "dial postgres://app:${secrets.DB_PASSWORD}@db/app: ${secrets.PIN} refused"
	s.SecretRefs = []string{"DB_PASSWORD", "PIN"}
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}},
		Secrets: fakeSecrets{"DB_PASSWORD": "hunter2-s3cret", "PIN": "42"}}
	ctx := context.Background()
	r := onlyResult(t, apply.New(f, apply.Options{}).Apply(ctx, d, diff.Compute(apply.Desire(ctx, f, d, nil), nil, diff.Options{}), "rev"))
	if !r.Failed() || !strings.Contains(r.Error, "boom | dial postgres://app:${secrets.DB_PASSWORD}@db/app: 42 refused") {
		t.Errorf("error %q: want the log line with the password replaced by its reference (a 2-byte value is left)", r.Error)
	}
	if strings.Contains(r.Error, "hunter2") {
		t.Errorf("the error leaks the secret: %q", r.Error)
	}
}

// TestNotReadyLogsRedactValuesWithWhiteSpace: a value with a tab, two spaces
// or a newline (a PEM key) that the dying container prints is replaced too,
// although the error puts the log lines on one line: no word of it is left.
func TestNotReadyLogsRedactValuesWithWhiteSpace(t *testing.T) {
	const pem = "-----BEGIN PRIVATE KEY-----\n" +
		"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n" +
		"MzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZHtCSuYEvu\n" +
		"-----END PRIVATE KEY-----\n"
	for name, value := range map[string]string{
		"tab":        "correct\thorse-battery",
		"two spaces": "correct  horse-battery",
		"newline":    "correct\nhorse-battery",
		"PEM":        pem,
	} {
		t.Run(name, func(t *testing.T) {
			f := applytest.NewRuntime()
			s := testService("api", "app:broken", 1, config.StrategyRolling)
			s.Env["CRASH_LOG"] = "cannot load key ${secrets.TLS_KEY}: invalid"
			s.SecretRefs = []string{"TLS_KEY"}
			d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}},
				Secrets: fakeSecrets{"TLS_KEY": value}}
			ctx := context.Background()
			r := onlyResult(t, apply.New(f, apply.Options{}).Apply(ctx, d, diff.Compute(apply.Desire(ctx, f, d, nil), nil, diff.Options{}), "rev"))
			if !r.Failed() || !strings.Contains(r.Error, "boom | cannot load key ${secrets.TLS_KEY}") {
				t.Fatalf("error %q: want the log line with the key replaced by its reference", r.Error)
			}
			for _, word := range strings.Fields(value) {
				if strings.Contains(r.Error, word) {
					t.Errorf("the error holds %q of the secret: %q", word, r.Error)
				}
			}
		})
	}
}

// TestStartErrorRedactsSecrets: Docker's error for a command it cannot run
// names the command; a secret in it is replaced by its reference.
func TestStartErrorRedactsSecrets(t *testing.T) {
	f := applytest.NewRuntime()
	s := testService("mail", "app:noexec", 1, config.StrategyRolling)
	s.Command, s.SecretRefs = []string{"--smtp=${secrets.SMTP}"}, []string{"SMTP"}
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}},
		Secrets: fakeSecrets{"SMTP": "smtp://mailer:s3cret-pw@mx"}}
	ctx := context.Background()
	r := onlyResult(t, apply.New(f, apply.Options{}).Apply(ctx, d, diff.Compute(apply.Desire(ctx, f, d, nil), nil, diff.Options{}), "rev"))
	if !r.Failed() || !strings.Contains(r.Error, `exec: "--smtp=${secrets.SMTP}": executable file not found`) {
		t.Errorf("error %q: want Docker's message with the secret replaced by its reference", r.Error)
	}
	if strings.Contains(r.Error, "s3cret-pw") {
		t.Errorf("the error leaks the secret: %q", r.Error)
	}
}

// TestRedactorOfAContainerBeforeARotation: the logs of a container created
// before a secret was rotated are redacted of the value it was given, which
// the checkout no longer has.
func TestRedactorOfAContainerBeforeARotation(t *testing.T) {
	ctx := context.Background()
	f := applytest.NewRuntime()
	a := apply.New(f, apply.Options{})
	s := testService("db", "app:v1", 1, config.StrategyRecreate)
	s.Env["DB_PASSWORD"], s.SecretRefs = "${secrets.DB_PASSWORD}", []string{"DB_PASSWORD"}
	d := &config.Desired{Root: t.TempDir(), Projects: []*config.Project{{Name: "p", Services: []*config.Service{s}}},
		Secrets: fakeSecrets{"DB_PASSWORD": "old-password"}}
	if r := onlyResult(t, a.Apply(ctx, d, diff.Compute(apply.Desire(ctx, f, d, nil), nil, diff.Options{}), "rev")); r.Failed() {
		t.Fatal(r.Error)
	}
	live, _ := f.List(ctx)
	if len(live) != 1 || live[0].Spec == nil {
		t.Fatalf("live containers: %+v", live)
	}
	d.Secrets = fakeSecrets{"DB_PASSWORD": "new-password"} // rotated, not yet applied
	got := a.Redactor(d, "p", *live[0].Spec).String("auth failed for old-password")
	if got != "auth failed for ${secrets.DB_PASSWORD}" {
		t.Errorf("old container's log line = %q", got)
	}
	if got := a.Redactor(nil, "p", *live[0].Spec).String("old-password"); got != "${secrets.DB_PASSWORD}" {
		t.Errorf("without a checkout, the remembered value is still redacted: %q", got)
	}
}
