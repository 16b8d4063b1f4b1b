package github

import (
	"testing"

	"github.com/orca-sync/orca-sync/config"
)

func TestCommitURL(t *testing.T) {
	for _, c := range []struct{ api, repo, want string }{
		{"https://api.github.com/", "acme/infra", "https://github.com/acme/infra/commit/abc"},
		{"https://ghe.example.com/api/v3/", "acme/infra", "https://ghe.example.com/acme/infra/commit/abc"},
		{"https://gitea.example.com/api/v1/", "acme/infra", "https://gitea.example.com/acme/infra/commit/abc"},
		{"https://api.github.com/", "", ""},
		{"https://api.github.com/", "noslash", ""},
		{"not a url", "acme/infra", ""},
	} {
		if got := CommitURL(config.GitHub{APIURL: c.api, Repo: c.repo}, "abc"); got != c.want {
			t.Errorf("CommitURL(%q, %q) = %q, want %q", c.api, c.repo, got, c.want)
		}
	}
}
