package config

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// ParseServiceFile decodes and validates one service.toml of project. file is
// the path errors name. Checks that need the other files of the checkout (cross
// project routes and ports, mount sources, placement nodes) are Load's.
func ParseServiceFile(file, project string, data []byte) ([]*Service, Errors) {
	var errs Errors
	sink := errorSink{file: file, lines: newLineIndex(string(data)), errs: &errs}

	var prims struct {
		Service []toml.Primitive `toml:"service"`
	}
	md, err := toml.Decode(string(data), &prims)
	if err != nil {
		sink.append(syntaxError(file, err))
		return nil, errs
	}
	var services []*Service
	undecodable := map[int]bool{}
	for i, prim := range prims.Service {
		var raw rawService
		line := sink.lines.blockStart("service", i)
		if err := md.PrimitiveDecode(prim, &raw); err != nil {
			key, msg := typeError(err)
			svc := &Service{index: i, Line: line}
			sink.service(svc, strings.TrimPrefix(key, "service."), "%s", msg)
			undecodable[i] = true
			continue
		}
		svc := convertService(raw, project, file, i, line, sink)
		services = append(services, svc)
	}
	reportUnknownKeys(append(md.Undecoded(), miscasedKeys(md.Keys())...), data, undecodable, sink)
	if len(prims.Service) == 0 {
		sink.at("", -1, "", "no [[service]] table")
	}
	validateProject(services, sink)
	return services, errs
}

// syntaxError turns a TOML parse error into an Error at its line.
func syntaxError(file string, err error) Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return Error{File: file, Line: pe.Position.Line, Message: "TOML syntax: " + pe.Message}
	}
	return Error{File: file, Message: "TOML syntax: " + err.Error()}
}

var lastKeyRE = regexp.MustCompile(`^toml: (?:line \d+ )?\(last key "([^"]*)"\): (.*)$`)

// typeError extracts the key and message of a TOML type mismatch.
func typeError(err error) (key, msg string) {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return pe.LastKey, pe.Message
	}
	if m := lastKeyRE.FindStringSubmatch(err.Error()); m != nil {
		return m[1], "wrong type: " + m[2]
	}
	return "", err.Error()
}

// miscasedKeys returns keys that are not written in lower case. The TOML
// decoder matches field names case-insensitively; orca-sync does not, so
// "Image" is reported rather than silently taken. Keys of user maps (env,
// labels, build args) keep any case.
func miscasedKeys(keys []toml.Key) []toml.Key {
	var bad []toml.Key
	for _, k := range keys {
		for i, part := range k {
			if i > 0 && (k[i-1] == "env" || k[i-1] == "labels" || i > 1 && k[i-2] == "build" && k[i-1] == "args") {
				break
			}
			if part != strings.ToLower(part) {
				bad = append(bad, k[:i+1])
				break
			}
		}
	}
	return bad
}

// reportUnknownKeys attributes each key the decoder did not use to the
// service that holds it. The decoder's key paths carry no array index, so the
// file is decoded once more generically to find which services have the key.
// A service whose decode stopped at a type error is skipped: the keys the
// decoder did not reach are not unknown.
func reportUnknownKeys(keys []toml.Key, data []byte, undecodable map[int]bool, sink errorSink) {
	if len(keys) == 0 {
		return
	}
	var generic map[string]any
	if _, err := toml.Decode(string(data), &generic); err != nil {
		return
	}
	for _, k := range keys {
		if len(k) < 2 || k[0] != "service" {
			sink.at("", -1, k.String(), "unknown key %q", k.String())
			continue
		}
		list, _ := generic["service"].([]map[string]any)
		for i, m := range list {
			if !undecodable[i] && hasPath(m, k[1:]) {
				name, _ := m["name"].(string)
				svc := &Service{index: i, Name: name, Line: sink.lines.blockStart("service", i)}
				rel := strings.Join(k[1:], ".")
				sink.service(svc, rel, "unknown key %q", rel)
			}
		}
	}
}

// hasPath reports whether path exists in v, descending through tables and
// arrays of tables.
func hasPath(v any, path []string) bool {
	if len(path) == 0 {
		return true
	}
	switch x := v.(type) {
	case map[string]any:
		next, ok := x[path[0]]
		return ok && hasPath(next, path[1:])
	case []map[string]any:
		for _, e := range x {
			if hasPath(e, path) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasPath(e, path) {
				return true
			}
		}
	}
	return false
}

// convertService applies defaults and parses the values that have a syntax of
// their own (sizes, ports, status ranges), reporting what does not parse.
func convertService(r rawService, project, file string, index, line int, sink errorSink) *Service {
	s := &Service{
		Project: project, File: file, Line: line, index: index,
		Name: deref(r.Name, ""), Image: deref(r.Image, ""), Runtime: deref(r.Runtime, "docker"),
		Replicas: deref(r.Replicas, 1), Port: deref(r.Port, 0),
		Routes: r.Routes, StripPrefix: r.StripPrefix, Health: r.Health, TLSCert: r.TLSCert, TLSKey: r.TLSKey,
		Env: r.Env, Volumes: r.Volumes, Mounts: convertMounts(r.Mounts), Aliases: r.Aliases,
		Internal: r.Internal, DependsOn: r.DependsOn, Labels: r.Labels,
		Drift: deref(r.Drift, DriftCorrect), RestartPolicy: deref(r.RestartPolicy, "unless-stopped"),
	}
	if s.Name == "" {
		sink.service(s, "name", "name is required")
	}
	if s.Image == "" && r.Build == nil {
		sink.service(s, "image", "image is required")
	}
	s.Domains = convertDomains(r, s, sink)
	if len(s.Routes) == 0 {
		s.Routes = []string{"/"}
	}
	s.Command = r.Command
	if r.Command != nil && r.Cmd != nil {
		sink.service(s, "cmd", "set either command or cmd, not both")
	} else if r.Cmd != nil {
		s.Command = r.Cmd
	}
	if s.Env == nil {
		s.Env = map[string]string{}
	}
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Resources = convertResources(r.Resources, s, sink)
	for _, p := range r.ExtraPorts {
		pb, err := ParsePort(p)
		if err != nil {
			sink.service(s, "extra_ports", "extra_ports: %v", err)
			continue
		}
		s.ExtraPorts = append(s.ExtraPorts, pb)
	}
	convertProbes(r, s, sink)
	s.Deploy = convertDeploy(r.Deploy, s)
	s.PullPolicy = deref(r.PullPolicy, "")
	if r.Build != nil {
		s.PullPolicy = buildPullPolicy(s, sink)
	} else if s.PullPolicy == "" {
		s.PullPolicy = PullIfNotPresent
		if ImageIsMutable(s.Image) {
			s.PullPolicy = PullAlways
		}
	}
	convertOptionalTables(r, s, sink)
	convertJobKeys(r, s, sink)
	s.SecretRefs = collectSecretRefs(s, sink)
	validateService(s, sink)
	return s
}

// convertMounts applies the read_only default: a file of the checkout is
// read-only in the container unless read_only = false, a host path writable
// unless read_only = true (as before files were snapshotted, so a host mount's
// spec is unchanged).
func convertMounts(rs []rawMount) []Mount {
	var out []Mount
	for _, r := range rs {
		m := Mount{Source: r.Source, Target: r.Target}
		m.ReadOnly = deref(r.ReadOnly, m.FromCheckout())
		out = append(out, m)
	}
	return out
}

// convertProbes sets the readiness and liveness probes; a health path stands
// in for either one not given.
func convertProbes(r rawService, s *Service, sink errorSink) {
	s.Readiness = convertProbe(r.Readiness, "readiness", s, sink)
	s.Liveness = convertProbe(r.Liveness, "liveness", s, sink)
	if strings.HasPrefix(s.Health, "/") {
		if s.Readiness == nil {
			s.Readiness = defaultHTTPProbe(s.Health)
		}
		if s.Liveness == nil {
			s.Liveness = defaultHTTPProbe(s.Health)
		}
	}
}

// convertOptionalTables copies the tables that stay nil when absent.
func convertOptionalTables(r rawService, s *Service, sink errorSink) {
	if r.Placement != nil {
		s.Placement = &Placement{Node: r.Placement.Node, Labels: r.Placement.Labels}
	}
	if r.Watch != nil {
		s.Watch = &Watch{Repo: r.Watch.Repo, Branch: r.Watch.Branch}
	}
	if r.Backup != nil {
		s.Backup = &Backup{PreHook: preHookArgv(r.Backup.PreHook, s, sink)}
		s.Backup.SecretRefs = argvSecretRefs(s, "backup.pre_hook", s.Backup.PreHook, sink)
	}
	if r.Build != nil {
		s.Build = convertBuild(r.Build)
	}
}

func convertDomains(r rawService, s *Service, sink errorSink) []string {
	if r.Domain != nil && r.Domains != nil {
		sink.service(s, "domains", "set either domain or domains, not both")
	}
	if r.Domain != nil {
		return []string{*r.Domain}
	}
	return r.Domains
}

func convertResources(r *rawResources, s *Service, sink errorSink) Resources {
	var res Resources
	if r == nil {
		return res
	}
	if r.Memory != nil {
		res.Memory = *r.Memory
		n, err := ParseBytes(*r.Memory)
		switch {
		case err != nil:
			sink.service(s, "resources.memory", "resources.memory %q: %v", *r.Memory, err)
		case n < 6<<20:
			sink.service(s, "resources.memory", "resources.memory %q: Docker needs at least 6Mi", *r.Memory)
		}
		res.MemoryBytes = n
	}
	if r.CPU != nil {
		res.CPU = *r.CPU
		// Written as "not within" so that NaN, which compares false with
		// everything, is refused too; below 0.01 Docker refuses the value.
		if c := *r.CPU; !(c > 0 && c <= 1024) {
			sink.service(s, "resources.cpu", "resources.cpu %v: must be more than 0 and at most 1024 (cores, e.g. 0.5)", c)
		} else if c < 0.01 {
			sink.service(s, "resources.cpu", "resources.cpu %v: Docker needs at least 0.01", c)
		}
		res.NanoCPUs = int64(*r.CPU * 1e9)
	}
	return res
}

func defaultHTTPProbe(path string) *Probe {
	return &Probe{
		Type: ProbeHTTP, Path: path, Interval: 10 * time.Second, Timeout: 3 * time.Second,
		FailureThreshold: 3, ExpectMin: 200, ExpectMax: 399,
	}
}

func convertProbe(r *rawProbe, key string, s *Service, sink errorSink) *Probe {
	if r == nil {
		return nil
	}
	p := &Probe{
		Path: deref(r.Path, ""), Port: deref(r.Port, 0), Command: r.Command,
		Interval:         secs(deref(r.IntervalSecs, 10)),
		Timeout:          secs(deref(r.TimeoutSecs, 3)),
		FailureThreshold: deref(r.FailureThreshold, 3),
		InitialDelay:     secs(deref(r.InitialDelaySecs, 0)),
		ExpectMin:        200, ExpectMax: 399,
	}
	p.Type = deref(r.Type, "")
	if p.Type == "" {
		p.Type = ProbeHTTP
		if len(p.Command) > 0 && p.Path == "" {
			p.Type = ProbeExec
		}
	}
	if r.ExpectStatus.set {
		if r.ExpectStatus.err != nil {
			sink.service(s, key+".expect_status", "%s.expect_status: %v", key, r.ExpectStatus.err)
		} else {
			p.ExpectMin, p.ExpectMax = r.ExpectStatus.min, r.ExpectStatus.max
		}
	}
	for _, f := range []struct {
		name string
		v    *int
		min  int
	}{
		{"interval_secs", r.IntervalSecs, 1}, {"timeout_secs", r.TimeoutSecs, 1},
		{"failure_threshold", r.FailureThreshold, 1}, {"initial_delay_secs", r.InitialDelaySecs, 0},
	} {
		if f.v != nil && *f.v < f.min {
			sink.service(s, key+"."+f.name, "%s.%s = %d: must be at least %d", key, f.name, *f.v, f.min)
		}
	}
	return p
}

func convertDeploy(r rawDeploy, s *Service) Deploy {
	d := Deploy{
		Strategy:       deref(r.Strategy, ""),
		MaxSurge:       deref(r.MaxSurge, 1),
		Timeout:        secs(deref(r.TimeoutSecs, 300)),
		Drain:          secs(deref(r.DrainSecs, 10)),
		drainSet:       r.DrainSecs != nil,
		MinReady:       secs(deref(r.MinReadySecs, 2)),
		CanaryWeight:   deref(r.CanaryWeight, 20),
		CanaryReplicas: deref(r.CanaryReplicas, 1),
		AutoPromote:    deref(r.AutoPromote, len(r.Steps) > 0),
		Sticky:         deref(r.Sticky, false),
		Analysis:       Analysis{MaxErrorRate: 0.05, MinRequests: 20},
	}
	if d.Strategy == "" {
		d.Strategy = StrategyRolling
		// Named volumes and published host ports cannot be held by two
		// containers at once, so such services replace stop-first.
		if len(s.Volumes) > 0 || len(s.ExtraPorts) > 0 {
			d.Strategy = StrategyRecreate
		}
	}
	for _, st := range r.Steps {
		d.Steps = append(d.Steps, CanaryStep{Weight: st.Weight, Pause: secs(st.PauseSecs)})
	}
	if a := r.Analysis; a != nil {
		d.Analysis.MaxErrorRate = deref(a.MaxErrorRate, 0.05)
		d.Analysis.MaxP95 = time.Duration(deref(a.MaxP95Ms, 0)) * time.Millisecond
		d.Analysis.MinRequests = deref(a.MinRequests, 20)
	}
	return d
}

// collectSecretRefs gathers ${secrets.NAME} from env values and command
// arguments, reporting malformed references.
func collectSecretRefs(s *Service, sink errorSink) []string {
	seen := map[string]bool{}
	check := func(key, v string) {
		names, err := SecretRefs(v)
		if err != nil {
			sink.service(s, key, "%s: %v", key, err)
		}
		for _, n := range names {
			seen[n] = true
		}
	}
	for _, k := range sortedKeys(s.Env) {
		check("env."+k, s.Env[k])
	}
	for _, a := range s.Command {
		check("command", a)
	}
	for _, h := range s.hookList() {
		for _, a := range h.hook.Command {
			check("hooks."+h.name+".command", a)
		}
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// String names a service for messages: "project/name".
func (s *Service) String() string { return fmt.Sprintf("%s/%s", s.Project, s.Name) }

// argvSecretRefs are the ${secrets.NAME} names of argv, sorted.
func argvSecretRefs(s *Service, key string, argv []string, sink errorSink) []string {
	seen := map[string]bool{}
	for _, a := range argv {
		names, err := SecretRefs(a)
		if err != nil {
			sink.service(s, key, "%s: %v", key, err)
		}
		for _, n := range names {
			seen[n] = true
		}
	}
	return sortedKeys(seen)
}

// preHookArgv is backup.pre_hook as the argv of an exec: a string runs as
// `sh -c`, a list of strings as given.
func preHookArgv(v any, s *Service, sink errorSink) []string {
	switch h := v.(type) {
	case nil:
		return nil
	case string:
		if strings.TrimSpace(h) == "" {
			sink.service(s, "backup.pre_hook", "backup.pre_hook is empty: remove it or give a command")
			return nil
		}
		return []string{"sh", "-c", h}
	case []any:
		argv := make([]string, 0, len(h))
		for _, a := range h {
			str, ok := a.(string)
			if !ok {
				sink.service(s, "backup.pre_hook", "backup.pre_hook: a list must hold only strings")
				return nil
			}
			argv = append(argv, str)
		}
		if len(argv) == 0 || argv[0] == "" {
			sink.service(s, "backup.pre_hook", "backup.pre_hook = []: give the command to run")
			return nil
		}
		return argv
	}
	sink.service(s, "backup.pre_hook", "backup.pre_hook must be a string (run as `sh -c`) or a list of strings")
	return nil
}
