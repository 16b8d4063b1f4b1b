package api

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// ErrNotJob is returned by Backend.RunJob for a service without a
// schedule; ErrJobRunning for a job whose previous run still runs.
var (
	ErrNotJob     = errors.New("not a scheduled job")
	ErrJobRunning = errors.New("the previous run still runs")
)

// handleRun runs a scheduled job now (docs/reference/api.md#run). It answers
// once the run ended, or with ?detach=true once its container runs: a run
// takes as long as the job, so the write deadline is lifted.
func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	project, name := serviceVars(r)
	detach := false
	if v := r.URL.Query().Get("detach"); v != "" {
		var err error
		if detach, err = strconv.ParseBool(v); err != nil {
			writeError(w, http.StatusBadRequest, "detach: want true or false")
			return
		}
	}
	if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.internalError(w, r, "run", err)
		return
	}
	run, err := s.backend.RunJob(r.Context(), project, name, detach)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, fmt.Sprintf("service %s/%s not found", project, name))
	case errors.Is(err, ErrNotJob):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("service %s/%s has no schedule: only a job runs on demand", project, name))
	case errors.Is(err, ErrJobRunning):
		writeError(w, http.StatusConflict, fmt.Sprintf("service %s/%s: its previous run still runs", project, name))
	case err != nil:
		s.internalError(w, r, "run", err)
	case run.Running:
		writeJSON(w, http.StatusAccepted, run)
	default:
		writeJSON(w, http.StatusOK, run)
	}
}
