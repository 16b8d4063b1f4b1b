package api

import (
	"net/url"
	"strings"
)

// normalizeRepoURL reduces a git remote URL to "host/path" for comparison:
// lower-case, without scheme, credentials, port, trailing ".git" or "/";
// scp-style "git@host:org/repo" becomes "host/org/repo". A local path or
// file:// URL has no host and reports false: it never matches a forge.
func normalizeRepoURL(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	var host, path string
	switch {
	case strings.Contains(raw, "://"):
		u, err := url.Parse(raw)
		if err != nil || strings.EqualFold(u.Scheme, "file") {
			return "", false
		}
		host, path = u.Hostname(), u.Path
	default:
		h, p, ok := splitSCP(raw)
		if !ok {
			return "", false
		}
		host, path = h, p
	}
	host = strings.ToLower(host)
	path = cleanRepoPath(path)
	if host == "" || path == "" {
		return "", false
	}
	return host + "/" + path, true
}

// splitSCP splits git's scp-like syntax "[user@]host:path". Anything with a
// slash before the colon, or a one-letter "host" (a Windows drive), is a
// local path.
func splitSCP(raw string) (host, path string, ok bool) {
	before, after, found := strings.Cut(raw, ":")
	if !found || strings.ContainsAny(before, `/\`) {
		return "", "", false
	}
	if i := strings.LastIndex(before, "@"); i >= 0 {
		before = before[i+1:]
	}
	if len(before) < 2 {
		return "", "", false
	}
	return before, after, true
}

// cleanRepoPath lower-cases a repository path and strips surrounding
// slashes and a trailing ".git".
func cleanRepoPath(p string) string {
	p = strings.Trim(strings.ToLower(strings.TrimSpace(p)), "/")
	p = strings.TrimSuffix(p, ".git")
	return strings.Trim(p, "/")
}

// repoMatches reports whether a forge repository (its full name, e.g.
// "owner/name", and its URLs) is the tracked repoURL: one of the URLs
// normalises to the same "host/path", or the full name is the trailing path
// segments of repoURL. A local-path repoURL never matches.
func repoMatches(repoURL, fullName string, urls ...string) bool {
	want, ok := normalizeRepoURL(repoURL)
	if !ok {
		return false
	}
	for _, u := range urls {
		if got, ok := normalizeRepoURL(u); ok && got == want {
			return true
		}
	}
	name := cleanRepoPath(fullName)
	if !strings.Contains(name, "/") {
		return false
	}
	_, path, _ := strings.Cut(want, "/")
	return path == name || strings.HasSuffix(path, "/"+name)
}
