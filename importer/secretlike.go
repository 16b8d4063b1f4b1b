package importer

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strings"
)

// secretWords in a variable's name mark its value as a secret (PASS covers
// PASSWORD, PASSWD and RabbitMQ's DEFAULT_PASS).
var secretWords = []string{"PASS", "SECRET", "TOKEN", "KEY"}

// looksSecret reports whether an environment value should leave
// service.toml: by its name, or by the look of the value.
func looksSecret(name, value string) bool {
	if value == "" {
		return false
	}
	up := strings.ToUpper(name)
	for _, w := range secretWords {
		if strings.Contains(up, w) {
			return true
		}
	}
	return highEntropy(value)
}

var pathOrWords = regexp.MustCompile(`^[/.]|[ ]|^[a-z]+://`)

// highEntropy: at least 20 characters of letters, digits and a few signs,
// mixing classes, with a Shannon entropy of at least 4 bits a character —
// generated keys and tokens, not paths, URLs, sentences or version strings.
func highEntropy(v string) bool {
	if len(v) < 20 || pathOrWords.MatchString(v) {
		return false
	}
	var lower, upper, digit bool
	counts := map[rune]int{}
	for _, r := range v {
		switch {
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= '0' && r <= '9':
			digit = true
		case strings.ContainsRune("+/=_-", r):
		default:
			return false
		}
		counts[r]++
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit} {
		if b {
			classes++
		}
	}
	if classes < 2 {
		return false
	}
	var h float64
	n := float64(len(v))
	for _, c := range counts {
		p := float64(c) / n
		h -= p * math.Log2(p)
	}
	return h >= 4
}

// urlPassword returns the password of a URL's user info (postgres://u:p@h/db)
// and the URL with placeholder in its place, the rest byte for byte.
func urlPassword(v, placeholder string) (password, replaced string, ok bool) {
	i := strings.Index(v, "://")
	if i < 0 {
		return "", "", false
	}
	rest := v[i+3:]
	authority := rest
	if j := strings.IndexAny(rest, "/?#"); j >= 0 {
		authority = rest[:j]
	}
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return "", "", false
	}
	colon := strings.Index(authority[:at], ":")
	if colon < 0 || colon+1 == at {
		return "", "", false
	}
	p, err := url.PathUnescape(authority[colon+1 : at])
	if err != nil {
		return "", "", false
	}
	return p, v[:i+3] + authority[:colon+1] + placeholder + rest[at:], true
}

// secrets collects the values moved out of service.toml of one import.
type secretSet struct {
	values map[string]string
}

// ref stores value under a name derived from name (the service's name in
// front when another value took it) and returns the reference to write.
func (s *secretSet) ref(service, name, value string) string {
	if s.values == nil {
		s.values = map[string]string{}
	}
	// One value found twice (a password in the database's env and in the
	// app's URL) is one secret.
	for _, k := range sortedKeys(s.values) {
		if s.values[k] == value {
			return "${secrets." + k + "}"
		}
	}
	key := secretName(name)
	for i := 1; ; i++ {
		if old, ok := s.values[key]; !ok || old == value {
			break
		}
		key = secretName(service + "_" + name)
		if i > 1 {
			key += fmt.Sprintf("_%d", i)
		}
	}
	s.values[key] = value
	return "${secrets." + key + "}"
}

func secretName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	n := b.String()
	if n == "" || n[0] >= '0' && n[0] <= '9' {
		n = "S_" + n
	}
	return n
}

// env maps an environment to service.toml's: secret-looking values become
// references, a password in a URL too, and every other "${" is escaped.
func (s *secretSet) env(service string, in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	out := make(map[string]string, len(in))
	for k, v := range in {
		switch {
		case looksSecret(k, v):
			out[k] = s.ref(service, k, v)
		default:
			ref := "\x00"
			if p, replaced, ok := urlPassword(v, ref); ok {
				esc := escape(replaced)
				out[k] = strings.Replace(esc, ref, s.ref(service, k+"_PASSWORD", p), 1)
				continue
			}
			out[k] = escape(v)
		}
	}
	return out
}
