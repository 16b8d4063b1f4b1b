package config

import (
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/distribution/reference"
)

// Defaults of [service.build] (docs/reference/service-toml.md#build).
const (
	DefaultBuildBranch     = "main"
	DefaultBuildContext    = "."
	DefaultBuildDockerfile = "Dockerfile"
	// BuildRepositoryPrefix names the local repository of a built image
	// when the service gives no image: orca-build/<project>-<service>.
	BuildRepositoryPrefix = "orca-build/"
)

func convertBuild(r *rawBuild) *Build {
	b := &Build{Repo: r.Repo, Branch: r.Branch, Context: r.Context, Dockerfile: r.Dockerfile, Args: r.Args}
	if b.Branch == "" {
		b.Branch = DefaultBuildBranch
	}
	if b.Context == "" {
		b.Context = DefaultBuildContext
	}
	if b.Dockerfile == "" {
		b.Dockerfile = DefaultBuildDockerfile
	}
	return b
}

// buildPullPolicy is the pull_policy of a service with build: "never",
// since its image exists only where it was built. Any other value given is
// an error rather than a key that does nothing.
func buildPullPolicy(s *Service, sink errorSink) string {
	if s.PullPolicy != "" && s.PullPolicy != PullNever {
		sink.service(s, "pull_policy", "pull_policy = %q: a service with build never pulls its image; remove pull_policy", s.PullPolicy)
	}
	return PullNever
}

// validateBuild checks [service.build]: a repository, paths that stay inside
// the app repository, and build args without secrets (they would stay in the
// image history for anyone who can read the image).
func validateBuild(s *Service, sink errorSink) {
	b := s.Build
	if b == nil {
		return
	}
	if b.Repo == "" {
		sink.service(s, "build.repo", "build.repo is required")
	}
	if u, err := url.Parse(b.Repo); err == nil && u.User != nil && (u.Scheme == "http" || u.Scheme == "https" || hasPassword(u)) {
		sink.service(s, "build.repo", "build.repo: credentials in the URL would be kept in container labels; give them as for the infra repository (ORCA_SYNC_GIT_USERNAME, ORCA_SYNC_GIT_PASSWORD or ORCA_SYNC_GIT_TOKEN)")
	}
	if s.Watch != nil {
		sink.service(s, "watch", "set either watch or build: a built image is rebuilt on a push to build.repo, never pulled")
	}
	if s.Image != "" {
		if ref, err := reference.ParseNormalizedNamed(s.Image); err == nil {
			if _, digested := ref.(reference.Digested); digested {
				sink.service(s, "image", "image %q: with build, image names the local repository the built image is tagged in; a digest cannot name it", s.Image)
			}
		}
	}
	for _, kv := range [][2]string{{"build.context", b.Context}, {"build.dockerfile", b.Dockerfile}} {
		key, p := kv[0], kv[1]
		c := path.Clean(p)
		if path.IsAbs(p) || c == ".." || strings.HasPrefix(c, "../") {
			sink.service(s, key, "%s = %q: must be a relative path inside the app repository (no .., not absolute)", key, p)
		}
	}
	keys := make([]string, 0, len(b.Args))
	for k := range b.Args {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.Contains(b.Args[k], "${secrets") {
			sink.service(s, "build.args."+k, "build.args.%s: ${secrets...} is not allowed in build args: they stay in the image history; give the secret to the container in env instead", k)
		}
	}
}

// BuildRepository is the local repository a built image of s is tagged in:
// its image without tag, else orca-build/<project>-<service>.
func (s *Service) BuildRepository() string {
	if s.Image == "" {
		return BuildRepositoryPrefix + s.Project + "-" + s.Name
	}
	ref, err := reference.ParseNormalizedNamed(s.Image)
	if err != nil {
		return s.Image
	}
	return reference.FamiliarName(reference.TrimNamed(ref))
}

// BuildTag is the tag of s's image built from commit:
// <repository>:<commit12> (a tag given in image is replaced by the commit).
func (s *Service) BuildTag(commit string) string {
	return s.BuildRepository() + ":" + commit[:min(len(commit), 12)]
}

func hasPassword(u *url.URL) bool {
	_, ok := u.User.Password()
	return ok
}
