package diff

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/orca-sync/orca-sync/config"
)

// FieldChange is one changed field of a container spec. A field that involves
// a secret shows only as changed: From and To are empty and Secret is set.
type FieldChange struct {
	Field  string `json:"field"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
	Secret bool   `json:"secret,omitempty"`
	// Detail says what changed when From and To do not (a mounted file's
	// content: "content changed (services/shop/config/app.yaml)").
	Detail string `json:"detail,omitempty"`
}

func (f FieldChange) String() string {
	switch {
	case f.Detail != "":
		return f.Field + ": " + f.Detail
	case f.Secret:
		return f.Field + " changed (secret)"
	case f.From == "":
		return fmt.Sprintf("%s: + %s", f.Field, f.To)
	case f.To == "":
		return fmt.Sprintf("%s: - %s", f.Field, f.From)
	}
	return fmt.Sprintf("%s: %s -> %s", f.Field, f.From, f.To)
}

// FieldChanges lists what differs from old to new. An old container without
// a readable spec label shows as one "spec" change.
func FieldChanges(old, new *Spec) []FieldChange {
	if old == nil {
		return []FieldChange{{Field: "spec", From: "(unknown)", To: "(this commit)"}}
	}
	var fs []FieldChange
	scalar := func(field, a, b string) {
		if a != b {
			fs = append(fs, FieldChange{Field: field, From: a, To: b})
		}
	}
	if old.Build == nil || new.Build == nil { // with both, the tag is the commit: build says it
		scalar("image", old.Image, new.Image)
	}
	fs = append(fs, buildChanges(old.Build, new.Build)...)
	if old.Image == new.Image {
		scalar("image_id", short(old.ImageID), short(new.ImageID))
	}
	scalar("command", list(old.Command), list(new.Command))
	fs = append(fs, envChanges(old, new)...)
	for _, name := range unionKeys(old.Secrets, new.Secrets) {
		if old.Secrets[name] != new.Secrets[name] {
			fs = append(fs, FieldChange{Field: "secrets." + name, Secret: true})
		}
	}
	scalar("volumes", jsonList(old.Volumes), jsonList(new.Volumes))
	scalar("mounts", jsonList(old.Mounts), jsonList(new.Mounts))
	fs = append(fs, mountContentChanges(old, new)...)
	scalar("extra_ports", jsonList(old.Ports), jsonList(new.Ports))
	scalar("aliases", list(old.Aliases), list(new.Aliases))
	scalar("networks", list(old.Networks), list(new.Networks))
	scalar("resources.memory", bytesOrNone(old.MemoryBytes), bytesOrNone(new.MemoryBytes))
	scalar("resources.cpu", cpusOrNone(old.NanoCPUs), cpusOrNone(new.NanoCPUs))
	scalar("restart_policy", old.RestartPolicy, new.RestartPolicy)
	for _, k := range unionKeys(old.Labels, new.Labels) {
		scalar("labels."+k, quote(old.Labels, k), quote(new.Labels, k))
	}
	return fs
}

// buildChanges compares what two built images were made from; a new commit
// reads "build: <repo>@<old12> -> <new12>" (docs/reference/cli.md#orca-sync-plan).
func buildChanges(old, new *BuildSpec) []FieldChange {
	var fs []FieldChange
	switch {
	case old == nil && new == nil:
		return nil
	case old == nil:
		return []FieldChange{{Field: "build", To: new.Repo + "@" + short(new.Commit)}}
	case new == nil:
		return []FieldChange{{Field: "build", From: old.Repo + "@" + short(old.Commit)}}
	}
	if old.Repo != new.Repo {
		fs = append(fs, FieldChange{Field: "build", From: old.Repo + "@" + short(old.Commit), To: new.Repo + "@" + short(new.Commit)})
	} else if old.Commit != new.Commit {
		fs = append(fs, FieldChange{Field: "build", From: old.Repo + "@" + short(old.Commit), To: short(new.Commit)})
	}
	scalar := func(field, a, b string) {
		if a != b {
			fs = append(fs, FieldChange{Field: field, From: a, To: b})
		}
	}
	scalar("build.context", old.Context, new.Context)
	scalar("build.dockerfile", old.Dockerfile, new.Dockerfile)
	for _, k := range unionKeys(old.Args, new.Args) {
		scalar("build.args."+k, quote(old.Args, k), quote(new.Args, k))
	}
	return fs
}

// mountContentChanges names each `./` mount whose content changed, by its
// target and source path in the checkout. A mount new to the spec shows in
// "mounts" already.
func mountContentChanges(old, new *Spec) []FieldChange {
	var fs []FieldChange
	for _, m := range new.Mounts {
		h, ok := new.MountHashes[m.Target]
		if !ok || !hasTarget(old.Mounts, m.Target) || old.MountHashes[m.Target] == h {
			continue
		}
		detail := "content changed"
		if _, had := old.MountHashes[m.Target]; !had {
			detail = "content now from a snapshot" // made before files were snapshotted
		}
		fs = append(fs, FieldChange{Field: "mounts[" + m.Target + "]", From: short(old.MountHashes[m.Target]), To: short(h),
			Detail: fmt.Sprintf("%s (%s)", detail, strings.TrimPrefix(path.Clean(m.Source), "./"))})
	}
	return fs
}

func hasTarget(ms []config.Mount, target string) bool {
	for _, m := range ms {
		if m.Target == target {
			return true
		}
	}
	return false
}

// envChanges compares env values. A value that references a secret shows
// only as changed, whatever changed in it.
func envChanges(old, new *Spec) []FieldChange {
	var fs []FieldChange
	for _, k := range unionKeys(old.Env, new.Env) {
		a, inOld := old.Env[k]
		b, inNew := new.Env[k]
		if inOld && inNew && a == b {
			continue
		}
		if strings.Contains(a, "${secrets.") || strings.Contains(b, "${secrets.") {
			fs = append(fs, FieldChange{Field: "env." + k, Secret: true})
			continue
		}
		fs = append(fs, FieldChange{Field: "env." + k, From: quote(old.Env, k), To: quote(new.Env, k)})
	}
	return fs
}

func quote(m map[string]string, k string) string {
	v, ok := m[k]
	if !ok {
		return ""
	}
	return fmt.Sprintf("%q", v)
}

func unionKeys(a, b map[string]string) []string {
	return sortedUnique(append(slices.Collect(maps.Keys(a)), slices.Collect(maps.Keys(b))...))
}

func list(vs []string) string {
	if len(vs) == 0 {
		return "[]"
	}
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func jsonList[T fmt.Stringer](vs []T) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = v.String()
	}
	return list(s)
}

func short(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func bytesOrNone(n int64) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("%d bytes", n)
}

func cpusOrNone(n int64) string {
	if n == 0 {
		return "none"
	}
	return fmt.Sprintf("%g", float64(n)/1e9)
}

// withDigest shows a moved registry digest in place of the image ID line
// (which names the same move less recognisably), or beside a changed image.
func withDigest(fs []FieldChange, old, new string) []FieldChange {
	if old == "" || new == "" || old == new {
		return fs
	}
	out := make([]FieldChange, 0, len(fs)+1)
	for _, f := range fs {
		if f.Field != "image_id" {
			out = append(out, f)
		}
		if f.Field == "image" || f.Field == "image_id" {
			out = append(out, FieldChange{Field: "digest", From: shortDigest(old), To: shortDigest(new)})
		}
	}
	return out
}

// shortDigest is "sha256:" and the first 12 hex digits.
func shortDigest(d string) string { return "sha256:" + short(d) }
