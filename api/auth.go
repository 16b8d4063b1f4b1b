package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"

	"github.com/orca-sync/orca-sync/config"
)

// role is a token's privilege; higher includes lower.
type role int

const (
	roleNone role = iota
	roleViewer
	roleDeployer
	roleAdmin
)

func parseRole(name string) role {
	switch name {
	case config.RoleViewer:
		return roleViewer
	case config.RoleDeployer:
		return roleDeployer
	case config.RoleAdmin:
		return roleAdmin
	default:
		return roleNone
	}
}

func (r role) String() string {
	switch r {
	case roleViewer:
		return config.RoleViewer
	case roleDeployer:
		return config.RoleDeployer
	case roleAdmin:
		return config.RoleAdmin
	default:
		return "none"
	}
}

const sha256Prefix = "sha256:"

// bearerToken returns the token of an "Authorization: Bearer <token>" header.
func bearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// authenticate returns the highest role of every token matching presented,
// and whether any matched. Every configured token is compared, in constant
// time, whatever matched before.
func (s *Server) authenticate(presented string) (role, bool) {
	sum := sha256.Sum256([]byte(presented))
	best, matched := roleNone, false
	consider := func(ok bool, r role) {
		if ok {
			matched = true
			best = max(best, r)
		}
	}
	if s.adminToken != "" {
		consider(equalSum(sum, sha256.Sum256([]byte(s.adminToken))), roleAdmin)
	}
	for _, t := range s.config.Tokens() {
		consider(tokenMatches(t.Value, sum), parseRole(t.Role))
	}
	return best, matched
}

// tokenMatches compares the sha256 sum of a presented token with a configured
// value: plain (hashed here so both sides have equal length) or "sha256:<hex>".
func tokenMatches(value string, sum [sha256.Size]byte) bool {
	if value == "" {
		return false
	}
	if hexSum, ok := strings.CutPrefix(value, sha256Prefix); ok {
		want, err := hex.DecodeString(strings.TrimSpace(hexSum))
		if err != nil || len(want) != sha256.Size {
			return false
		}
		return subtle.ConstantTimeCompare(sum[:], want) == 1
	}
	return equalSum(sum, sha256.Sum256([]byte(value)))
}

func equalSum(a, b [sha256.Size]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// require wraps h so that it only runs for a bearer token of at least need.
func (s *Server) require(need role, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearerToken(r)
		if !ok {
			unauthorized(w, "missing bearer token")
			return
		}
		got, matched := s.authenticate(token)
		if !matched {
			unauthorized(w, "invalid token")
			return
		}
		if got < need {
			writeError(w, http.StatusForbidden, "role "+got.String()+" may not do this; needs "+need.String())
			return
		}
		h(w, r)
	})
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", "Bearer")
	writeError(w, http.StatusUnauthorized, msg)
}
