package api

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
)

// Backups runs, lists and restores volume backups. Optional: without it
// /api/v1/backups answers 501.
type Backups interface {
	// Run backs up every service with volumes, or project's, or project/
	// service's, and returns when done; ErrNotFound for an unknown one.
	Run(ctx context.Context, project, service string) (wire.BackupReport, error)
	List(ctx context.Context, project, service string) (wire.BackupList, error)
	// Restore refills volume of project/service from archive; ErrNotFound
	// for an unknown service, volume or archive.
	Restore(ctx context.Context, project, service, volume, archive string) (wire.RestoreReport, error)
}

// serviceParam reads ?service=P or ?service=P/S.
func serviceParam(r *http.Request) (project, service string) {
	project, service, _ = strings.Cut(r.URL.Query().Get("service"), "/")
	return project, service
}

// unlimited lifts the server's write timeout: a backup or a restore of a
// large volume takes as long as it takes, and the client waits for it.
func unlimited(w http.ResponseWriter) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Time{})
}

func (s *Server) handleBackupList(w http.ResponseWriter, r *http.Request) {
	if s.backups == nil {
		writeError(w, http.StatusNotImplemented, "backups are not available")
		return
	}
	project, service := serviceParam(r)
	list, err := s.backups.List(r.Context(), project, service)
	if err != nil {
		s.backupError(w, r, "list backups", err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// handleBackupRun answers once the backup is done, with its report: ok is
// false when any archive was not written to every target.
func (s *Server) handleBackupRun(w http.ResponseWriter, r *http.Request) {
	if s.backups == nil {
		writeError(w, http.StatusNotImplemented, "backups are not available")
		return
	}
	unlimited(w)
	project, service := serviceParam(r)
	rep, err := s.backups.Run(r.Context(), project, service)
	if err != nil {
		s.backupError(w, r, "backup", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) handleBackupRestore(w http.ResponseWriter, r *http.Request) {
	if s.backups == nil {
		writeError(w, http.StatusNotImplemented, "backups are not available")
		return
	}
	unlimited(w)
	project, service := serviceParam(r)
	q := r.URL.Query()
	volume, archive := q.Get("volume"), q.Get("archive")
	if project == "" || service == "" || volume == "" || archive == "" {
		writeError(w, http.StatusBadRequest, "restore needs service=P/S, volume and archive")
		return
	}
	rep, err := s.backups.Restore(r.Context(), project, service, volume, archive)
	if err != nil {
		s.backupError(w, r, "restore", err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) backupError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	s.internalError(w, r, what, err)
}
