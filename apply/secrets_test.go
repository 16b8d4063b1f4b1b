package apply_test

import (
	"context"
	"fmt"
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
		return diff.Compute(apply.Desire(ctx, f, d, false), live, diff.Options{})
	}
	p := plan(fakeSecrets{"DB_PASSWORD": "one", "SMTP": "x"})
	for _, r := range apply.New(f, apply.Options{}).Apply(ctx, d, p, "rev") {
		if r.Failed() {
			t.Fatalf("%s: %s", r.Service, r.Error)
		}
	}
	p = plan(fakeSecrets{"DB_PASSWORD": "two", "SMTP": "x"})
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
