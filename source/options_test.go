package source

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	dir := t.TempDir()
	abs, _ := filepath.Abs("relative/path")
	for _, tc := range []struct {
		name, url                string
		wantURL, protocol, host  string
		wantUser, wantPass, user string
	}{
		{name: "path", url: "/srv/infra", wantURL: "/srv/infra", protocol: "file"},
		{name: "relative path", url: "relative/path", wantURL: abs, protocol: "file"},
		{name: "file URL", url: "file:///srv/infra.git", wantURL: "file:///srv/infra.git", protocol: "file"},
		{name: "https", url: "https://git.example.com/org/infra.git", wantURL: "https://git.example.com/org/infra.git", protocol: "https"},
		{name: "https with credentials", url: "https://bob:pw@git.example.com/org/infra.git",
			wantURL: "https://git.example.com/org/infra.git", protocol: "https", wantUser: "bob", wantPass: "pw"},
		{name: "ssh", url: "ssh://deploy@git.example.com:2222/org/infra.git", wantURL: "ssh://deploy@git.example.com:2222/org/infra.git",
			protocol: "ssh", host: "git.example.com:2222", user: "deploy"},
		{name: "scp-style", url: "git@github.com:org/infra.git", wantURL: "git@github.com:org/infra.git",
			protocol: "ssh", host: "github.com:22", user: "git"},
		{name: "git", url: "git://git.example.com/infra.git", wantURL: "git://git.example.com/infra.git", protocol: "git"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := New(Options{URL: tc.url, Dir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if r.URL() != tc.wantURL || r.protocol != tc.protocol || r.username != tc.wantUser || r.password != tc.wantPass {
				t.Errorf("url %q protocol %q user %q pass %q", r.URL(), r.protocol, r.username, r.password)
			}
			if tc.host != "" && (r.host != tc.host || r.user != tc.user) {
				t.Errorf("ssh host %q user %q, want %q %q", r.host, r.user, tc.host, tc.user)
			}
			if r.Branch() != "main" || r.Dir() != dir {
				t.Errorf("branch %q dir %q", r.Branch(), r.Dir())
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"no URL", Options{Dir: "d"}, "no repository URL"},
		{"no dir", Options{URL: "/r"}, "no clone directory"},
		{"bad branch", Options{URL: "/r", Dir: "d", Branch: "a..b"}, "branch"},
		{"unknown protocol", Options{URL: "ftp://host/r", Dir: "d"}, "unsupported protocol"},
		{"token and password", Options{URL: "https://h/r", Dir: "d", Token: "t0k3n", Password: "Pw-secret-1", Username: "u"}, "both a token and a password"},
		{"password without user", Options{URL: "https://h/r", Dir: "d", Password: "Pw-secret-2"}, "without a user name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error with %q", err, tc.want)
			}
			if tc.opts.Password != "" && strings.Contains(err.Error(), tc.opts.Password) {
				t.Errorf("error %q holds the password", err)
			}
		})
	}
	_, err := New(Options{URL: "ftp://user:hunter2@host/r", Dir: "d"})
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("New = %v: want an error without the password", err)
	}
}

func TestCredentials(t *testing.T) {
	for _, tc := range []struct {
		name       string
		opts       Options
		user, pass string
	}{
		{"token", Options{Token: "tok"}, "x-access-token", "tok"},
		{"token with user", Options{Token: "tok", Username: "ci"}, "ci", "tok"},
		{"password", Options{Username: "u", Password: "p"}, "u", "p"},
		{"options win over the URL", Options{URL: "https://a:b@h/r", Username: "u", Password: "p"}, "u", "p"},
		{"URL", Options{URL: "https://a:b@h/r"}, "a", "b"},
		{"token in the URL", Options{URL: "https://ghp_x@h/r"}, "ghp_x", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.URL == "" {
				tc.opts.URL = "https://h/r"
			}
			tc.opts.Dir = t.TempDir()
			r, err := New(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if r.username != tc.user || r.password != tc.pass {
				t.Errorf("basic auth %q:%q, want %q:%q", r.username, r.password, tc.user, tc.pass)
			}
			if r.URL() != "https://h/r" {
				t.Errorf("URL() = %q", r.URL())
			}
			msg := r.redact(errors.New("GET https://" + r.username + ":" + r.password + "@h/r failed")).Error()
			for _, s := range []string{tc.pass, tc.opts.Token, tc.opts.Password} {
				if s != "" && strings.Contains(msg, s) {
					t.Errorf("redacted message %q holds %q", msg, s)
				}
			}
		})
	}
}

func TestRedactKeepsTheErrorChain(t *testing.T) {
	r, err := New(Options{URL: "https://h/r", Dir: t.TempDir(), Username: "u", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	sentinel := errors.New("auth pw refused")
	got := r.redact(sentinel)
	if got.Error() != "auth *** refused" || !errors.Is(got, sentinel) {
		t.Errorf("redact = %q (Is: %v)", got, errors.Is(got, sentinel))
	}
}

func TestOptionsFromEnv(t *testing.T) {
	t.Setenv(EnvUsername, "env-user")
	t.Setenv(EnvPassword, "env-pass")
	t.Setenv(EnvToken, "env-token")
	o := Options{Username: "flag-user"}
	OptionsFromEnv(&o)
	if o.Username != "flag-user" || o.Password != "env-pass" || o.Token != "env-token" {
		t.Errorf("OptionsFromEnv = %+v", o)
	}
}

func TestCommitSubject(t *testing.T) {
	for msg, want := range map[string]string{
		"":                     "",
		"one line":             "one line",
		"subject\n\nbody\n":    "subject",
		"\nsubject  \nmore":    "subject",
		"crlf subject\r\nbody": "crlf subject",
	} {
		if got := (Commit{Message: msg}).Subject(); got != want {
			t.Errorf("Subject(%q) = %q, want %q", msg, got, want)
		}
	}
}
