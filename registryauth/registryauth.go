// Package registryauth finds the credentials an image pull sends: the
// [[registry]] entries of cluster.toml first, else the Docker client config
// of the user orca-sync runs as ($DOCKER_CONFIG/config.json, default
// ~/.docker/config.json, with its auths, credsStore and credHelpers), read
// with docker/cli's config package and the credential helpers' client, as
// `docker pull` would (docs/guides/private-registries.md).
package registryauth

import (
	"fmt"
	"path/filepath"

	"github.com/distribution/reference"
	dockerconfig "github.com/docker/cli/cli/config"

	"github.com/orca-sync/orca-sync/config"
)

// Auth is the credentials of one pull. Registry and Source say where they
// are for and came from, for errors; neither holds a secret.
type Auth struct {
	// Registry is the host the image reference names, "docker.io" for
	// Docker Hub.
	Registry string
	// Source is where the credentials came from: "cluster.toml [[registry]]",
	// the config.json path (and its credential helper), or "" when none
	// were found.
	Source string

	ServerAddress string
	Username      string
	Password      string
	// IdentityToken and RegistryToken are what credential helpers give
	// for token-based registries.
	IdentityToken string
	RegistryToken string
}

// Empty reports whether there are no credentials: the pull goes anonymous.
func (a Auth) Empty() bool {
	return a.Username == "" && a.Password == "" && a.IdentityToken == "" && a.RegistryToken == ""
}

// String names the registry and the source, never a secret, so an Auth
// that reaches a log by mistake leaks nothing.
func (a Auth) String() string {
	if a.Empty() {
		return a.Registry + " (no credentials)"
	}
	return a.Registry + " (credentials from " + a.Source + ")"
}

// GoString is String: %#v must not print the fields either.
func (a Auth) GoString() string { return a.String() }

// SourceCluster is Auth.Source for credentials from cluster.toml.
const SourceCluster = "cluster.toml [[registry]]"

// Resolver finds credentials. It reads the Docker config at every call, so
// a `docker login` on the host counts from the next pull, without a restart.
type Resolver struct {
	dir string
	// clusterOnly reads no Docker config: [[registry]] or nothing.
	clusterOnly bool
}

// New returns a resolver reading the Docker config in dir; "" is docker's
// own default ($DOCKER_CONFIG, else ~/.docker).
func New(dir string) *Resolver { return &Resolver{dir: dir} }

// ClusterOnly returns a resolver that knows only [[registry]] entries, for
// a runtime that is given no host Docker config.
func ClusterOnly() *Resolver { return &Resolver{clusterOnly: true} }

// Dir is the Docker config directory the resolver reads.
func (r *Resolver) Dir() string {
	if r.dir == "" {
		return dockerconfig.Dir()
	}
	return r.dir
}

// Host is the registry an image reference pulls from, normalised as
// [[registry]] hosts are: "docker.io" for Docker Hub and for references
// without a host.
func Host(ref string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	return config.RegistryHost(reference.Domain(named)), nil
}

// For returns the credentials a pull of ref sends: the [[registry]] entry
// of its host, else what the Docker config holds for it, else none (an
// anonymous pull). An error is a Docker config that cannot be read or a
// credential helper that failed; it never holds a secret.
func (r *Resolver) For(ref string, registries []config.Registry) (Auth, error) {
	host, err := Host(ref)
	if err != nil {
		return Auth{}, err
	}
	for _, g := range registries {
		if config.RegistryHost(g.Host) == host {
			return Auth{Registry: host, Source: SourceCluster, ServerAddress: serverAddress(host),
				Username: g.Username, Password: g.Password}, nil
		}
	}
	if r.clusterOnly {
		return Auth{Registry: host}, nil
	}
	return r.fromDockerConfig(host)
}

// fromDockerConfig looks host up in config.json: its credHelpers entry,
// else credsStore, else auths (the library's order, as `docker pull`).
func (r *Resolver) fromDockerConfig(host string) (Auth, error) {
	dir := r.Dir()
	file := filepath.Join(dir, dockerconfig.ConfigFileName)
	cf, err := dockerconfig.Load(dir)
	if err != nil {
		return Auth{Registry: host}, fmt.Errorf("registry credentials for %s: read %s: %w", host, file, err)
	}
	ac, err := cf.GetAuthConfig(host)
	if err != nil {
		return Auth{Registry: host}, fmt.Errorf("registry credentials for %s from %s: %w", host, file, err)
	}
	a := Auth{Registry: host, ServerAddress: ac.ServerAddress, Username: ac.Username, Password: ac.Password,
		IdentityToken: ac.IdentityToken, RegistryToken: ac.RegistryToken}
	if a.Empty() {
		return Auth{Registry: host}, nil
	}
	if a.ServerAddress == "" {
		a.ServerAddress = serverAddress(host)
	}
	a.Source = file
	if h := helperOf(cf.CredentialHelpers, cf.CredentialsStore, host); h != "" {
		a.Source += " (docker-credential-" + h + ")"
	}
	return a, nil
}

// helperOf is the credential helper config.json names for host.
func helperOf(helpers map[string]string, store, host string) string {
	if h, ok := helpers[host]; ok {
		return h
	}
	if h, ok := helpers[serverAddress(host)]; ok {
		return h
	}
	return store
}

// serverAddress is the key Docker keeps a registry's credentials under:
// Docker Hub's historical index address, else the host.
func serverAddress(host string) string {
	if host == "docker.io" {
		return "https://index.docker.io/v1/"
	}
	return host
}
