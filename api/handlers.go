package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/mux"
)

const (
	defaultHistoryLimit = 50
	defaultLogTail      = 100
)

func (s *Server) handleStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.backend.Status(r.Context())
	if err != nil {
		s.internalError(w, r, "status", err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Has("pr") {
		s.handlePRPlan(w, r)
		return
	}
	plan, err := s.backend.Plan(r.Context())
	if err != nil {
		s.internalError(w, r, "plan", err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

func (s *Server) handleDrift(w http.ResponseWriter, r *http.Request) {
	rep, err := s.backend.Drift(r.Context())
	if err != nil {
		s.internalError(w, r, "drift", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// handlePRPlan answers /plan?pr=N: the plan of pull request N's head
// against the live host, computed now.
func (s *Server) handlePRPlan(w http.ResponseWriter, r *http.Request) {
	n, err := intParam(r, "pr", 0, 1)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.prs == nil {
		writeError(w, http.StatusNotImplemented, "pull request plans are not available")
		return
	}
	plan, err := s.prs.PRPlan(r.Context(), n)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("pull request #%d: %v", n, err))
		return
	}
	if err != nil {
		s.internalError(w, r, "plan", err)
		return
	}
	writeJSON(w, http.StatusOK, plan)
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request) {
	limit, err := intParam(r, "limit", defaultHistoryLimit, 1)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := s.backend.History(r.Context(), limit)
	if err != nil {
		s.internalError(w, r, "history", err)
		return
	}
	writeJSON(w, http.StatusOK, recs)
}

func (s *Server) handleSync(w http.ResponseWriter, r *http.Request) {
	retry, err := boolParam(r, "retry")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	s.backend.Sync("api", retry)
	writeJSON(w, http.StatusAccepted, statusBody("sync signalled"))
}

func (s *Server) handleRedeploy(w http.ResponseWriter, r *http.Request) {
	project, name := serviceVars(r)
	if err := s.backend.Redeploy(r.Context(), project, name); err != nil {
		if errors.Is(err, ErrNotFound) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("service %s/%s not found", project, name))
			return
		}
		s.internalError(w, r, "redeploy", err)
		return
	}
	writeJSON(w, http.StatusAccepted, statusBody("redeploy signalled"))
}

// handleCanary answers promote and abort: 202 once the loop has the
// request, 404 for an unknown service, 409 when it runs no canary.
func (s *Server) handleCanary(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		project, name := serviceVars(r)
		err := s.backend.Canary(r.Context(), project, name, action)
		switch {
		case errors.Is(err, ErrNotFound):
			writeError(w, http.StatusNotFound, fmt.Sprintf("service %s/%s not found", project, name))
		case errors.Is(err, ErrNoCanary):
			writeError(w, http.StatusConflict, fmt.Sprintf("service %s/%s: no canary is running", project, name))
		case err != nil:
			s.internalError(w, r, action, err)
		default:
			writeJSON(w, http.StatusAccepted, statusBody(action+" signalled"))
		}
	}
}

// handleLogs streams text/plain, flushing after every write. The status line
// is only sent with the first byte, so that a service that does not exist can
// still be answered with a JSON 404.
func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	project, name := serviceVars(r)
	tail, err := intParam(r, "tail", defaultLogTail, 0)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	follow, err := boolParam(r, "follow")
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sw := &streamWriter{w: w, rc: http.NewResponseController(w)}
	if follow { // the stream lasts as long as the client wants it (Limits.WriteTimeout)
		if err := sw.rc.SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.log.WarnContext(r.Context(), "log stream deadlines", "error", err)
		}
	}
	err = s.backend.Logs(r.Context(), project, name, tail, follow, sw)
	switch {
	case err == nil:
		sw.begin() // an empty log is still a 200
	case sw.hasStarted():
		// Too late for a status code: the client sees the stream end.
		s.log.WarnContext(r.Context(), "log stream ended", "project", project, "service", name, "error", err)
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("service %s/%s not found", project, name))
	case r.Context().Err() != nil:
		// The client went away; nobody to answer.
	default:
		s.internalError(w, r, "logs", err)
	}
}

// streamWriter sends the text/plain headers on the first write and flushes
// after every write. It is safe for concurrent writers (several replicas).
type streamWriter struct {
	mu      sync.Mutex
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
}

func (sw *streamWriter) begin() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.start()
}

func (sw *streamWriter) hasStarted() bool {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	return sw.started
}

// start needs sw.mu.
func (sw *streamWriter) start() {
	if sw.started {
		return
	}
	sw.started = true
	h := sw.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	sw.w.WriteHeader(http.StatusOK)
}

func (sw *streamWriter) Write(p []byte) (int, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.start()
	n, err := sw.w.Write(p)
	if err != nil {
		return n, fmt.Errorf("write log stream: %w", err)
	}
	if err := sw.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return n, fmt.Errorf("flush log stream: %w", err)
	}
	return n, nil
}

func (s *Server) internalError(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.ErrorContext(r.Context(), "api "+what, "error", err)
	writeError(w, http.StatusInternalServerError, what+": "+err.Error())
}

func serviceVars(r *http.Request) (project, name string) {
	v := mux.Vars(r)
	return v["project"], v["name"]
}

// intParam parses the query parameter key, def when absent; below least is an error.
func intParam(r *http.Request, key string, def, least int) (int, error) {
	raw := r.URL.Query().Get(key)
	if raw == "" {
		return def, nil
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < least {
		return 0, fmt.Errorf("%s must be an integer of at least %d", key, least)
	}
	return n, nil
}

// boolParam parses the query parameter key, false when absent.
func boolParam(r *http.Request, key string) (bool, error) {
	raw := r.URL.Query().Get(key)
	if raw == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(raw)
	if err != nil {
		return false, fmt.Errorf("%s must be true or false", key)
	}
	return b, nil
}
