package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUndecryptableSecretsChangeNothing: a commit whose secrets file this host
// cannot decrypt is invalid as a whole, and status names the file.
func TestUndecryptableSecretsChangeNothing(t *testing.T) {
	l, src, rt, _ := newTestLoop(t) // no identity configured
	src.write(t, "c1", web("app:v1"))
	if rec := l.SyncOnce(context.Background(), "test"); rec.Result != ResultSucceeded {
		t.Fatalf("first sync: %+v", rec)
	}
	before := rt.IDs("web")
	enc := "DB_PASSWORD: ENC[AES256_GCM,data:abc,iv:x,tag:y,type:str]\nsops:\n    age:\n        - recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\n          enc: x\n    lastmodified: \"2026-01-01T00:00:00Z\"\n    mac: ENC[AES256_GCM,data:m,iv:i,tag:t,type:str]\n    version: 3.13.3\n"
	if err := os.WriteFile(filepath.Join(src.dir, "services", "p", "secrets.sops.yaml"), []byte(enc), 0o644); err != nil {
		t.Fatal(err)
	}
	src.write(t, "c2", strings.Replace(web("app:v2"), "\n[service.deploy]", "\nenv = {DB_PASSWORD = \"${secrets.DB_PASSWORD}\"}\n[service.deploy]", 1))
	rec := l.SyncOnce(context.Background(), "test")
	if rec.Result != ResultInvalid || !strings.Contains(rec.Error, "services/p/secrets.sops.yaml: cannot be decrypted: no age identity") {
		t.Fatalf("sync: %+v", rec)
	}
	if after := rt.IDs("web"); len(after) != 1 || after[firstKey(before)] != "app:v1" {
		t.Fatalf("containers changed: %v -> %v", before, after)
	}
	st, _ := l.Status(context.Background())
	if len(st.Errors) != 1 || st.Errors[0].File != "services/p/secrets.sops.yaml" || st.Commit != "c1" {
		t.Fatalf("status = %+v", st)
	}
}
