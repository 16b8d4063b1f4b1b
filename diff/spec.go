// Package diff compares the desired state of a checkout with the live
// containers of a host and returns the changes, as a pure function: no Docker,
// no I/O, so every action and field is unit-tested with plain values.
package diff

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"slices"

	"github.com/orca-sync/orca-sync/config"
)

// Spec is everything that shapes a container, and nothing else: replicas,
// domains, routes, probes and rollout settings change no container. Its hash
// is the container's identity (label orca.spec-hash); the spec itself is kept
// as a label too, so a plan can name the fields that changed without an
// inspect per container. It holds no secret value: env keeps the
// ${secrets.NAME} template, and Secrets a keyed hash of each value used.
type Spec struct {
	Image string `json:"image"`
	// ImageID is set when pull_policy is "always": a moved tag is a new spec.
	ImageID string            `json:"image_id,omitempty"`
	Command []string          `json:"command,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Secrets map[string]string `json:"secrets,omitempty"`
	Volumes []config.Volume   `json:"volumes,omitempty"`
	Mounts  []config.Mount    `json:"mounts,omitempty"`
	// MountHashes maps the target of each `./` mount to its content hash
	// (docs/guides/files.md): a changed file of the checkout is a new spec.
	MountHashes   map[string]string    `json:"mount_hashes,omitempty"`
	Ports         []config.PortBinding `json:"ports,omitempty"`
	Aliases       []string             `json:"aliases,omitempty"`
	Networks      []string             `json:"networks"`
	MemoryBytes   int64                `json:"memory,omitempty"`
	NanoCPUs      int64                `json:"nano_cpus,omitempty"`
	RestartPolicy string               `json:"restart_policy"`
	Labels        map[string]string    `json:"labels,omitempty"`
	// Build is set for a service with [service.build]: the app commit and
	// the build's settings, so a new commit or new args roll it.
	Build *BuildSpec `json:"build,omitempty"`
}

// BuildSpec is what a built image was made from.
type BuildSpec struct {
	Repo       string            `json:"repo"`
	Commit     string            `json:"commit"`
	Context    string            `json:"context"`
	Dockerfile string            `json:"dockerfile"`
	Args       map[string]string `json:"args,omitempty"`
}

// NetworkName is the Docker network of a project.
func NetworkName(project string) string { return "orca-" + project }

// InternalNetwork is the network shared by every service with internal = true.
const InternalNetwork = "orca-internal"

// Inputs are what a spec needs beyond service.toml: values resolved on the
// host or from the checkout. Each field enters the spec only when set, so a
// new input leaves the hash of every service that does not use it unchanged
// (an upgrade must not roll containers whose spec did not change).
type Inputs struct {
	// ImageID is the resolved image ID for pull_policy "always" ("" otherwise).
	ImageID string
	// SecretHashes maps each secret name the service uses to a keyed hash of
	// its value.
	SecretHashes map[string]string
	// BuildCommit is the app commit a service with build runs, as the last
	// remote lookup of its branch found it ("" when none has been found).
	BuildCommit string
	// MountHashes maps the target of each `./` mount to the content hash of
	// its source (files.Hasher).
	MountHashes map[string]string
}

// NewSpec derives the container spec of a service.
func NewSpec(s *config.Service, in Inputs) Spec {
	imageID, secretHashes := in.ImageID, in.SecretHashes
	spec := Spec{
		Image:         s.Image,
		Command:       s.Command,
		Env:           s.Env,
		Volumes:       s.Volumes,
		Ports:         s.ExtraPorts,
		Aliases:       aliases(s),
		Networks:      []string{NetworkName(s.Project)},
		MemoryBytes:   s.Resources.MemoryBytes,
		NanoCPUs:      s.Resources.NanoCPUs,
		RestartPolicy: s.RestartPolicy,
		Labels:        s.Labels,
	}
	if s.PullPolicy == config.PullAlways {
		spec.ImageID = imageID
	}
	if s.Internal {
		spec.Networks = append(spec.Networks, InternalNetwork)
	}
	if len(s.SecretRefs) > 0 {
		spec.Secrets = map[string]string{}
		for _, name := range s.SecretRefs {
			spec.Secrets[name] = secretHashes[name]
		}
	}
	// Mount host paths depend on where the checkout lives, not on what the
	// container sees; the spec keeps the source as written.
	mounts := make([]config.Mount, len(s.Mounts))
	for i, m := range s.Mounts {
		mounts[i] = config.Mount{Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
	}
	spec.Mounts = mounts
	if b := s.Build; b != nil {
		spec.Image = s.BuildTag(in.BuildCommit)
		spec.Build = &BuildSpec{Repo: b.Repo, Commit: in.BuildCommit, Context: b.Context, Dockerfile: b.Dockerfile, Args: b.Args}
	}
	for _, m := range s.Mounts {
		if h := in.MountHashes[m.Target]; h != "" && m.FromCheckout() {
			if spec.MountHashes == nil {
				spec.MountHashes = map[string]string{}
			}
			spec.MountHashes[m.Target] = h
		}
	}
	return spec
}

// aliases are the DNS names of a service on its networks: its name always,
// then its extra aliases, sorted and unique.
func aliases(s *config.Service) []string {
	return sortedUnique(append([]string{s.Name}, s.Aliases...))
}

func sortedUnique(vs []string) []string {
	out := slices.Clone(vs)
	slices.Sort(out)
	return slices.Compact(out)
}

// Hash is a stable digest of the spec (its JSON, whose map keys are sorted).
func (s Spec) Hash() string {
	sum := sha256.Sum256([]byte(s.Encode()))
	return hex.EncodeToString(sum[:])
}

// Encode renders the spec for the orca.spec label. Marshalling plain strings,
// numbers and maps of strings cannot fail.
func (s Spec) Encode() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// DecodeSpec parses an orca.spec label; ok is false for a missing or foreign one.
func DecodeSpec(label string) (Spec, bool) {
	var s Spec
	if label == "" || json.Unmarshal([]byte(label), &s) != nil {
		return Spec{}, false
	}
	return s, true
}
