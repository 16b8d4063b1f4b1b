package github

import (
	"net/url"
	"strings"

	"github.com/orca-sync/orca-sync/config"
)

// CommitURL is the web page of commit sha in the [github] repository, ""
// when [github] has no repo or its api_url is not a URL. The web host is
// the API's: api.github.com serves github.com; GitHub Enterprise
// (https://host/api/v3/) and Gitea (https://host/api/v1/) serve https://host.
func CommitURL(cfg config.GitHub, sha string) string {
	owner, repo, ok := strings.Cut(cfg.Repo, "/")
	if !ok || owner == "" || repo == "" || sha == "" {
		return ""
	}
	u, err := url.Parse(cfg.APIURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return ""
	}
	web := url.URL{Scheme: u.Scheme, Host: u.Host}
	if strings.EqualFold(u.Host, "api.github.com") {
		web.Host = "github.com"
	}
	web.Path = "/" + owner + "/" + repo + "/commit/" + sha
	return web.String()
}
