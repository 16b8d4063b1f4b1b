// Package github reports to GitHub (or GitHub Enterprise, or Gitea's
// compatible API) through go-github: a commit status per synced commit, and
// for each pull request its plan, kept in one comment and a status.
package github

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	gh "github.com/google/go-github/v60/github"

	"github.com/orca-sync/orca-sync/config"
)

// maxDescription is GitHub's limit for a status description.
const maxDescription = 140

// client is go-github bound to [github] of cluster.toml.
type client struct {
	gh          *gh.Client
	owner, repo string
}

func newClient(cfg config.GitHub, hc *http.Client) (*client, error) {
	owner, repo, ok := strings.Cut(cfg.Repo, "/")
	if !ok || owner == "" || repo == "" {
		return nil, fmt.Errorf("github.repo %q is not \"owner/name\"", cfg.Repo)
	}
	base, err := url.Parse(cfg.APIURL)
	if err != nil {
		return nil, fmt.Errorf("github.api_url: %w", err)
	}
	// The URL is used as given (GitHub Enterprise: https://host/api/v3/,
	// Gitea: https://host/api/v1/): go-github's WithEnterpriseURLs would
	// append /api/v3/ to a Gitea URL.
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	c := gh.NewClient(hc).WithAuthToken(cfg.Token)
	c.BaseURL = base
	c.UserAgent = "orca-sync"
	return &client{gh: c, owner: owner, repo: repo}, nil
}

// status is one commit status.
type status struct {
	SHA, State, Context, Description, TargetURL string
}

func (c *client) setStatus(ctx context.Context, s status) error {
	rs := &gh.RepoStatus{State: gh.String(s.State), Context: gh.String(s.Context), Description: gh.String(oneLine(s.Description, maxDescription))}
	if s.TargetURL != "" {
		rs.TargetURL = gh.String(s.TargetURL)
	}
	if _, _, err := c.gh.Repositories.CreateStatus(ctx, c.owner, c.repo, s.SHA, rs); err != nil {
		return fmt.Errorf("set status %s of %s: %w", s.Context, short(s.SHA), err)
	}
	return nil
}

// upsertComment edits the comment of PR number that starts with marker, or
// creates it; it returns the comment's ID. Only a comment that starts with
// the marker is ours: a reply quoting it holds it further in.
func (c *client) upsertComment(ctx context.Context, number int, marker, body string) (int64, error) {
	opts := &gh.IssueListCommentsOptions{ListOptions: gh.ListOptions{PerPage: 100}}
	for {
		comments, resp, err := c.gh.Issues.ListComments(ctx, c.owner, c.repo, number, opts)
		if err != nil {
			return 0, fmt.Errorf("list comments of PR #%d: %w", number, err)
		}
		for _, cm := range comments {
			if first, _, _ := strings.Cut(cm.GetBody(), "\n"); strings.TrimSuffix(first, "\r") == marker {
				if _, _, err := c.gh.Issues.EditComment(ctx, c.owner, c.repo, cm.GetID(), &gh.IssueComment{Body: gh.String(body)}); err != nil {
					return 0, fmt.Errorf("edit comment %d of PR #%d: %w", cm.GetID(), number, err)
				}
				return cm.GetID(), nil
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	cm, _, err := c.gh.Issues.CreateComment(ctx, c.owner, c.repo, number, &gh.IssueComment{Body: gh.String(body)})
	if err != nil {
		return 0, fmt.Errorf("comment on PR #%d: %w", number, err)
	}
	return cm.GetID(), nil
}

// openPRs lists the numbers of the open pull requests into base.
func (c *client) openPRs(ctx context.Context, base string) ([]int, error) {
	opts := &gh.PullRequestListOptions{State: "open", Base: base, ListOptions: gh.ListOptions{PerPage: 100}}
	var out []int
	for {
		prs, resp, err := c.gh.PullRequests.List(ctx, c.owner, c.repo, opts)
		if err != nil {
			return nil, fmt.Errorf("list open pull requests into %s: %w", base, err)
		}
		for _, pr := range prs {
			// Gitea ignores the base filter; check it here too.
			if pr.GetBase().GetRef() == "" || pr.GetBase().GetRef() == base {
				out = append(out, pr.GetNumber())
			}
		}
		if resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// oneLine is the first line of s, cut to n bytes (on a rune boundary).
func oneLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func short(sha string) string { return sha[:min(len(sha), 12)] }
