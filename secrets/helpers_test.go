package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	sopsage "github.com/getsops/sops/v3/age"
	sopsconfig "github.com/getsops/sops/v3/config"
)

// newKey makes an age identity and the Identities that hold it.
func newKey(t testing.TB) (*age.X25519Identity, *Identities) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	ids, err := ParseIdentities(id.String(), "test key")
	if err != nil {
		t.Fatal(err)
	}
	return id, ids
}

// ruleFor is a creation rule for the recipients of ids.
func ruleFor(t testing.TB, recipients ...string) *sopsconfig.Config {
	t.Helper()
	var group sops.KeyGroup
	for _, r := range recipients {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			t.Fatal(err)
		}
		group = append(group, mk)
	}
	return &sopsconfig.Config{KeyGroups: []sops.KeyGroup{group}}
}

// encryptFile writes a new SOPS file at root/rel holding values, for
// recipient.
func encryptFile(t testing.TB, root, rel, recipient string, values map[string]string) {
	t.Helper()
	f, err := Create(rel, ruleFor(t, recipient))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range values {
		f.Set(k, v)
	}
	out, err := f.Encrypt()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, rel, string(out))
}

func writeFile(t testing.TB, root, rel, content string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func replaceIn(t testing.TB, root, rel, old, new string) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(rel))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), old, new, 1)
	if s == string(b) {
		t.Fatalf("%s: no %q to replace", rel, old)
	}
	writeFile(t, root, rel, s)
}

// writeMapSecret writes secrets.sops.yaml whose API_TOKEN is a map.
func writeMapSecret(t testing.TB, root, recipient string) {
	t.Helper()
	f, err := Create("secrets.sops.yaml", ruleFor(t, recipient))
	if err != nil {
		t.Fatal(err)
	}
	f.Set("WEBHOOK_SECRET", "w")
	f.Set("DB_PASSWORD", "d")
	f.tree.Branches[0] = append(f.tree.Branches[0], sops.TreeItem{Key: "API_TOKEN", Value: sops.TreeBranch{{Key: "a", Value: "b"}}})
	out, err := f.Encrypt()
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, root, "secrets.sops.yaml", string(out))
}
