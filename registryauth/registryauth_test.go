package registryauth_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/registryauth"
)

func writeConfig(t *testing.T, json string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(json), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func basic(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

func TestHostNormalisesDockerHub(t *testing.T) {
	for ref, want := range map[string]string{
		"nginx":                            "docker.io",
		"nginx:1.27":                       "docker.io",
		"library/nginx":                    "docker.io",
		"docker.io/library/nginx":          "docker.io",
		"index.docker.io/acme/app:v1":      "docker.io",
		"registry.example.com:5000/app:v1": "registry.example.com:5000",
		"127.0.0.1:5000/app@sha256:" + strings.Repeat("a", 64): "127.0.0.1:5000",
		"ghcr.io/acme/app": "ghcr.io",
	} {
		if got, err := registryauth.Host(ref); err != nil || got != want {
			t.Errorf("Host(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := registryauth.Host("Bad Ref"); err == nil {
		t.Error("Host of an invalid reference: no error")
	}
}

func TestClusterEntryComesFirst(t *testing.T) {
	dir := writeConfig(t, fmt.Sprintf(`{"auths":{"registry.example.com":{"auth":%q}}}`, basic("file-user", "file-pass")))
	regs := []config.Registry{{Host: "registry.example.com", Username: "git-user", Password: "git-pass"}}
	a, err := registryauth.New(dir).For("registry.example.com/app:v1", regs)
	if err != nil || a.Username != "git-user" || a.Password != "git-pass" || a.Source != registryauth.SourceCluster {
		t.Fatalf("For = %v, %v; want the [[registry]] entry", a, err)
	}
	// An entry for Docker Hub written as index.docker.io serves every Hub name.
	regs = []config.Registry{{Host: "index.docker.io", Username: "hub", Password: "p"}}
	for _, ref := range []string{"nginx", "docker.io/library/nginx:1", "index.docker.io/acme/x"} {
		if a, err := registryauth.New(dir).For(ref, regs); err != nil || a.Username != "hub" || a.ServerAddress != "https://index.docker.io/v1/" {
			t.Errorf("For(%q) = %v (server %q), %v; want the Hub entry", ref, a, a.ServerAddress, err)
		}
	}
}

func TestDockerConfigAuths(t *testing.T) {
	dir := writeConfig(t, fmt.Sprintf(`{"auths":{
		"127.0.0.1:5000":{"auth":%q},
		"https://index.docker.io/v1/":{"auth":%q}}}`, basic("local", "lpass"), basic("hubuser", "hpass")))
	r := registryauth.New(dir)
	a, err := r.For("127.0.0.1:5000/app:latest", nil)
	if err != nil || a.Username != "local" || a.Password != "lpass" || a.Registry != "127.0.0.1:5000" {
		t.Fatalf("For = %+v, %v; want the auths entry", a, err)
	}
	if !strings.HasPrefix(a.Source, dir) {
		t.Errorf("Source = %q; want the config.json path", a.Source)
	}
	a, err = r.For("acme/app", nil)
	if err != nil || a.Username != "hubuser" {
		t.Errorf("For(acme/app) = %v, %v; want the Hub entry of auths", a, err)
	}
	a, err = r.For("other.example.com/app", nil)
	if err != nil || !a.Empty() || a.Registry != "other.example.com" {
		t.Errorf("For a registry config.json does not name = %v, %v; want no credentials", a, err)
	}
}

func TestNoDockerConfigIsAnonymous(t *testing.T) {
	a, err := registryauth.New(t.TempDir()).For("registry.example.com/app", nil)
	if err != nil || !a.Empty() {
		t.Errorf("For without config.json = %v, %v; want no credentials", a, err)
	}
}

func TestMalformedDockerConfigIsAnError(t *testing.T) {
	dir := writeConfig(t, `{"auths":`)
	_, err := registryauth.New(dir).For("registry.example.com/app", nil)
	if err == nil || !strings.Contains(err.Error(), "config.json") || !strings.Contains(err.Error(), "registry.example.com") {
		t.Errorf("For with a broken config.json: %v; want an error naming the file and the registry", err)
	}
}

// fakeHelper installs docker-credential-NAME on PATH: it answers get for
// server with user and secret, and "credentials not found" for any other.
func fakeHelper(t *testing.T, name, server, user, secret string) {
	t.Helper()
	bin := t.TempDir()
	script := fmt.Sprintf(`#!/bin/sh
[ "$1" = get ] || exit 1
read -r server
if [ "$server" = %q ]; then
  printf '{"ServerURL":"%%s","Username":%q,"Secret":%q}' "$server"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
`, server, user, secret)
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-"+name), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

func TestCredentialHelpers(t *testing.T) {
	fakeHelper(t, "orcatest", "registry.example.com", "helper-user", "helper-secret")
	for name, json := range map[string]string{
		"credsStore":  `{"credsStore":"orcatest"}`,
		"credHelpers": `{"credHelpers":{"registry.example.com":"orcatest"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			r := registryauth.New(writeConfig(t, json))
			a, err := r.For("registry.example.com/app:v1", nil)
			if err != nil || a.Username != "helper-user" || a.Password != "helper-secret" {
				t.Fatalf("For = %v, %v; want the helper's credentials", a, err)
			}
			if !strings.Contains(a.Source, "docker-credential-orcatest") {
				t.Errorf("Source = %q; want it to name the helper", a.Source)
			}
			if a, err := r.For("unknown.example.com/app", nil); name == "credsStore" && (err != nil || !a.Empty()) {
				t.Errorf("For a registry the store does not know = %v, %v; want no credentials", a, err)
			}
		})
	}
}

func TestAuthPrintsNoSecret(t *testing.T) {
	a := registryauth.Auth{Registry: "r.example.com", Source: registryauth.SourceCluster, Username: "u", Password: "hunter2-secret"}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a)} {
		if strings.Contains(s, "hunter2-secret") {
			t.Errorf("formatting an Auth printed its password: %s", s)
		}
	}
}

func TestClusterOnlyReadsNoDockerConfig(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", writeConfig(t, fmt.Sprintf(`{"auths":{"r.example.com":{"auth":%q}}}`, basic("u", "p"))))
	r := registryauth.ClusterOnly()
	if a, err := r.For("r.example.com/app", nil); err != nil || !a.Empty() {
		t.Errorf("ClusterOnly without an entry = %v, %v; want no credentials", a, err)
	}
	regs := []config.Registry{{Host: "r.example.com", Username: "git", Password: "pw"}}
	if a, err := r.For("r.example.com/app", regs); err != nil || a.Username != "git" {
		t.Errorf("ClusterOnly with an entry = %v, %v; want it", a, err)
	}
	if a, err := registryauth.New("").For("r.example.com/app", nil); err != nil || a.Username != "u" {
		t.Errorf("New(\"\") = %v, %v; want $DOCKER_CONFIG's credentials", a, err)
	}
}
