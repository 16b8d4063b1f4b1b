package backup

import (
	"context"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

// recheck is how often the schedule re-reads [backup]: a commit that changes
// it takes effect within this time, without a restart.
const recheck = 30 * time.Second

// RunSchedule runs a backup of every service at each tick of [backup]
// schedule while enabled = true, until ctx ends. A tick missed while a
// backup still runs (or orca-sync was down) is not made up.
func (m *Manager) RunSchedule(ctx context.Context) {
	var expr string
	var next time.Time
	for {
		cfg := m.config()
		if !cfg.Enabled || cfg.Schedule == "" {
			expr, next = "", time.Time{}
		} else if cfg.Schedule != expr {
			sched, err := config.ParseSchedule(cfg.Schedule)
			if err != nil { // validation refuses it: never here
				m.log.Error("backup schedule", "error", err)
				expr, next = "", time.Time{}
			} else {
				expr, next = cfg.Schedule, sched.Next(m.opts.Now())
				m.log.Info("backups scheduled", "schedule", expr, "next", next)
			}
		}
		wait := recheck
		if !next.IsZero() {
			wait = min(wait, time.Until(next))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		if !next.IsZero() && !m.opts.Now().Before(next) {
			if _, err := m.Run(ctx, "", ""); err != nil {
				m.log.Error("scheduled backup", "error", err)
			}
			if sched, err := config.ParseSchedule(expr); err == nil {
				next = sched.Next(m.opts.Now())
			}
		}
	}
}

func (m *Manager) config() config.BackupConfig {
	if d := m.opts.Desired(); d != nil {
		return d.Cluster.Backup
	}
	return config.BackupConfig{}
}
