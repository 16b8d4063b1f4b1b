package config

import (
	"fmt"
	"strings"
)

// A template is a string that may hold ${secrets.NAME} references; "$${" is a
// literal "${". Any other "${" is an error rather than passed through, so a
// typo such as ${secret.X} or ${secrets.X never reaches a container as text.

// SecretRefs returns the names referenced by s, in order of appearance.
func SecretRefs(s string) ([]string, error) {
	var names []string
	_, err := expand(s, func(name string) (string, error) {
		names = append(names, name)
		return "", nil
	})
	return names, err
}

// Expand replaces every ${secrets.NAME} of s with lookup(NAME) and every
// "$${" with "${".
func Expand(s string, lookup func(name string) (string, error)) (string, error) {
	return expand(s, lookup)
}

func expand(s string, lookup func(string) (string, error)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String(), nil
		}
		if i > 0 && s[i-1] == '$' {
			b.WriteString(s[:i-1])
			b.WriteString("${")
			s = s[i+2:]
			continue
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		end := strings.IndexByte(rest, '}')
		if end < 0 {
			return "", fmt.Errorf("unclosed \"${\" (write \"$${\" for a literal \"${\")")
		}
		ref := rest[:end]
		name, ok := strings.CutPrefix(ref, "secrets.")
		if !ok || !envNameRE.MatchString(name) || strings.ContainsAny(name, ".-") {
			return "", fmt.Errorf("\"${%s}\" is not a secret reference: use ${secrets.NAME} (NAME of letters, digits and _), or \"$${\" for a literal \"${\"", ref)
		}
		v, err := lookup(name)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
		s = rest[end+1:]
	}
}
