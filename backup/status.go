package backup

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/notify"
)

// Metrics are the backup figures of /metrics (docs/reference/metrics.md).
type Metrics struct {
	lastSuccess *prometheus.GaugeVec
}

// NewMetrics registers the backup metrics on reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "orca_sync_backup_last_success_timestamp_seconds",
		Help: "Unix time of the last backup of a volume written to every target.",
	}, []string{"project", "volume"})}
	if reg != nil {
		reg.MustRegister(m.lastSuccess)
	}
	return m
}

// storeNamespace is where state.db keeps each volume's last backup.
const storeNamespace = "backup"

// statusMemory is each volume's last backup, kept in the store so status and
// the metric survive a restart.
type statusMemory struct {
	mu    sync.Mutex
	store Store
	log   *slog.Logger
	byKey map[string]wire.BackupStatus
}

func newStatusMemory(store Store, log *slog.Logger) *statusMemory {
	sm := &statusMemory{store: store, log: log, byKey: map[string]wire.BackupStatus{}}
	if store == nil {
		return sm
	}
	keys, err := store.Keys(storeNamespace)
	if err != nil {
		log.Warn("read the last backups", "error", err)
	}
	for _, k := range keys {
		var st wire.BackupStatus
		if ok, err := store.Get(storeNamespace, k, &st); err == nil && ok {
			sm.byKey[k] = st
		}
	}
	return sm
}

func (sm *statusMemory) put(st wire.BackupStatus) {
	key := st.Project + "/" + st.Service + "/" + st.Volume
	sm.mu.Lock()
	defer sm.mu.Unlock()
	if old, ok := sm.byKey[key]; ok && st.LastSuccess == nil {
		st.LastSuccess = old.LastSuccess
	}
	sm.byKey[key] = st
	if sm.store != nil {
		if err := sm.store.Put(storeNamespace, key, st); err != nil {
			sm.log.Warn("keep the last backup", "error", err)
		}
	}
}

// Status is the last backup of every volume, sorted, for status.
func (m *Manager) Status() []wire.BackupStatus {
	m.st.mu.Lock()
	defer m.st.mu.Unlock()
	out := make([]wire.BackupStatus, 0, len(m.st.byKey))
	for _, st := range m.st.byKey {
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		return a.Project+"/"+a.Service+"/"+a.Volume < b.Project+"/"+b.Service+"/"+b.Volume
	})
	return out
}

// ExportMetrics sets the metric from the remembered backups (at start).
func (m *Manager) ExportMetrics() {
	for _, st := range m.Status() {
		if st.LastSuccess != nil {
			m.opts.Metrics.lastSuccess.WithLabelValues(st.Project, st.Volume).Set(float64(st.LastSuccess.Unix()))
		}
	}
}

// recordService notes a failure before any volume was read (the hook, no
// container) on every volume of s.
func (m *Manager) recordService(s *config.Service, reason string) {
	now := m.opts.Now().UTC()
	for _, v := range s.Volumes {
		m.st.put(wire.BackupStatus{Project: s.Project, Service: s.Name, Volume: v.Source, LastAttempt: now, LastError: reason})
	}
}

// recordVolume notes one volume's outcome; a success sets the metric.
func (m *Manager) recordVolume(s *config.Service, vr wire.BackupVolumeReport) {
	now := m.opts.Now().UTC()
	st := wire.BackupStatus{Project: s.Project, Service: s.Name, Volume: vr.Volume, LastAttempt: now, LastError: volumeError(vr)}
	if st.LastError == "" {
		st.LastSuccess = &now
		m.opts.Metrics.lastSuccess.WithLabelValues(s.Project, vr.Volume).Set(float64(now.Unix()))
	}
	m.st.put(st)
}

// volumeError is why a volume's backup failed, "" if every target has it.
func volumeError(vr wire.BackupVolumeReport) string {
	if vr.Error != "" {
		return vr.Error
	}
	var errs []string
	for _, t := range vr.Targets {
		if t.Error != "" {
			errs = append(errs, t.Target+": "+t.Error)
		}
	}
	return strings.Join(errs, "; ")
}

// notifyFailed sends backup_failed for a service whose backup failed
// somewhere. Its key names where (hook, volume, target), not the message,
// so a target that stays down is reported once per repeat interval.
func (m *Manager) notifyFailed(d *config.Desired, sr wire.BackupServiceReport) {
	if m.opts.Notifier == nil {
		return
	}
	var reasons, where []string
	if sr.Error != "" {
		reasons, where = append(reasons, sr.Error), append(where, "service")
	}
	for _, v := range sr.Volumes {
		if e := volumeError(v); e != "" {
			reasons = append(reasons, fmt.Sprintf("volume %s: %s", v.Volume, e))
			for _, t := range v.Targets {
				if t.Error != "" {
					where = append(where, v.Volume+"@"+t.Target)
				}
			}
			if v.Error != "" {
				where = append(where, v.Volume)
			}
		}
	}
	key := sr.Project + "/" + sr.Service
	m.opts.Notifier.Notify(notify.Event{
		Kind: notify.BackupFailed, Cluster: d.Cluster.Name, Node: m.opts.Node, Services: []string{key},
		Reason: strings.Join(reasons, "; "), Time: m.opts.Now().UTC(), Key: key + "|" + strings.Join(where, ","),
		Details: map[string]any{"hook": sr.Hook},
	})
}
