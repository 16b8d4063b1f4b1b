package secrets

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

const shopService = `
[[service]]
name = "api"
image = "app:v1"
command = ["serve", "--token=${secrets.API_TOKEN}"]
[service.env]
DB_PASSWORD = "${secrets.DB_PASSWORD}"
LITERAL = "$${secrets.DB_PASSWORD} is not expanded"

[[service]]
name = "worker"
image = "app:v1"
[service.env]
DB_PASSWORD = "${secrets.DB_PASSWORD}"
`

// checkout writes a repository with a cluster and a project secrets file.
func checkout(t *testing.T, recipient string) string {
	t.Helper()
	root := t.TempDir()
	writeFile(t, root, "cluster.toml", "[webhook]\nsecret = \"${secrets.WEBHOOK_SECRET}\"\ngitlab_token = \"pre-$${x}-${secrets.DB_PASSWORD}\"\n")
	encryptFile(t, root, "secrets.sops.yaml", recipient, map[string]string{
		"WEBHOOK_SECRET": "hook-value", "DB_PASSWORD": "cluster-db", "API_TOKEN": "cluster-token",
	})
	writeFile(t, root, "services/shop/service.toml", shopService)
	encryptFile(t, root, "services/shop/secrets.sops.env", recipient, map[string]string{"DB_PASSWORD": "shop-db"})
	return root
}

func load(t *testing.T, root string) *config.Desired {
	t.Helper()
	d, err := config.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestResolveOrder(t *testing.T) {
	id, ids := newKey(t)
	d := load(t, checkout(t, id.Recipient().String()))
	if err := NewKeyring(ids).Resolve(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ project, name, want string }{
		{"shop", "DB_PASSWORD", "shop-db"},     // the project's file first
		{"shop", "API_TOKEN", "cluster-token"}, // then the cluster's
		{"", "DB_PASSWORD", "cluster-db"},      // cluster.toml sees only the cluster's
	} {
		if v, err := d.Secrets.Value(c.project, c.name); err != nil || v != c.want {
			t.Errorf("%s %s = %q %v, want %q", c.project, c.name, v, err, c.want)
		}
	}
	if d.Cluster.Webhook.Secret != "hook-value" {
		t.Errorf("webhook secret = %q", d.Cluster.Webhook.Secret)
	}
	if d.Cluster.Webhook.GitLabToken != "pre-${x}-cluster-db" {
		t.Errorf("gitlab token = %q: $${ must stay a literal ${", d.Cluster.Webhook.GitLabToken)
	}
	// The env template keeps its escape; expanding it (as apply does) gives a literal.
	api := d.Project("shop").Service("api")
	got, err := config.Expand(api.Env["LITERAL"], func(n string) (string, error) { return d.Secrets.Value("shop", n) })
	if err != nil || got != "${secrets.DB_PASSWORD} is not expanded" {
		t.Errorf("literal = %q %v", got, err)
	}
	if strings.Join(api.SecretRefs, ",") != "API_TOKEN,DB_PASSWORD" {
		t.Errorf("refs = %v", api.SecretRefs)
	}
	// Two services that use the same secret of one scope share its hash; the
	// project's value and the cluster's hash differently.
	if d.Secrets.Hash("shop", "DB_PASSWORD") == d.Secrets.Hash("", "DB_PASSWORD") {
		t.Error("project and cluster DB_PASSWORD hash alike")
	}
	if h := d.Secrets.Hash("shop", "DB_PASSWORD"); len(h) != 32 || strings.Contains(h, "shop-db") {
		t.Errorf("hash = %q", h)
	}
}

func TestResolveStableAcrossLoads(t *testing.T) {
	id, ids := newKey(t)
	root := checkout(t, id.Recipient().String())
	d1, d2 := load(t, root), load(t, root)
	k := NewKeyring(ids)
	if err := k.Resolve(context.Background(), d1); err != nil {
		t.Fatal(err)
	}
	if err := k.Resolve(context.Background(), d2); err != nil {
		t.Fatal(err)
	}
	if d1.Secrets.Hash("shop", "DB_PASSWORD") != d2.Secrets.Hash("shop", "DB_PASSWORD") {
		t.Error("the hash of one file differs between two loads: every restart would recreate")
	}
}

func TestResolveFailures(t *testing.T) {
	id, ids := newKey(t)
	_, other := newKey(t)
	rcp := id.Recipient().String()
	cases := []struct {
		name  string
		edit  func(root string)
		ids   *Identities
		wants []string // each must be one of the error lines
	}{
		{"missing name in a service", func(root string) {
			writeFile(t, root, "services/shop/service.toml", shopService+"\n[[service]]\nname = \"mail\"\nimage = \"m:1\"\nenv = {SMTP = \"${secrets.SMTP_PASSWORD}\"}\n")
		}, ids, []string{"services/shop/service.toml:16: mail: ${secrets.SMTP_PASSWORD}: no secret SMTP_PASSWORD in secrets.sops.yaml or services/shop/secrets.sops.env"}},
		{"missing name in cluster.toml", func(root string) {
			writeFile(t, root, "cluster.toml", "[github]\ntoken = \"${secrets.GH_TOKEN}\"\n")
		}, ids, []string{"cluster.toml: ${secrets.GH_TOKEN}: no secret GH_TOKEN in secrets.sops.yaml"}},
		{"no secrets file", func(root string) {
			writeFile(t, root, "services/other/service.toml", "[[service]]\nname = \"x\"\nimage = \"x:1\"\nenv = {A = \"${secrets.NOPE}\"}\n")
		}, ids, []string{"services/other/service.toml:1: x: ${secrets.NOPE}: no secret NOPE in secrets.sops.yaml"}},
		{"no identity", nil, &Identities{}, []string{
			"secrets.sops.yaml: cannot be decrypted: no age identity is configured on this host: pass --age-key-file, or set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY",
			"services/shop/secrets.sops.env: cannot be decrypted: no age identity is configured on this host: pass --age-key-file, or set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY"}},
		{"wrong key for one file", func(root string) {
			_, k := newKey(t)
			encryptFile(t, root, "services/shop/secrets.sops.env", k.Recipients()[0], map[string]string{"DB_PASSWORD": "x"})
		}, ids, []string{"services/shop/secrets.sops.env: cannot be decrypted: it is encrypted for "}},
		{"wrong key", nil, other, []string{"secrets.sops.yaml: cannot be decrypted: it is encrypted for " + rcp}},
		{"tampered", func(root string) {
			encryptFile(t, root, "secrets.sops.yaml", rcp, map[string]string{"WEBHOOK_SECRET": "w", "DB_PASSWORD": "d", "API_TOKEN": "a", "N_unencrypted": "note"})
			replaceIn(t, root, "secrets.sops.yaml", "N_unencrypted: note", "N_unencrypted: nope")
		}, ids, []string{"secrets.sops.yaml: cannot be decrypted: it failed its integrity check (MAC mismatch)"}},
		{"plaintext", func(root string) {
			writeFile(t, root, "services/shop/secrets.yaml", "DB_PASSWORD: hunter2\n")
		}, ids, []string{"services/shop/secrets.yaml: is not SOPS-encrypted"}},
		{"name twice in one directory", func(root string) {
			encryptFile(t, root, "services/shop/secrets.sops.json", rcp, map[string]string{"DB_PASSWORD": "again"})
		}, ids, []string{"services/shop/secrets.sops.json: secret DB_PASSWORD is also in services/shop/secrets.sops.env"}},
		{"token from a secret shorter than the minimum", func(root string) {
			// API_TOKEN is "cluster-token": 13 characters, refused when written in cluster.toml.
			writeFile(t, root, "cluster.toml", "[webhook]\nsecret = \"${secrets.WEBHOOK_SECRET}\"\n[[token]]\nname = \"ci\"\nvalue = \"${secrets.API_TOKEN}\"\nrole = \"viewer\"\n")
		}, ids, []string{`cluster.toml:5: token "ci": the value its secret gives: value must be at least 16 characters`}},
		{"a map is not a value", func(root string) {
			writeMapSecret(t, root, rcp)
		}, ids, []string{"services/shop/service.toml:2: api: ${secrets.API_TOKEN}: API_TOKEN in secrets.sops.yaml is a map, not a single value"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := checkout(t, rcp)
			if c.edit != nil {
				c.edit(root)
			}
			d, err := config.Load(root)
			if err == nil {
				err = NewKeyring(c.ids).Resolve(context.Background(), d)
				if err == nil {
					t.Fatal("resolved; want an error")
				}
				if d.Secrets != nil || d.Cluster.Webhook.Secret != "${secrets.WEBHOOK_SECRET}" && d.Cluster.Webhook.Secret != "" {
					t.Error("a failed resolve left secrets on the checkout")
				}
			}
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("err = %v, want config.Errors", err)
			}
			for _, want := range c.wants {
				found := false
				for _, e := range errs {
					found = found || strings.HasPrefix(e.Error(), want)
				}
				if !found {
					t.Errorf("errors:\n%v\nwant a line starting %q", errs, want)
				}
			}
			if strings.Contains(errs.Error(), "hunter2") || strings.Contains(errs.Error(), "shop-db") || strings.Contains(errs.Error(), "cluster-token") {
				t.Errorf("an error leaks a value: %v", errs)
			}
		})
	}
}

// TestCheckNamesWithoutKey: a machine without the key still finds a
// reference to a name no file has, and accepts the names that exist.
func TestCheckNamesWithoutKey(t *testing.T) {
	id, _ := newKey(t)
	root := checkout(t, id.Recipient().String())
	if err := CheckNames(context.Background(), load(t, root)); err != nil {
		t.Fatalf("valid checkout: %v", err)
	}
	writeFile(t, root, "services/shop/service.toml", shopService+"\n[[service]]\nname = \"mail\"\nimage = \"m:1\"\nenv = {SMTP = \"${secrets.SMTP_PASSWORD}\"}\n")
	d := load(t, root)
	err := CheckNames(context.Background(), d)
	want := "services/shop/service.toml:16: mail: ${secrets.SMTP_PASSWORD}: no secret SMTP_PASSWORD in secrets.sops.yaml or services/shop/secrets.sops.env"
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	if d.Secrets != nil {
		t.Error("CheckNames set secrets")
	}
}
