package api

import "testing"

func TestNormalizeRepoURL(t *testing.T) {
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"https://github.com/acme/infra.git", "github.com/acme/infra", true},
		{"https://github.com/acme/infra", "github.com/acme/infra", true},
		{"https://github.com/acme/infra/", "github.com/acme/infra", true},
		{"https://github.com/acme/infra.git/", "github.com/acme/infra", true},
		{"HTTPS://GitHub.COM/Acme/Infra.GIT", "github.com/acme/infra", true},
		{"http://user:p%40ss@git.example.com:8080/acme/infra.git", "git.example.com/acme/infra", true},
		{"https://x-access-token:ghp_abc@github.com/acme/infra", "github.com/acme/infra", true},
		{"git@github.com:acme/infra.git", "github.com/acme/infra", true},
		{"git@GitHub.com:Acme/Infra", "github.com/acme/infra", true},
		{"github.com:acme/infra.git", "github.com/acme/infra", true},
		{"ssh://git@github.com:22/acme/infra.git", "github.com/acme/infra", true},
		{"git://github.com/acme/infra.git", "github.com/acme/infra", true},
		{"https://gitlab.com/group/sub/infra.git", "gitlab.com/group/sub/infra", true},
		{"  https://github.com/acme/infra.git  ", "github.com/acme/infra", true},
		// Local paths never match a forge.
		{"/srv/git/acme/infra", "", false},
		{"./examples/infra", "", false},
		{"examples/infra", "", false},
		{"file:///srv/git/acme/infra.git", "", false},
		{`C:\repos\infra`, "", false},
		{"c:/repos/infra", "", false},
		{"", "", false},
		{"https://github.com/", "", false},
	}
	for _, c := range cases {
		got, ok := normalizeRepoURL(c.in)
		if got != c.want || ok != c.ok {
			t.Errorf("normalizeRepoURL(%q) = %q, %t; want %q, %t", c.in, got, ok, c.want, c.ok)
		}
	}
}

func TestRepoMatches(t *testing.T) {
	cases := []struct {
		name, tracked, fullName string
		urls                    []string
		want                    bool
	}{
		{"https with .git vs clone url", "https://github.com/acme/infra.git", "", []string{"https://github.com/acme/infra.git"}, true},
		{"https vs html url", "https://github.com/acme/infra.git", "", []string{"https://github.com/acme/infra"}, true},
		{"scp-style vs ssh url", "git@github.com:acme/infra.git", "", []string{"git@github.com:acme/infra.git"}, true},
		{"scp-style vs https", "git@github.com:acme/infra.git", "", []string{"https://github.com/acme/infra.git"}, true},
		{"credentials in tracked url", "http://bot:tok@git.local:3000/acme/infra.git", "", []string{"http://git.local:3000/acme/infra.git"}, true},
		{"different case", "https://GitHub.com/ACME/Infra", "", []string{"https://github.com/acme/infra.git"}, true},
		{"full name only", "https://git.internal/mirror/acme/infra.git", "Acme/Infra", nil, true},
		{"full name, nested gitlab group", "https://gitlab.com/grp/sub/infra.git", "grp/sub/infra", nil, true},
		{"other repo", "https://github.com/acme/infra.git", "acme/app", []string{"https://github.com/acme/app.git"}, false},
		{"other host", "https://github.com/acme/infra.git", "", []string{"https://gitlab.com/acme/infra.git"}, false},
		{"full name partial segment", "https://github.com/acme/myinfra.git", "acme/infra", nil, false},
		{"full name one segment", "https://github.com/acme/infra.git", "infra", nil, false},
		{"local path never matches", "/srv/git/acme/infra", "acme/infra", []string{"/srv/git/acme/infra"}, false},
		{"file url never matches", "file:///srv/acme/infra", "acme/infra", nil, false},
		{"empty event", "https://github.com/acme/infra.git", "", []string{"", ""}, false},
	}
	for _, c := range cases {
		if got := repoMatches(c.tracked, c.fullName, c.urls...); got != c.want {
			t.Errorf("%s: repoMatches(%q, %q, %q) = %t, want %t", c.name, c.tracked, c.fullName, c.urls, got, c.want)
		}
	}
}
