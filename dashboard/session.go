package dashboard

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

// SessionCookie is the session cookie's name. serve's proxy never forwards
// it to a target (proxy.Options.DropCookie): browsers send a host's cookies
// to all its ports, apps on the dashboard's host name included.
const SessionCookie = "orca_session"

const (
	cookieName = SessionCookie
	// sessionTTL bounds a session whatever its use: sign in again after it.
	sessionTTL = 12 * time.Hour
	// maxSessions caps the store; the oldest session goes first.
	maxSessions = 1024
)

// session is one signed-in browser. It keeps the token it was opened with
// (in memory only), so that a token removed from cluster.toml ends its
// sessions at their next request and a role change applies at once.
type session struct {
	token   string
	csrf    string
	expires time.Time
	flash   string
}

// sessions is the server-side store, keyed by the sha256 of the cookie
// value so that a lookup's timing says nothing about a valid one.
type sessions struct {
	mu   sync.Mutex
	byID map[[sha256.Size]byte]*session
}

func newSessions() *sessions {
	return &sessions{byID: map[[sha256.Size]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// open makes a session for token and returns its cookie value.
func (s *sessions) open(token string, now time.Time) string {
	id := randomToken()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.byID {
		if now.After(v.expires) {
			delete(s.byID, k)
		}
	}
	for len(s.byID) >= maxSessions {
		var oldest [sha256.Size]byte
		var when time.Time
		for k, v := range s.byID {
			if when.IsZero() || v.expires.Before(when) {
				oldest, when = k, v.expires
			}
		}
		delete(s.byID, oldest)
	}
	s.byID[sha256.Sum256([]byte(id))] = &session{token: token, csrf: randomToken(), expires: now.Add(sessionTTL)}
	return id
}

// get returns a copy of the session of cookie value id, if it is live.
func (s *sessions) get(id string, now time.Time) (session, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := sha256.Sum256([]byte(id))
	v, ok := s.byID[k]
	if !ok {
		return session{}, false
	}
	if now.After(v.expires) {
		delete(s.byID, k)
		return session{}, false
	}
	return *v, true
}

// takeFlash returns and clears the message of the last action.
func (s *sessions) takeFlash(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.byID[sha256.Sum256([]byte(id))]
	if !ok {
		return ""
	}
	f := v.flash
	v.flash = ""
	return f
}

func (s *sessions) setFlash(id, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.byID[sha256.Sum256([]byte(id))]; ok {
		v.flash = msg
	}
}

func (s *sessions) close(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.byID, sha256.Sum256([]byte(id)))
}

// viewer is who asks: a session or a bearer token, and its role.
type viewer struct {
	role      string
	sessionID string // "" for a bearer token
	csrf      string
}

// canDeploy: a deployer or an admin may sync, promote, abort and redeploy.
func (v viewer) canDeploy() bool {
	return v.role == config.RoleDeployer || v.role == config.RoleAdmin
}

// who authenticates r by its bearer token, else by its session cookie.
func (d *Dashboard) who(r *http.Request) (viewer, bool) {
	if token, ok := bearerToken(r); ok {
		role, ok := d.opts.Authenticate(token)
		return viewer{role: role}, ok
	}
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return viewer{}, false
	}
	s, ok := d.sessions.get(c.Value, time.Now())
	if !ok {
		return viewer{}, false
	}
	role, ok := d.opts.Authenticate(s.token)
	if !ok {
		d.sessions.close(c.Value) // the token is gone from cluster.toml
		return viewer{}, false
	}
	return viewer{role: role, sessionID: c.Value, csrf: s.csrf}, true
}

func bearerToken(r *http.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func setSessionCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode,
		// Secure when the browser is on HTTPS: served over TLS here, or
		// behind a TLS-terminating proxy that says so. A forged header can
		// only make the cookie stricter.
		Secure: r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"),
	})
}

func (d *Dashboard) signinPage(w http.ResponseWriter, r *http.Request) {
	d.renderSignin(w, http.StatusOK, "")
}

// signin opens a session for a valid token of any role.
func (d *Dashboard) signin(w http.ResponseWriter, r *http.Request) {
	if !signinOrigin(r) {
		http.Error(w, "cross-origin sign-in refused", http.StatusForbidden)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	token := strings.TrimSpace(r.PostFormValue("token"))
	if token == "" {
		d.renderSignin(w, http.StatusUnauthorized, "Enter a token.")
		return
	}
	if _, ok := d.opts.Authenticate(token); !ok {
		d.renderSignin(w, http.StatusUnauthorized, "That token is not valid.")
		return
	}
	id := d.sessions.open(token, time.Now())
	setSessionCookie(w, r, id, int(sessionTTL/time.Second))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) signout(w http.ResponseWriter, r *http.Request, v viewer) {
	d.sessions.close(v.sessionID)
	setSessionCookie(w, r, "", -1)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// post wraps a form action: it needs a session, the session's CSRF token
// in the form and, with deploy, a deployer's role. A bearer token does not
// open the forms: scripts use the JSON API.
func (d *Dashboard) post(deploy bool, h func(http.ResponseWriter, *http.Request, viewer)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := d.who(r)
		switch {
		case !ok || v.sessionID == "":
			http.Error(w, "sign in first", http.StatusUnauthorized)
			return
		case !sameOrigin(r):
			http.Error(w, "cross-origin request refused", http.StatusForbidden)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		got := r.PostFormValue("csrf")
		if subtle.ConstantTimeCompare([]byte(got), []byte(v.csrf)) != 1 {
			http.Error(w, "missing or wrong CSRF token: reload the page", http.StatusForbidden)
			return
		}
		if deploy && !v.canDeploy() {
			http.Error(w, "role "+v.role+" may not do this; needs deployer", http.StatusForbidden)
			return
		}
		h(w, r, v)
	}
}

// signinOrigin is sameOrigin for the sign-in form, where a missing Origin is
// refused too unless the browser says the request is same-origin: a
// cross-site form must not sign a browser into the attacker's session
// (login CSRF).
func signinOrigin(r *http.Request) bool {
	if r.Header.Get("Origin") == "" {
		return r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	return sameOrigin(r)
}

// sameOrigin refuses a request whose Origin header (sent by browsers with
// every POST) names another host than the one it was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}
