package diff

import (
	"fmt"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/orca-sync/orca-sync/config"
)

// reservedLabelPrefix marks orca-sync's own labels, which a drift check
// leaves to the planner (they are the container's identity, not its config).
const reservedLabelPrefix = "orca."

// ConfigDrift lists what of a container's actual config (from an inspect)
// differs from the spec it was created from. From is the spec's value, To the
// container's. A value that involves a secret shows only as changed.
func ConfigDrift(spec *Spec, li *Live, expand func(string) (string, error)) []FieldChange {
	var fs []FieldChange
	scalar := func(field, want, got string) {
		if want != got {
			fs = append(fs, FieldChange{Field: field, From: want, To: got})
		}
	}
	scalar("image", spec.Image, li.Image)
	if spec.ImageID != "" && li.ImageID != "" {
		scalar("image_id", short(spec.ImageID), short(li.ImageID))
	}
	fs = append(fs, commandDrift(spec, li, expand)...)
	fs = append(fs, envDrift(spec, li, expand)...)
	scalar("volumes", jsonList(sortedStrings(spec.Volumes)), jsonList(sortedStrings(li.Volumes)))
	scalar("mounts", mountList(spec.Mounts, nil), mountList(li.Binds, spec.Mounts))
	scalar("extra_ports", jsonList(sortedStrings(normPorts(spec.Ports))), jsonList(sortedStrings(normPorts(li.Ports))))
	nets := slices.Sorted(maps.Keys(li.Networks))
	scalar("networks", list(sortedUnique(spec.Networks)), list(nets))
	for _, n := range spec.Networks {
		if got, ok := li.Networks[n]; ok {
			scalar("aliases."+n, list(sortedUnique(spec.Aliases)), list(sortedUnique(got)))
		}
	}
	scalar("resources.memory", bytesOrNone(spec.MemoryBytes), bytesOrNone(li.MemoryBytes))
	scalar("resources.cpu", cpusOrNone(spec.NanoCPUs), cpusOrNone(li.NanoCPUs))
	scalar("restart_policy", restartName(spec.RestartPolicy), restartName(li.RestartPolicy))
	fs = append(fs, labelDrift(spec, li)...)
	return fs
}

// commandDrift compares the command; an empty spec command means the
// image's. Arguments that use a secret are compared resolved and reported
// without values.
func commandDrift(spec *Spec, li *Live, expand func(string) (string, error)) []FieldChange {
	want := spec.Command
	if len(want) == 0 {
		want = li.ImageCommand
	}
	secret := false
	resolved := make([]string, len(want))
	for i, a := range want {
		resolved[i] = a
		if strings.Contains(a, "${secrets.") {
			secret = true
			if expand == nil {
				return nil // cannot compare without the secret's value
			}
			v, err := expand(a)
			if err != nil {
				return nil
			}
			resolved[i] = v
		}
	}
	if slices.Equal(resolved, li.Command) || (len(resolved) == 0 && len(li.Command) == 0) {
		return nil
	}
	if secret {
		return []FieldChange{{Field: "command", Secret: true}}
	}
	return []FieldChange{{Field: "command", From: list(want), To: list(li.Command)}}
}

// envDrift compares env keys. A key in the container but not in the spec is
// "added" unless the image sets it to that value; a secret-backed key never
// shows its value.
func envDrift(spec *Spec, li *Live, expand func(string) (string, error)) []FieldChange {
	var fs []FieldChange
	for _, k := range unionKeys(spec.Env, li.Env) {
		want, inSpec := spec.Env[k]
		got, inLive := li.Env[k]
		secret := strings.Contains(want, "${secrets.")
		switch {
		case !inSpec:
			if iv, ok := li.ImageEnv[k]; ok && iv == got {
				continue
			}
			fs = append(fs, FieldChange{Field: "env." + k, To: fmt.Sprintf("%q", got)})
		case !inLive:
			if secret {
				fs = append(fs, FieldChange{Field: "env." + k, Secret: true})
				continue
			}
			fs = append(fs, FieldChange{Field: "env." + k, From: fmt.Sprintf("%q", want)})
		case secret:
			if expand == nil {
				continue
			}
			if v, err := expand(want); err == nil && v != got {
				fs = append(fs, FieldChange{Field: "env." + k, Secret: true})
			}
		case literal(want) != got:
			fs = append(fs, FieldChange{Field: "env." + k, From: fmt.Sprintf("%q", want), To: fmt.Sprintf("%q", got)})
		}
	}
	return fs
}

// labelDrift compares the user labels: orca's own are left out, and so are
// those the image sets (Docker copies them onto the container).
func labelDrift(spec *Spec, li *Live) []FieldChange {
	var fs []FieldChange
	for _, k := range unionKeys(spec.Labels, li.Labels) {
		if strings.HasPrefix(k, reservedLabelPrefix) {
			continue
		}
		want, inSpec := spec.Labels[k]
		got, inLive := li.Labels[k]
		if !inSpec {
			if iv, ok := li.ImageLabels[k]; ok && iv == got {
				continue
			}
		}
		if inSpec && inLive && want == got {
			continue
		}
		fs = append(fs, FieldChange{Field: "labels." + k, From: quote(spec.Labels, k), To: quote(li.Labels, k)})
	}
	return fs
}

// mountList renders bind mounts by what the container sees: target and
// mode, plus the source when the spec gives an absolute host path (a relative
// one resolves against wherever the checkout lives). For live binds, spec is
// the spec's mounts, which say which sources to show.
func mountList(ms []config.Mount, spec []config.Mount) string {
	relative := map[string]bool{}
	for _, m := range spec {
		if !path.IsAbs(m.Source) {
			relative[m.Target] = true
		}
	}
	s := make([]string, 0, len(ms))
	for _, m := range ms {
		src := m.Source + ":"
		if (spec == nil && !path.IsAbs(m.Source)) || relative[m.Target] {
			src = ""
		}
		mode := ""
		if m.ReadOnly {
			mode = ":ro"
		}
		s = append(s, src+m.Target+mode)
	}
	slices.Sort(s)
	return list(s)
}

func normPorts(ps []config.PortBinding) []config.PortBinding {
	out := make([]config.PortBinding, len(ps))
	for i, p := range ps {
		if p.Protocol == "" {
			p.Protocol = "tcp"
		}
		// Docker reads a host IP back parsed: "::" and "0.0.0.0" as none,
		// IPv6 in its canonical form.
		if ip, err := netip.ParseAddr(p.HostIP); err == nil {
			p.HostIP = ip.String()
			if ip.IsUnspecified() {
				p.HostIP = ""
			}
		}
		out[i] = p
	}
	return out
}

func sortedStrings[T fmt.Stringer](vs []T) []T {
	out := slices.Clone(vs)
	slices.SortFunc(out, func(a, b T) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// restartName normalises a restart policy: "" is Docker's "no", and
// "on-failure:0" is "on-failure".
func restartName(p string) string {
	switch {
	case p == "":
		return "no"
	case p == "on-failure:0":
		return "on-failure"
	}
	return p
}

// literal is a value without secret references as the container gets it
// ($${ unescaped).
func literal(v string) string {
	out, err := config.Expand(v, func(string) (string, error) { return "", fmt.Errorf("no secrets here") })
	if err != nil {
		return v
	}
	return out
}
