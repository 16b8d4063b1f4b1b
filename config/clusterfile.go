package config

import (
	"fmt"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultCluster is the configuration of a checkout without cluster.toml.
func DefaultCluster() Cluster {
	c, _ := ParseClusterFile("cluster.toml", nil)
	return c
}

// ParseClusterFile decodes and validates cluster.toml.
func ParseClusterFile(file string, data []byte) (Cluster, Errors) {
	var errs Errors
	sink := errorSink{file: file, lines: newLineIndex(string(data)), errs: &errs}
	var raw rawClusterFile
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		sink.append(syntaxError(file, err))
		return Cluster{}, errs
	}
	for _, k := range append(md.Undecoded(), miscasedKeys(md.Keys())...) {
		sink.at("", -1, k.String(), "unknown key %q", k.String())
	}
	c := convertCluster(raw, sink)
	validateCluster(&c, sink)
	c.SecretRefs = clusterSecretRefs(&c, sink)
	return c, errs
}

func convertCluster(r rawClusterFile, sink errorSink) Cluster {
	c := Cluster{
		Name: r.Cluster.Name, Domain: r.Cluster.Domain, Node: r.Cluster.Node, Engine: r.Cluster.Engine,
		Reconcile: Reconcile{
			Interval:   secs(deref(r.Reconcile.IntervalSecs, 60)),
			Prune:      deref(r.Reconcile.Prune, true),
			PruneGuard: deref(r.Reconcile.PruneGuard, 0.5),
			AllowEmpty: r.Reconcile.AllowEmpty,
		},
		Proxy: Proxy{
			HTTPPort: deref(r.Proxy.HTTPPort, 80), HTTPSPort: deref(r.Proxy.HTTPSPort, 443),
			TrustedProxies: r.Proxy.TrustedProxies, MaxBody: deref(r.Proxy.MaxBody, "100Mi"),
		},
		ACME:    ACME{Email: r.ACME.Email, CA: r.ACME.CA, TLS: r.ACME.TLS},
		Webhook: Webhook{Secret: r.Webhook.Secret, GitLabToken: r.Webhook.GitLabToken},
		GitHub: GitHub{
			Token: r.GitHub.Token, Repo: r.GitHub.Repo, APIURL: r.GitHub.APIURL,
			PRPlans: deref(r.GitHub.PRPlans, true),
		},
		Tokens: r.Token,
		Backup: convertBackup(r),
	}
	c.Proxy.enabledSet = r.Proxy.Enabled
	switch c.Engine {
	case "":
		c.Engine = EngineDocker
	case EngineDocker, EngineSwarm:
	default:
		sink.at("", -1, "cluster.engine", "cluster.engine = %q: must be %q or %q", c.Engine, EngineDocker, EngineSwarm)
	}
	if r.ACME.Directory != "" {
		if c.ACME.CA != "" {
			sink.at("", -1, "acme.directory", "set either acme.ca or orca's acme.directory, not both")
		}
		c.ACME.CA = r.ACME.Directory
	}
	if c.ACME.CA == "" {
		c.ACME.CA = DefaultACMECA
	}
	if c.ACME.TLS == "" {
		c.ACME.TLS = TLSACME
	}
	if c.GitHub.APIURL == "" {
		c.GitHub.APIURL = "https://api.github.com/"
	}
	for _, n := range r.Notify {
		c.Notify = append(c.Notify, Notify{
			Type: n.Type, URL: n.URL, Events: n.Events,
			RepeatInterval: secs(deref(n.RepeatIntervalSecs, 3600)),
		})
	}
	setTokenLines(c.Tokens, sink.lines)
	for _, n := range r.Node {
		c.Nodes = append(c.Nodes, Node{Name: n.Name, Labels: n.Labels})
	}
	for _, g := range r.Registry {
		c.Registries = append(c.Registries, Registry{Host: g.Host, Username: g.Username, Password: g.Password})
	}
	if n, err := ParseBytes(c.Proxy.MaxBody); err != nil {
		sink.at("", -1, "proxy.max_body", "proxy.max_body %q: %v", c.Proxy.MaxBody, err)
	} else {
		c.Proxy.MaxBodyBytes = n
	}
	return c
}

// setTokenLines records where each token's value is written, for the errors
// of CheckResolved.
func setTokenLines(tokens []Token, lines *lineIndex) {
	for i := range tokens {
		if tokens[i].Line = lines.find("token", i, "value"); tokens[i].Line == 0 {
			tokens[i].Line = lines.blockStart("token", i)
		}
	}
}

var sha256TokenRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)
var githubRepoRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)

func validateCluster(c *Cluster, sink errorSink) {
	if c.Reconcile.Interval < time.Second {
		sink.at("", -1, "reconcile.interval_secs", "reconcile.interval_secs must be at least 1")
	}
	if g := c.Reconcile.PruneGuard; !(g > 0 && g <= 1) { // NaN compares false
		sink.at("", -1, "reconcile.prune_guard", "reconcile.prune_guard = %v: must be a fraction in (0, 1]", g)
	}
	for _, p := range []struct {
		key string
		v   int
	}{{"proxy.http_port", c.Proxy.HTTPPort}, {"proxy.https_port", c.Proxy.HTTPSPort}} {
		if _, err := parsePortNumber(fmt.Sprint(p.v)); err != nil {
			sink.at("", -1, p.key, "%s %v", p.key, err)
		}
	}
	if c.Proxy.HTTPPort == c.Proxy.HTTPSPort {
		sink.at("", -1, "proxy.https_port", "proxy.http_port and proxy.https_port are both %d", c.Proxy.HTTPPort)
	}
	for _, tp := range c.Proxy.TrustedProxies {
		if _, _, err := net.ParseCIDR(tp); err != nil && net.ParseIP(tp) == nil {
			sink.at("", -1, "proxy.trusted_proxies", "proxy.trusted_proxies: %q is not an IP address or CIDR", tp)
		}
	}
	if !slices.Contains([]string{TLSACME, TLSInternal, TLSOff}, c.ACME.TLS) {
		sink.at("", -1, "acme.tls", "acme.tls = %q: must be \"acme\", \"internal\" or \"off\"", c.ACME.TLS)
	}
	checkURL(sink, "", -1, "acme.ca", c.ACME.CA)
	if c.GitHub.Repo != "" && !githubRepoRE.MatchString(c.GitHub.Repo) {
		sink.at("", -1, "github.repo", "github.repo %q must be \"owner/name\"", c.GitHub.Repo)
	}
	if c.GitHub.Repo != "" && c.GitHub.Token == "" {
		sink.at("", -1, "github.token", "github.repo is set but github.token is not")
	}
	checkURL(sink, "", -1, "github.api_url", c.GitHub.APIURL)
	validateNotify(c, sink)
	validateTokens(c, sink)
	validateNodes(c, sink)
	validateRegistries(c, sink)
	validateBackup(c.Backup, sink)
}

func checkURL(sink errorSink, table string, index int, key, raw string) {
	if strings.Contains(raw, "${") {
		return // resolved from secrets later
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		sink.at(table, index, key, "%s: %q is not an http(s) URL", key, raw)
	}
}

func validateNotify(c *Cluster, sink errorSink) {
	for i, n := range c.Notify {
		if !slices.Contains([]string{"webhook", "slack", "discord"}, n.Type) {
			sink.at("notify", i, "type", "notify type = %q: must be \"webhook\", \"slack\" or \"discord\"", n.Type)
		}
		checkURL(sink, "notify", i, "url", n.URL)
		for _, e := range n.Events {
			if !slices.Contains(NotifyEvents(), e) {
				sink.at("notify", i, "events", "notify event %q: must be one of %s", e, quoteList(NotifyEvents()))
			}
		}
		if n.RepeatInterval < 0 {
			sink.at("notify", i, "repeat_interval_secs", "notify repeat_interval_secs must be 0 or more")
		}
	}
}

func validateTokens(c *Cluster, sink errorSink) {
	names := map[string]bool{}
	for i, t := range c.Tokens {
		if t.Name == "" {
			sink.at("token", i, "name", "token name is required")
		} else if names[t.Name] {
			sink.at("token", i, "name", "token name %q is used twice", t.Name)
		}
		names[t.Name] = true
		if !strings.Contains(t.Value, "${") { // checked once resolved: CheckResolved
			if msg := tokenValueProblem(t.Value); msg != "" {
				sink.at("token", i, "value", "token %q: %s (or ${secrets.NAME})", t.Name, msg)
			}
		}
		if !slices.Contains([]string{RoleAdmin, RoleDeployer, RoleViewer}, t.Role) {
			sink.at("token", i, "role", "token %q: role = %q must be \"admin\", \"deployer\" or \"viewer\"", t.Name, t.Role)
		}
	}
}

// minTokenLength is the shortest plain token value accepted, whether written
// in cluster.toml or resolved from a secret (docs/reference/cluster-toml.md).
const minTokenLength = 16

// tokenValueProblem says what is wrong with a token value, "" if nothing.
// It never quotes the value.
func tokenValueProblem(v string) string {
	switch {
	case strings.HasPrefix(v, "sha256:") && !sha256TokenRE.MatchString(v):
		return "a sha256: value must be 64 lower-case hex digits"
	case !strings.HasPrefix(v, "sha256:") && len(v) < minTokenLength:
		return fmt.Sprintf("value must be at least %d characters (or \"sha256:<hex>\")", minTokenLength)
	}
	return ""
}

// CheckResolved holds the token values written as ${secrets.NAME} to the
// rules a value written in cluster.toml meets, once secret (the secrets
// resolver's lookup) gives their values. It runs before the resolver expands
// c, so a refused checkout keeps no secret; the errors name the token, never
// its value.
func (c *Cluster) CheckResolved(secret func(name string) (string, error)) Errors {
	var errs Errors
	for _, t := range c.Tokens {
		if !strings.Contains(t.Value, "${") {
			continue // checked as written by validateTokens
		}
		v, err := Expand(t.Value, secret)
		if err != nil {
			continue // the resolver reports references that do not resolve
		}
		if msg := tokenValueProblem(v); msg != "" {
			errs = append(errs, Error{File: "cluster.toml", Line: t.Line, Key: "value",
				Message: fmt.Sprintf("token %q: the value its secret gives: %s", t.Name, msg)})
		}
	}
	return errs
}

// clusterSecretRefs collects ${secrets.NAME} from every string of the cluster
// configuration and reports malformed references.
func clusterSecretRefs(c *Cluster, sink errorSink) []string {
	seen := map[string]bool{}
	EachString(c, func(key, s string) {
		names, err := SecretRefs(s)
		if err != nil {
			sink.at("", -1, key, "%s: %v", key, err)
		}
		for _, n := range names {
			seen[n] = true
		}
	})
	return sortedKeys(seen)
}

// EachString calls fn with every string reachable from v (a pointer to a
// struct) and a dotted key naming it. The secrets resolver walks the cluster
// configuration the same way.
func EachString(v any, fn func(key, s string)) {
	eachString(reflect.ValueOf(v), "", fn)
}

func eachString(v reflect.Value, key string, fn func(key, s string)) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			eachString(v.Elem(), key, fn)
		}
	case reflect.String:
		fn(key, v.String())
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				eachString(v.Field(i), joinKey(key, strings.ToLower(f.Name)), fn)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			eachString(v.Index(i), fmt.Sprintf("%s[%d]", key, i), fn)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return keys[i].String() < keys[j].String() })
		for _, k := range keys {
			eachString(v.MapIndex(k), joinKey(key, k.String()), fn)
		}
	}
}

func joinKey(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}
