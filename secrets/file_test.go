package secrets

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/getsops/sops/v3/decrypt"
)

// TestRoundTripFormats writes each format and reads it back, and checks sops's
// own decrypt.DataWithFormat reads what we wrote.
func TestRoundTripFormats(t *testing.T) {
	id, ids := newKey(t)
	for _, name := range []string{"secrets.sops.yaml", "secrets.sops.json", "secrets.sops.env"} {
		t.Run(name, func(t *testing.T) {
			f, err := Create(name, ruleFor(t, id.Recipient().String()))
			if err != nil {
				t.Fatal(err)
			}
			f.Set("DB_PASSWORD", "s3cr3t value=with #chars")
			f.Set("API_KEY", "k-123")
			out, err := f.Encrypt()
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(out, []byte("s3cr3t")) || bytes.Contains(out, []byte("k-123")) {
				t.Fatalf("plaintext in the encrypted file:\n%s", out)
			}
			g, err := Decrypt(name, out, ids)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(g.Names(), ","); got != "DB_PASSWORD,API_KEY" {
				t.Errorf("names = %s", got)
			}
			if v, ok, err := g.Get("DB_PASSWORD"); !ok || err != nil || v != "s3cr3t value=with #chars" {
				t.Errorf("DB_PASSWORD = %q %v %v", v, ok, err)
			}

			t.Setenv(EnvKey, id.String())
			t.Setenv(EnvKeyFile, "")
			format, _ := FormatFor(name)
			plain, err := decrypt.DataWithFormat(out, format)
			if err != nil {
				t.Fatalf("sops cannot decrypt what we wrote: %v", err)
			}
			if !bytes.Contains(plain, []byte("k-123")) {
				t.Errorf("sops decrypted to %s", plain)
			}
		})
	}
}

// TestEditKeepsDataKey: set re-encrypts with the file's own recipients and data
// key, so the hash of an untouched value stays and only the edited one moves.
func TestEditKeepsDataKey(t *testing.T) {
	id, ids := newKey(t)
	f, _ := Create("secrets.sops.yaml", ruleFor(t, id.Recipient().String()))
	f.Set("A", "one")
	f.Set("B", "two")
	v1, _ := f.Encrypt()
	f1, err := Decrypt("secrets.sops.yaml", v1, ids)
	if err != nil {
		t.Fatal(err)
	}
	hashA, hashB := f1.Hash("A", "one"), f1.Hash("B", "two")
	f1.Set("B", "three")
	v2, _ := f1.Encrypt()
	f2, err := Decrypt("secrets.sops.yaml", v2, ids)
	if err != nil {
		t.Fatal(err)
	}
	if f2.Hash("A", "one") != hashA {
		t.Error("the hash of an unchanged secret moved on an edit of another")
	}
	if f2.Hash("B", "three") == hashB {
		t.Error("the hash of a changed secret did not move")
	}
	if !f2.Remove("A") || f2.Remove("A") {
		t.Error("remove")
	}
	if strings.Join(f2.Names(), ",") != "B" {
		t.Errorf("names after remove = %v", f2.Names())
	}
	// A new file has a new data key: the same value hashes differently, so
	// a hash from one repository says nothing about a value in another.
	g, _ := Create("secrets.sops.yaml", ruleFor(t, id.Recipient().String()))
	if g.Hash("A", "one") == hashA {
		t.Error("two data keys gave one hash")
	}
}

func TestDecryptFailures(t *testing.T) {
	id, ids := newKey(t)
	_, other := newKey(t)
	f, _ := Create("secrets.sops.yaml", ruleFor(t, id.Recipient().String()))
	f.Set("DB_PASSWORD", "hunter2")
	f.Set("NOTE_unencrypted", "plain note")
	good, _ := f.Encrypt()

	tampered := bytes.Replace(good, []byte("plain note"), []byte("plain nope"), 1)
	if bytes.Equal(tampered, good) {
		t.Fatal("fixture: nothing to tamper with")
	}
	cases := []struct {
		name string
		data []byte
		ids  *Identities
		want string
	}{
		{"no identity", good, &Identities{}, "cannot be decrypted: no age identity is configured on this host: pass --age-key-file, or set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY"},
		{"wrong key", good, other, "cannot be decrypted: it is encrypted for " + id.Recipient().String() + ", and this host's age identity (test key, public key "},
		{"tampered", tampered, ids, "cannot be decrypted: it failed its integrity check (MAC mismatch)"},
		{"not sops", []byte("DB_PASSWORD: hunter2\n"), ids, "not a readable SOPS file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decrypt("services/shop/secrets.sops.yaml", c.data, c.ids)
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != "services/shop/secrets.sops.yaml" {
				t.Fatalf("err = %v, want a FileError naming the file", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v\nwant it to contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error leaks the value: %v", err)
			}
		})
	}
}

func TestLoadIdentities(t *testing.T) {
	id, _ := newKey(t)
	id2, _ := newKey(t)
	dir := t.TempDir()
	writeFile(t, dir, "keys.txt", "# created: now\n"+id.String()+"\n")
	writeFile(t, dir, "bad.txt", "AGE-SECRET-KEY-1NOTAKEY\n")
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	t.Setenv("XDG_CONFIG_HOME", dir) // no sops default key file here

	ids, err := LoadIdentities(dir+"/keys.txt", env(map[string]string{EnvKey: id2.String()}))
	if err != nil || ids.Len() != 1 || ids.Recipients()[0] != id.Recipient().String() {
		t.Errorf("flag: %v %v, want only the flag's key", ids.Recipients(), err)
	}
	ids, err = LoadIdentities("", env(map[string]string{EnvKeyFile: dir + "/keys.txt", EnvKey: id2.String()}))
	if err != nil || ids.Len() != 2 {
		t.Errorf("env: %v %v, want both keys", ids.Recipients(), err)
	}
	ids, err = LoadIdentities("", env(nil))
	if err != nil || ids.Len() != 0 {
		t.Errorf("none: %v %v", ids.Recipients(), err)
	}
	_, err = LoadIdentities(dir+"/bad.txt", env(nil))
	if err == nil || strings.Contains(err.Error(), "NOTAKEY") {
		t.Errorf("bad key file: %v (must fail without quoting the key)", err)
	}
	if _, err = LoadIdentities(dir+"/missing.txt", env(nil)); err == nil {
		t.Error("a missing --age-key-file must be an error")
	}
}
