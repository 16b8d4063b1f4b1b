package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/redact"
)

// ErrNoCheckout is returned before the first valid checkout.
var ErrNoCheckout = errors.New("no valid checkout yet")

// ErrUnknown is returned for a service or volume the deployed checkout does
// not declare, or an archive no target holds.
var ErrUnknown = errors.New("not found")

// hookTimeout bounds a pre_hook (a database dump can take long).
const hookTimeout = time.Hour

// hookOutputTail is how much of a hook's output a report keeps.
const hookOutputTail = 4 << 10

// roleIdle labels the never-started containers a backup or a restore makes.
const roleIdle = "backup"

// Run backs up the volumes of every service with named volumes, or of
// project (and service) when given, and returns when done. The report's OK
// is false if any archive was not written to every target; each failure
// also sends backup_failed. One service's or target's failure leaves the
// others to go on.
func (m *Manager) Run(ctx context.Context, project, service string) (wire.BackupReport, error) {
	d := m.opts.Desired()
	if d == nil {
		return wire.BackupReport{}, ErrNoCheckout
	}
	svcs, err := selectServices(d, project, service)
	if err != nil {
		return wire.BackupReport{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rep := wire.BackupReport{Started: m.opts.Now().UTC(), OK: true}
	targets, bad := targetsOf(d)
	live, err := m.opts.Runtime.List(ctx)
	if err != nil {
		return rep, fmt.Errorf("list containers: %w", err)
	}
	if err := m.cleanSpool(); err != nil {
		return rep, err
	}
	for _, s := range svcs {
		sr := m.backupService(ctx, d, s, live, targets, bad)
		if sr.Error != "" || !volumesOK(sr) {
			rep.OK = false
			m.notifyFailed(d, sr)
		}
		rep.Services = append(rep.Services, sr)
	}
	rep.Finished = m.opts.Now().UTC()
	m.log.Info("backup done", "services", len(rep.Services), "ok", rep.OK, "took", rep.Finished.Sub(rep.Started).Round(time.Millisecond))
	return rep, nil
}

// cleanSpool makes the spool directory, and empties it of what a crash
// left: backups and restores take turns, so nothing in it is in use.
func (m *Manager) cleanSpool() error {
	if err := os.MkdirAll(m.opts.SpoolDir, 0o700); err != nil {
		return fmt.Errorf("backup spool directory: %w", err)
	}
	entries, err := os.ReadDir(m.opts.SpoolDir)
	if err != nil {
		return fmt.Errorf("backup spool directory: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(m.opts.SpoolDir, e.Name())); err != nil {
			m.log.Warn("clean the backup spool", "error", err)
		}
	}
	return nil
}

// selectServices are the services with named volumes, all or the one asked.
func selectServices(d *config.Desired, project, service string) ([]*config.Service, error) {
	var out []*config.Service
	for _, s := range d.Services() {
		if len(s.Volumes) == 0 || (project != "" && s.Project != project) || (service != "" && s.Name != service) {
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 && project != "" {
		what := project
		if service != "" {
			what += "/" + service
		}
		return nil, fmt.Errorf("%s: no service with named volumes: %w", what, ErrUnknown)
	}
	return out, nil
}

func volumesOK(sr wire.BackupServiceReport) bool {
	for _, v := range sr.Volumes {
		if v.Error != "" {
			return false
		}
		for _, t := range v.Targets {
			if t.Error != "" {
				return false
			}
		}
	}
	return true
}

// backupService runs the pre_hook and archives each volume of s.
func (m *Manager) backupService(ctx context.Context, d *config.Desired, s *config.Service, live []diff.Container,
	targets []Target, bad map[string]error) wire.BackupServiceReport {
	sr := wire.BackupServiceReport{Project: s.Project, Service: s.Name}
	red := redactorOf(d, s)
	from, idle, err := m.sourceContainer(ctx, s, live)
	if err != nil {
		sr.Error = red.String(err.Error())
		m.recordService(s, sr.Error)
		return sr
	}
	if idle {
		defer m.removeIdle(ctx, from)
		sr.Hook = "no running container: archived through a created, never started container of its image, without the pre_hook"
	} else if err := m.runHook(ctx, d, s, from, red, &sr); err != nil {
		sr.Error = red.String(err.Error())
		m.recordService(s, sr.Error)
		return sr
	}
	for _, v := range s.Volumes {
		vr := m.backupVolume(ctx, s, v, from, targets, bad)
		vr.Error = red.String(vr.Error)
		for i := range vr.Targets {
			vr.Targets[i].Error = red.String(vr.Targets[i].Error)
		}
		m.recordVolume(s, vr)
		sr.Volumes = append(sr.Volumes, vr)
	}
	return sr
}

// sourceContainer is the first running replica of s, or else a created,
// never started container of its image (idle).
func (m *Manager) sourceContainer(ctx context.Context, s *config.Service, live []diff.Container) (id string, idle bool, err error) {
	mine := serviceContainers(s, live)
	for _, c := range mine {
		if c.State == "running" {
			return c.ID, false, nil
		}
	}
	image := s.Image
	if len(mine) > 0 && mine[0].ImageID != "" {
		image = mine[0].ImageID // the image it last ran, present here
	}
	id, err = m.opts.Runtime.CreateIdle(ctx, idleName(s, "backup"), image, roleIdle, s.Volumes)
	if err != nil {
		return "", false, fmt.Errorf("no running container, and none could be created to read the volumes: %w", err)
	}
	return id, true, nil
}

// serviceContainers are the containers of s, first replica first.
func serviceContainers(s *config.Service, live []diff.Container) []diff.Container {
	var mine []diff.Container
	for _, c := range live {
		if c.Project == s.Project && c.Service == s.Name {
			mine = append(mine, c)
		}
	}
	sort.SliceStable(mine, func(i, j int) bool {
		if mine[i].Index != mine[j].Index {
			return mine[i].Index < mine[j].Index
		}
		return mine[i].Name < mine[j].Name
	})
	return mine
}

func idleName(s *config.Service, what string) string {
	return s.Project + "-" + s.Name + "-" + what
}

func (m *Manager) removeIdle(ctx context.Context, id string) {
	if err := m.opts.Runtime.Remove(context.WithoutCancel(ctx), id); err != nil {
		m.log.Warn("remove the container made to reach volumes", "error", err)
	}
}

// runHook execs the pre_hook in container id; a non-zero exit fails the
// service's backup. Its output is kept redacted.
func (m *Manager) runHook(ctx context.Context, d *config.Desired, s *config.Service, id string,
	red *redact.Redactor, sr *wire.BackupServiceReport) error {
	if s.Backup == nil || len(s.Backup.PreHook) == 0 {
		sr.Hook = "none"
		return nil
	}
	argv, err := expandArgv(d, s, s.Backup.PreHook)
	if err != nil {
		return fmt.Errorf("pre_hook: %w", err)
	}
	sr.Hook = "ran in " + id[:min(12, len(id))]
	var out bytes.Buffer
	rw := red.Writer(&out)
	hctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	code, err := m.opts.Runtime.ExecOutput(hctx, id, argv, rw)
	_ = rw.Close() // writes out what it held back into out; cannot fail
	sr.HookOutput = tail(out.String(), hookOutputTail)
	if err != nil {
		return fmt.Errorf("pre_hook: %w", err)
	}
	if code != 0 {
		return fmt.Errorf("pre_hook exited %d: %s", code, lastLine(sr.HookOutput))
	}
	return nil
}

// expandArgv resolves ${secrets.NAME} in the hook's arguments.
func expandArgv(d *config.Desired, s *config.Service, argv []string) ([]string, error) {
	out := make([]string, len(argv))
	for i, a := range argv {
		v, err := config.Expand(a, func(name string) (string, error) {
			if d.Secrets == nil {
				return "", fmt.Errorf("secret %s: no secrets resolved", name)
			}
			return d.Secrets.Value(s.Project, name)
		})
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// redactorOf is the redactor of what a backup of s reports: the values of
// the service's secrets and of cluster.toml's (the S3 keys).
func redactorOf(d *config.Desired, s *config.Service) *redact.Redactor {
	values := map[string]string{}
	if d.Secrets == nil {
		return redact.New(values)
	}
	names := append([]string{}, s.SecretRefs...)
	if s.Backup != nil {
		names = append(names, s.Backup.SecretRefs...)
	}
	for _, name := range names {
		if v, err := d.Secrets.Value(s.Project, name); err == nil {
			values[name] = v
		}
	}
	// cluster.toml's references (the S3 keys) resolve in the cluster's
	// scope, also where the project has a secret of the same name.
	for _, name := range d.Cluster.SecretRefs {
		if v, err := d.Secrets.Value("", name); err == nil {
			values["cluster/"+name] = v
		}
	}
	return redact.New(values)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// backupVolume archives volume v of s, read from container id, to a spool
// file, then writes it to each target and applies retention there.
func (m *Manager) backupVolume(ctx context.Context, s *config.Service, v config.Volume, id string,
	targets []Target, bad map[string]error) wire.BackupVolumeReport {
	now := m.opts.Now()
	vr := wire.BackupVolumeReport{Volume: v.Source, Archive: ArchiveName(s.Project, v.Source, now)}
	spool, n, err := m.spool(ctx, id, v, vr.Archive)
	if spool != "" {
		defer os.Remove(spool)
	}
	if err != nil {
		vr.Error = fmt.Sprintf("read volume %s: %v", v.Source, err)
		return vr
	}
	vr.Files, vr.Bytes = n.files, n.bytes
	for name, err := range bad {
		vr.Targets = append(vr.Targets, wire.BackupTargetResult{Target: name, Error: err.Error()})
	}
	retention := 0
	if d := m.opts.Desired(); d != nil {
		retention = d.Cluster.Backup.RetentionDays
	}
	for _, t := range targets {
		vr.Targets = append(vr.Targets, m.writeTo(ctx, t, spool, vr.Archive, retention, now))
	}
	return vr
}

// spool writes the archive of v to a file of the spool directory.
func (m *Manager) spool(ctx context.Context, id string, v config.Volume, archive string) (string, counts, error) {
	f, err := os.CreateTemp(m.opts.SpoolDir, "."+archive+".*.partial")
	if err != nil {
		return "", counts{}, fmt.Errorf("spool: %w", err)
	}
	rc, err := m.opts.Runtime.CopyFrom(ctx, id, path.Clean(v.Target)+"/")
	if err != nil {
		f.Close()
		return f.Name(), counts{}, err
	}
	n, err := repack(f, rc)
	err = errors.Join(err, rc.Close(), f.Close())
	return f.Name(), n, err
}

// writeTo puts the spooled archive into t, then deletes what retention
// says is too old there.
func (m *Manager) writeTo(ctx context.Context, t Target, spool, name string, days int, now time.Time) wire.BackupTargetResult {
	res := wire.BackupTargetResult{Target: t.Name()}
	f, err := os.Open(spool)
	if err != nil {
		res.Error = err.Error()
		return res
	}
	defer f.Close()
	info, err := f.Stat()
	if err == nil {
		err = t.Put(ctx, name, f, info.Size())
	}
	if err != nil {
		res.Error = err.Error()
		return res
	}
	res.Removed, err = applyRetention(ctx, t, days, now)
	if err != nil {
		m.log.Warn("backup retention", "target", t.Name(), "error", err)
	}
	return res
}

// applyRetention deletes the archives of t dated more than days before now.
func applyRetention(ctx context.Context, t Target, days int, now time.Time) ([]string, error) {
	if days <= 0 {
		return nil, nil
	}
	objs, err := t.List(ctx)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, name := range expired(objs, days, now) {
		if err := t.Delete(ctx, name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}
