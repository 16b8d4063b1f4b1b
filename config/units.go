package config

import (
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// ParseBytes parses a size such as "512Mi", "1G" or "1048576". Ki/Mi/Gi are
// powers of 1024, K/M/G powers of 1000 (Kubernetes' convention, which the
// suffix list follows). NaN, infinities and anything below one byte are
// errors: every caller uses the size as a limit, and a limit of zero or less
// means none at all to Docker and the proxy (docs/reference/service-toml.md).
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, fmt.Errorf("not a size: use bytes or a number with Ki, Mi, Gi, K, M or G")
	}
	size := n * float64(mult)
	switch {
	case size < 1:
		return 0, fmt.Errorf("a size must be at least one byte")
	case size > 1<<62:
		return 0, fmt.Errorf("a size must be at most 4Ei")
	}
	return int64(size), nil
}

// ParsePort parses an extra_ports entry: "host:ctr", "ip:host:ctr", each with
// an optional "/tcp" or "/udp".
func ParsePort(s string) (PortBinding, error) {
	pb := PortBinding{Protocol: "tcp"}
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return pb, fmt.Errorf("%q: protocol must be tcp or udp", s)
		}
		pb.Protocol = proto
	}
	var hostPort, ctrPort string
	if i := strings.LastIndex(spec, ":"); i < 0 {
		return pb, fmt.Errorf("%q: expected \"host:container\" or \"ip:host:container\"", s)
	} else {
		ctrPort = spec[i+1:]
		hostPort = spec[:i]
	}
	if i := strings.LastIndex(hostPort, ":"); i >= 0 {
		pb.HostIP = strings.Trim(hostPort[:i], "[]")
		hostPort = hostPort[i+1:]
		if net.ParseIP(pb.HostIP) == nil {
			return pb, fmt.Errorf("%q: %q is not an IP address", s, pb.HostIP)
		}
	}
	var err error
	if pb.HostPort, err = parsePortNumber(hostPort); err != nil {
		return pb, fmt.Errorf("%q: host port %w", s, err)
	}
	if pb.ContainerPort, err = parsePortNumber(ctrPort); err != nil {
		return pb, fmt.Errorf("%q: container port %w", s, err)
	}
	return pb, nil
}

func parsePortNumber(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return n, nil
}

// String renders a binding the way extra_ports writes it.
func (p PortBinding) String() string {
	s := fmt.Sprintf("%d:%d/%s", p.HostPort, p.ContainerPort, p.Protocol)
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	return s
}

// ValidImage checks an image reference as Docker would parse it.
func ValidImage(image string) error {
	if image == "" {
		return fmt.Errorf("is empty")
	}
	if _, err := reference.ParseNormalizedNamed(image); err != nil {
		return fmt.Errorf("%q is not an image reference: %v", image, err)
	}
	return nil
}

// ImageIsMutable reports whether a reference names a moving tag: untagged or
// ":latest", and not pinned by digest.
func ImageIsMutable(image string) bool {
	ref, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return false
	}
	if _, ok := ref.(reference.Digested); ok {
		return false
	}
	tagged, ok := ref.(reference.Tagged)
	return !ok || tagged.Tag() == "latest"
}

// nameRE is the shape of project, service and alias names: they become parts
// of container names, network names and DNS labels.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

func validName(s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%q must match [a-z0-9][a-z0-9-]*", s)
	}
	if len(s) > 63 {
		return fmt.Errorf("%q is longer than 63 characters", s)
	}
	return nil
}

var hostnameRE = regexp.MustCompile(`^(\*\.)?([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)

func validHostname(s string) error {
	if len(s) > 253 || !hostnameRE.MatchString(s) {
		return fmt.Errorf("%q is not a host name (lower case, optionally \"*.\" in front)", s)
	}
	return nil
}

var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`)

var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
