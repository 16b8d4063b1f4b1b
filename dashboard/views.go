package dashboard

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
	"github.com/orca-sync/orca-sync/diff"
	"github.com/orca-sync/orca-sync/state"
)

const (
	historyLimit  = 50
	rolloutsShown = 10
	logTail       = 100
	maxLogBytes   = 256 << 10
)

// overview is the overview's data.
type overview struct {
	St       wire.Status
	Link     string // the forge's page of the deployed commit, "" for none
	Counts   []count
	Failures []state.ServiceResult // the last sync's failed services, errors in full
}

type count struct {
	State string
	N     int
}

func (d *Dashboard) overviewData(_ context.Context, _ *http.Request, st wire.Status) (any, error) {
	o := overview{St: st}
	if d.opts.CommitURL != nil && st.Commit != "" {
		o.Link = d.opts.CommitURL(st.Commit)
	}
	n := map[string]int{}
	for _, s := range st.Services {
		n[s.Sync]++
		if s.Health != wire.HealthHealthy {
			n[s.Health]++
		}
	}
	for _, k := range []string{wire.SyncSynced, wire.SyncProgressing, wire.SyncOutOfSync, wire.SyncFailed, wire.HealthDegraded, wire.HealthMissing, wire.HealthUnknown} {
		if n[k] > 0 {
			o.Counts = append(o.Counts, count{k, n[k]})
		}
	}
	if st.LastSync != nil {
		for _, r := range st.LastSync.Services {
			if r.Error != "" {
				o.Failures = append(o.Failures, r)
			}
		}
	}
	return o, nil
}

// serviceLive is the live part of a service's page.
type serviceLive struct {
	S        wire.ServiceStatus
	Node     string
	Rollouts []rollout
	Backups  []wire.BackupStatus
}

// rollout is one sync's outcome for the service.
type rollout struct {
	Rec state.SyncRecord
	Res state.ServiceResult
}

// serviceView is a service's page: the live part and what is read once
// when it is opened (logs, drift findings).
type serviceView struct {
	Live         serviceLive
	Logs         string
	LogsError    string
	Findings     []diff.Finding
	DriftChecked time.Time
	DriftError   string
}

func (d *Dashboard) serviceLiveData(ctx context.Context, r *http.Request, st wire.Status) (any, error) {
	project, name := r.PathValue("project"), r.PathValue("name")
	if project == "" { // the live stream names the service in its query
		q := r.URL.Query()
		project, name = q.Get("project"), q.Get("name")
	}
	var sl serviceLive
	found := false
	for _, s := range st.Services {
		if s.Project == project && s.Name == name {
			sl.S, found = s, true
		}
	}
	if !found {
		return nil, errNoService
	}
	sl.Node = st.Node
	for _, b := range st.Backups {
		if b.Project == project && b.Service == name {
			sl.Backups = append(sl.Backups, b)
		}
	}
	recs, err := d.opts.Status.History(ctx, historyLimit)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	for _, rec := range recs {
		for _, res := range rec.Services {
			if res.Project == project && res.Service == name && len(sl.Rollouts) < rolloutsShown {
				sl.Rollouts = append(sl.Rollouts, rollout{Rec: rec, Res: res})
			}
		}
	}
	return sl, nil
}

func (d *Dashboard) serviceData(ctx context.Context, r *http.Request, st wire.Status) (any, error) {
	live, err := d.serviceLiveData(ctx, r, st)
	if err != nil {
		return nil, err
	}
	v := serviceView{Live: live.(serviceLive)}
	project, name := r.PathValue("project"), r.PathValue("name")
	var logs limitedBuffer
	if err := d.opts.Inspect.Logs(ctx, project, name, logTail, false, &logs); err != nil {
		v.LogsError = err.Error()
	}
	v.Logs = logs.String()
	rep, err := d.opts.Inspect.Drift(ctx)
	switch {
	case err != nil:
		v.DriftError = err.Error()
	case rep.Error != "":
		v.DriftError = rep.Error
	}
	v.DriftChecked = rep.Checked
	for _, f := range rep.Findings {
		if f.Project == project && f.Service == name {
			v.Findings = append(v.Findings, f)
		}
	}
	return v, nil
}

// limitedBuffer keeps the first maxLogBytes written to it.
type limitedBuffer struct{ b strings.Builder }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxLogBytes - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }

// historyView is the history's data.
type historyView struct {
	Records []state.SyncRecord
	Jobs    []wire.ServiceStatus
	Backups []wire.BackupStatus
}

func (d *Dashboard) historyData(ctx context.Context, _ *http.Request, st wire.Status) (any, error) {
	recs, err := d.opts.Status.History(ctx, historyLimit)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	h := historyView{Records: recs, Backups: st.Backups}
	for _, s := range st.Services {
		if s.Job != nil {
			h.Jobs = append(h.Jobs, s)
		}
	}
	return h, nil
}

// prView is the pull request page: the plan of the PR asked for, then the
// latest plan serve kept of each open PR, newest first.
type prView struct {
	Available bool
	Number    int
	Plan      *wire.PRPlan
	Error     string
	Recent    []wire.PRPlanRecord
	// RecentError says why the kept plans could not be read.
	RecentError string
}

func (d *Dashboard) prData(ctx context.Context, r *http.Request, _ wire.Status) (any, error) {
	v := prView{Available: d.opts.PRs != nil}
	if !v.Available {
		return v, nil
	}
	// The plan asked for first: it is kept, so the list below shows it.
	if raw := r.URL.Query().Get("number"); raw != "" {
		v.Plan, v.Number, v.Error = d.planPR(ctx, raw)
	}
	recent, err := d.opts.PRs.PRPlans(ctx)
	if err != nil {
		v.RecentError = err.Error()
	}
	v.Recent = recent
	return v, nil
}

// planPR plans the pull request numbered raw; a bad number or a failed
// plan is the page's error, not a failed page.
func (d *Dashboard) planPR(ctx context.Context, raw string) (*wire.PRPlan, int, string) {
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 {
		return nil, 0, "a pull request number is a positive integer"
	}
	plan, err := d.opts.PRs.PRPlan(ctx, n)
	if err != nil {
		return nil, n, err.Error()
	}
	return &plan, n, ""
}

var funcs = template.FuncMap{
	"short": func(sha string) string { return sha[:min(len(sha), 12)] },
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"took": func(a, b time.Time) string {
		if a.IsZero() || b.IsZero() {
			return "—"
		}
		return b.Sub(a).Round(time.Millisecond).String()
	},
	"dur":   func(d time.Duration) string { return d.Round(time.Millisecond).String() },
	"lower": strings.ToLower,
	"pct":   func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) + "%" },
	"ms":    func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"num":   func(f float64) string { return strconv.FormatFloat(f, 'f', 4, 64) },
	"svcURL": func(project, name string) string {
		return "/ui/services/" + url.PathEscape(project) + "/" + url.PathEscape(name)
	},
	"failed": func(result string) bool { return result != "succeeded" && result != "no-change" },
	"dict":   dict,
	// withBody is the page's data with the live part as its body, for a
	// page whose full body holds more than the live part.
	"withBody": func(p pageData, body any) pageData { p.Body = body; return p },
}

// dict makes a map of key, value pairs for a template of parts.html.
func dict(kv ...any) (map[string]any, error) {
	if len(kv)%2 != 0 {
		return nil, fmt.Errorf("dict: odd number of arguments")
	}
	m := make(map[string]any, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		k, ok := kv[i].(string)
		if !ok {
			return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
		}
		m[k] = kv[i+1]
	}
	return m, nil
}
