package reconcile

import (
	"sync"

	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/source"
	"github.com/orca-sync/orca-sync/state"
)

// lastSync is what the syncs learnt, for status, the API, the prober and
// the canary driver.
type lastSync struct {
	mu       sync.Mutex
	commit   source.Commit
	desired  *config.Desired // last valid checkout
	record   state.SyncRecord
	fetchErr string
	errs     config.Errors    // validation errors of the newest commit
	live     []diff.Container // the newest container list
	services []diff.Service   // the desired services of the newest sync
	syncing  bool
	// recordedOK is the commit of the newest history record when that record
	// is a success; quiet syncs of it are not recorded again.
	recordedOK string
	// pulls are the refused pulls of the newest sync, by service key.
	pulls map[string]pullFailure
}

// lastView is a consistent copy of what status shows.
type lastView struct {
	commit   source.Commit
	desired  *config.Desired
	record   state.SyncRecord
	fetchErr string
	errs     config.Errors
	syncing  bool
}

func (s *lastSync) view() lastView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return lastView{commit: s.commit, desired: s.desired, record: s.record, fetchErr: s.fetchErr, errs: s.errs, syncing: s.syncing}
}

// desiredOf is the last valid checkout, or nil.
func (s *lastSync) desiredOf() *config.Desired {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.desired
}

func (s *lastSync) setSyncing(on bool) {
	s.mu.Lock()
	s.syncing = on
	s.mu.Unlock()
}

// fetched notes a fetch's outcome and returns the last good commit.
func (s *lastSync) fetched(err error) source.Commit {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetchErr = ""
	if err != nil {
		s.fetchErr = err.Error()
	}
	return s.commit
}

// loaded notes a load: its validation errors, and a valid checkout.
func (s *lastSync) loaded(d *config.Desired, commit source.Commit, errs config.Errors) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = errs
	if d != nil {
		s.desired, s.commit = d, commit
	}
}

// recovered installs the last valid commit found at start-up, unless a
// valid checkout came first.
func (s *lastSync) recovered(d *config.Desired, commit source.Commit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.desired == nil {
		s.desired, s.commit = d, commit
	}
}

// noteLive keeps the newest container list for the liveness prober.
func (s *lastSync) noteLive(live []diff.Container) {
	s.mu.Lock()
	s.live = live
	s.mu.Unlock()
}

func (s *lastSync) noteServices(svcs []diff.Service) {
	s.mu.Lock()
	s.services = svcs
	s.mu.Unlock()
}

// probeView is what the prober probes: the desired services and the live list.
func (s *lastSync) probeView() ([]diff.Service, []diff.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.services, s.live
}

// finished keeps a finished sync's record. quiet reports whether it is a
// no-change success of the commit the history already shows as synced, not
// written again; write, called outside the lock, saves it when it is not.
func (s *lastSync) finished(rec *state.SyncRecord, changed bool, write func() error) (quiet bool, err error) {
	s.mu.Lock()
	quiet = rec.ID == 0 && rec.Result == ResultSucceeded && !changed && s.recordedOK == rec.Commit
	s.mu.Unlock()
	if !quiet {
		err = write()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.record = *rec
	if !quiet {
		s.recordedOK = ""
		if rec.Result == ResultSucceeded {
			s.recordedOK = rec.Commit
		}
	}
	return quiet, err
}
