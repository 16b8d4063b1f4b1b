package proxy

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
)

// stickySigner signs the sticky canary cookie (docs/guides/rollouts-and-canary.md,
// sticky sessions). The cookie's value is the side and an HMAC-SHA256 of the
// service and the side, so a client cannot choose the canary (or the stable
// set) by writing the cookie itself: a value without a valid signature is no
// cookie, and the split assigns the client afresh.
type stickySigner struct{ key []byte }

// newStickySigner signs with key, or with a random key of its own when none
// is given (cookies then last as long as the process).
func newStickySigner(key []byte) *stickySigner {
	if len(key) == 0 {
		key = make([]byte, 32)
		rand.Read(key) // never fails (crypto/rand)
	}
	return &stickySigner{key: append([]byte(nil), key...)}
}

// value is the signed cookie value naming role for svc.
func (ss *stickySigner) value(svc *Service, role string) string {
	m := hmac.New(sha256.New, ss.key)
	m.Write([]byte(svc.key()))
	m.Write([]byte{0})
	m.Write([]byte(role))
	return role + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// role returns the side a cookie value names when its signature is valid,
// else "".
func (ss *stickySigner) role(svc *Service, v string) string {
	role, _, ok := strings.Cut(v, ".")
	if !ok || role == "" || !hmac.Equal([]byte(ss.value(svc, role)), []byte(v)) {
		return ""
	}
	return role
}

// preferredRole is the side the client's signed sticky cookie names, or "".
func (ss *stickySigner) preferredRole(svc *Service, r *http.Request) string {
	if !svc.Sticky {
		return ""
	}
	c, err := r.Cookie(svc.cookieName())
	if err != nil {
		return ""
	}
	return ss.role(svc, c.Value)
}

// stick sets the sticky cookie when a split chose a side the client's cookie
// does not name yet (a session cookie: the side lasts as long as the browser).
func (ss *stickySigner) stick(w http.ResponseWriter, svc *Service, prefer string, t *Target, split bool) {
	if !svc.Sticky {
		return
	}
	if !split || prefer == t.Role { // a retry may have picked another side
		w.Header().Del("Set-Cookie")
		return
	}
	w.Header().Set("Set-Cookie", (&http.Cookie{Name: svc.cookieName(), Value: ss.value(svc, t.Role), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String())
}

// pinned reports whether a request went where the client's sticky cookie
// said rather than where the split put it. Such requests are left out of
// the figures the canary analysis reads: a cookie, once got, can be replayed
// at will, so counting them would let a client feed either side requests of
// its choosing.
func pinned(prefer string, split bool) bool { return split && prefer != "" }
