package secrets

import (
	"context"
	"fmt"
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

// BenchmarkResolve is what secrets add to every sync: a checkout of 10
// projects, each with its own file of 5 secrets, plus a cluster file, read,
// decrypted, checked and hashed.
func BenchmarkResolve(b *testing.B) {
	t := b
	id, ids := newKey(t)
	root := b.TempDir()
	encryptFile(t, root, "secrets.sops.yaml", id.Recipient().String(), map[string]string{"SHARED": "s"})
	for p := range 10 {
		vals := map[string]string{}
		env := ""
		for i := range 5 {
			vals[fmt.Sprintf("S%d", i)] = fmt.Sprintf("value-%d-%d", p, i)
			env += fmt.Sprintf("S%d = \"${secrets.S%d}\", ", i, i)
		}
		dir := fmt.Sprintf("services/p%d", p)
		encryptFile(t, root, dir+"/secrets.sops.yaml", id.Recipient().String(), vals)
		writeFile(t, root, dir+"/service.toml", fmt.Sprintf("[[service]]\nname = \"a\"\nimage = \"x:1\"\nenv = {%sX = \"${secrets.SHARED}\"}\n", env))
	}
	k := NewKeyring(ids)
	b.Run("load only", func(b *testing.B) {
		for b.Loop() {
			if _, err := config.Load(root); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("load and resolve", func(b *testing.B) {
		for b.Loop() {
			d, err := config.Load(root)
			if err != nil {
				b.Fatal(err)
			}
			if err := k.Resolve(context.Background(), d); err != nil {
				b.Fatal(err)
			}
		}
	})
}
