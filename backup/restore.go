package backup

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/config"
	"github.com/orca-sync/orca-sync/diff"
)

// List returns the archives of every target, newest first: all of them, or
// those of project's (and service's) volumes. A target that cannot be
// listed is named in Errors; the others are listed all the same.
func (m *Manager) List(ctx context.Context, project, service string) (wire.BackupList, error) {
	d := m.opts.Desired()
	if d == nil {
		return wire.BackupList{}, ErrNoCheckout
	}
	owners := volumeOwners(d)
	targets, bad := targetsOf(d)
	out := wire.BackupList{Archives: []wire.BackupArchive{}}
	for name, err := range bad {
		out.Errors = append(out.Errors, name+": "+err.Error())
	}
	for _, t := range targets {
		objs, err := t.List(ctx)
		if err != nil {
			out.Errors = append(out.Errors, err.Error())
			continue
		}
		for _, o := range objs {
			a, ok := describe(t, o, owners)
			if !ok || (project != "" && a.Project != project) || (service != "" && a.Service != service) {
				continue
			}
			out.Archives = append(out.Archives, a)
		}
	}
	sort.SliceStable(out.Archives, func(i, j int) bool { return out.Archives[i].Time.After(out.Archives[j].Time) })
	return out, nil
}

// owner is the service a volume belongs to.
type owner struct{ project, service, volume string }

// volumeOwners maps "<project>-<volume>" to the service declaring it.
func volumeOwners(d *config.Desired) map[string]owner {
	out := map[string]owner{}
	for _, s := range d.Services() {
		for _, v := range s.Volumes {
			out[s.Project+"-"+v.Source] = owner{s.Project, s.Name, v.Source}
		}
	}
	return out
}

func describe(t Target, o Object, owners map[string]owner) (wire.BackupArchive, bool) {
	ts, ok := archiveTime(o.Name)
	if !ok {
		return wire.BackupArchive{}, false
	}
	a := wire.BackupArchive{Target: t.Name(), Name: o.Name, Time: ts, Size: o.Size}
	prefix := o.Name[:len(o.Name)-len(timeFormat)-len(archiveExt)-1]
	if ow, ok := owners[prefix]; ok {
		a.Project, a.Service, a.Volume = ow.project, ow.service, ow.volume
	}
	return a, true
}

// RestoreRequest names what to restore: volume is the source as written in
// service.toml, archive a name List printed.
type RestoreRequest struct {
	Project, Service, Volume, Archive string
}

// Restore refills a volume of a service from an archive: it fetches and
// checks the archive first, then, while no sync runs, stops and removes the
// service's containers, empties the volume, unpacks the archive into it
// through a created, never started container, and signals a sync, which
// starts the service again (docs/guides/backups.md#restore).
func (m *Manager) Restore(ctx context.Context, req RestoreRequest) (wire.RestoreReport, error) {
	rep := wire.RestoreReport{Project: req.Project, Service: req.Service, Volume: req.Volume, Archive: req.Archive}
	d := m.opts.Desired()
	if d == nil {
		return rep, ErrNoCheckout
	}
	s, v, err := findVolume(d, req)
	if err != nil {
		return rep, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.cleanSpool(); err != nil {
		return rep, err
	}
	spool, target, n, err := m.fetch(ctx, d, req.Archive)
	if spool != "" {
		defer os.Remove(spool)
	}
	if err != nil {
		return rep, err
	}
	rep.Target, rep.Bytes = target, n.bytes
	err = m.opts.Exclusive(ctx, func(ctx context.Context) error {
		stopped, err := m.refill(ctx, s, v, spool)
		rep.Stopped = stopped
		return err
	})
	// Started again whether or not the refill went through: a failed one
	// leaves the volume as the error says, and the service runs on it.
	m.opts.Restored(s.Project, s.Name)
	if err != nil {
		return rep, fmt.Errorf("restore %s of %s/%s from %s: %w", v.Source, s.Project, s.Name, req.Archive, err)
	}
	m.log.Info("volume restored", "service", s.Key(), "volume", v.Source, "archive", req.Archive, "target", target)
	return rep, nil
}

func findVolume(d *config.Desired, req RestoreRequest) (*config.Service, config.Volume, error) {
	p := d.Project(req.Project)
	if p == nil || p.Service(req.Service) == nil {
		return nil, config.Volume{}, fmt.Errorf("%s/%s: no such service in the deployed checkout: %w", req.Project, req.Service, ErrUnknown)
	}
	s := p.Service(req.Service)
	for _, v := range s.Volumes {
		if v.Source == req.Volume {
			if ts, ok := archiveTime(req.Archive); !ok || req.Archive != ArchiveName(s.Project, v.Source, ts) {
				return nil, config.Volume{}, fmt.Errorf("archive %q is not one of volume %s of project %s (%s-%s-YYYYMMDDTHHMMSSZ.tar.gz): %w",
					req.Archive, v.Source, s.Project, s.Project, v.Source, ErrUnknown)
			}
			return s, v, nil
		}
	}
	return nil, config.Volume{}, fmt.Errorf("%s/%s has no volume with source %q: %w", req.Project, req.Service, req.Volume, ErrUnknown)
}

// fetch copies the archive from the first target holding it into the spool
// directory and checks it is a whole gzip'd tar.
func (m *Manager) fetch(ctx context.Context, d *config.Desired, archive string) (string, string, counts, error) {
	targets, _ := targetsOf(d)
	var errs []error
	for _, t := range targets {
		rc, err := t.Get(ctx, archive)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f, err := os.CreateTemp(m.opts.SpoolDir, ".restore-*.partial")
		if err != nil {
			rc.Close()
			return "", "", counts{}, fmt.Errorf("spool: %w", err)
		}
		n, err := verify(io.TeeReader(rc, f))
		err = errors.Join(err, rc.Close(), f.Close())
		if err != nil {
			return f.Name(), "", n, fmt.Errorf("archive %s from %s: %w", archive, t.Name(), err)
		}
		return f.Name(), t.Name(), n, nil
	}
	return "", "", counts{}, fmt.Errorf("archive %s: no target holds it (%v): %w", archive, errors.Join(errs...), ErrUnknown)
}

// refill stops and removes the containers of s, empties v and unpacks the
// spooled archive into it.
func (m *Manager) refill(ctx context.Context, s *config.Service, v config.Volume, spool string) ([]string, error) {
	live, err := m.opts.Runtime.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	mine := serviceContainers(s, live)
	image := s.Image
	var stopped []string
	for _, c := range mine {
		if err := m.stopAndRemove(ctx, c, s.StopGrace); err != nil {
			return stopped, err
		}
		stopped = append(stopped, c.Name)
		if c.ImageID != "" {
			image = c.ImageID
		}
	}
	if err := m.opts.Runtime.EmptyVolume(ctx, v.Source); err != nil {
		return stopped, err
	}
	id, err := m.opts.Runtime.CreateIdle(ctx, idleName(s, "restore"), image, roleIdle, []config.Volume{v})
	if err != nil {
		return stopped, err
	}
	defer m.removeIdle(ctx, id)
	f, err := os.Open(spool)
	if err != nil {
		return stopped, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return stopped, err
	}
	return stopped, m.opts.Runtime.CopyTo(ctx, id, v.Target, zr)
}

// stopAndRemove stops c with its service's stop_grace_secs
// (docs/reference/service-toml.md), as every other stop does.
func (m *Manager) stopAndRemove(ctx context.Context, c diff.Container, grace time.Duration) error {
	if err := m.opts.Runtime.Stop(ctx, c.ID, grace); err != nil {
		return err
	}
	return m.opts.Runtime.Remove(ctx, c.ID)
}
