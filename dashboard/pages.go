package dashboard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"time"

	"github.com/orca-sync/orca-sync/api/wire"
)

// errNoService is a page of a service the status does not list.
var errNoService = errors.New("no such service")

// builder makes a page's data from the request and a status read now.
type builder func(ctx context.Context, r *http.Request, st wire.Status) (any, error)

// page is one template set (base.html and the page's file) and its data.
type page struct {
	name  string
	title func(r *http.Request) string
	tmpl  *template.Template
	full  builder
	live  builder // the part the stream re-renders; nil: the page is not live
}

type pages map[string]*page

// pageData is what every template gets; Body is the page's own.
type pageData struct {
	Title     string
	View      string
	LiveURL   string
	Role      string
	CanDeploy bool
	Session   bool
	CSRF      string
	Flash     string
	Body      any
}

func (d *Dashboard) parsePages() (pages, error) {
	base, err := template.New("base").Funcs(funcs).ParseFS(files, "templates/base.html", "templates/parts.html")
	if err != nil {
		return nil, fmt.Errorf("dashboard templates: %w", err)
	}
	ps := pages{}
	add := func(name string, title func(*http.Request) string, full, live builder) error {
		t, err := template.Must(base.Clone()).ParseFS(files, "templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard template %s: %w", name, err)
		}
		ps[name] = &page{name: name, title: title, tmpl: t, full: full, live: live}
		return nil
	}
	fixed := func(s string) func(*http.Request) string { return func(*http.Request) string { return s } }
	svcTitle := func(r *http.Request) string { return r.PathValue("project") + "/" + r.PathValue("name") }
	for _, err := range []error{
		add("overview", fixed("Overview"), d.overviewData, d.overviewData),
		add("service", svcTitle, d.serviceData, d.serviceLiveData),
		add("history", fixed("History"), d.historyData, d.historyData),
		add("prs", fixed("Pull requests"), d.prData, nil),
		add("signin", fixed("Sign in"), nil, nil),
		add("confirm", fixed("Confirm"), nil, nil),
	} {
		if err != nil {
			return nil, err
		}
	}
	return ps, nil
}

// page serves a page to a viewer; anyone else gets the sign-in (200 at /,
// 401 elsewhere).
func (d *Dashboard) page(pg *page) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, ok := d.who(r)
		if !ok {
			code := http.StatusUnauthorized
			if r.URL.Path == "/" {
				code = http.StatusOK
			}
			d.renderSignin(w, code, "")
			return
		}
		st, err := d.opts.Status.Status(r.Context())
		if err != nil {
			d.renderError(w, r, v, http.StatusInternalServerError, "status: "+err.Error())
			return
		}
		body, err := pg.full(r.Context(), r, st)
		if errors.Is(err, errNoService) {
			d.renderError(w, r, v, http.StatusNotFound, "service "+pg.title(r)+" is not in the deployed commit")
			return
		}
		if err != nil {
			d.renderError(w, r, v, http.StatusInternalServerError, err.Error())
			return
		}
		data := d.data(r, v, pg, body)
		if v.sessionID != "" {
			data.Flash = d.sessions.takeFlash(v.sessionID)
		}
		d.render(w, pg, "base", http.StatusOK, data)
	}
}

func (d *Dashboard) data(r *http.Request, v viewer, pg *page, body any) pageData {
	data := pageData{
		Title: pg.title(r), View: pg.name, Role: v.role, Session: v.sessionID != "",
		CSRF: v.csrf, Body: body,
		// Forms need the session's CSRF token: a bearer token reads only.
		CanDeploy: v.canDeploy() && v.sessionID != "",
	}
	if pg.live != nil {
		q := url.Values{"view": {pg.name}}
		if p := r.PathValue("project"); p != "" {
			q.Set("project", p)
			q.Set("name", r.PathValue("name"))
		}
		data.LiveURL = "/ui/events?" + q.Encode()
	}
	return data
}

func (d *Dashboard) renderLive(r *http.Request, pg *page, v viewer, st wire.Status) ([]byte, error) {
	ctx, cancel := context.WithTimeout(r.Context(), 20*time.Second)
	defer cancel()
	body, err := pg.live(ctx, r, st)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := pg.tmpl.ExecuteTemplate(&buf, "live", d.data(r, v, pg, body)); err != nil {
		return nil, fmt.Errorf("render %s: %w", pg.name, err)
	}
	return buf.Bytes(), nil
}

// render executes into a buffer first, so that a template error is a 500
// and not half a page.
func (d *Dashboard) render(w http.ResponseWriter, pg *page, name string, code int, data pageData) {
	var buf bytes.Buffer
	if err := pg.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		d.log.Error("dashboard render", "page", pg.name, "error", err)
		http.Error(w, "dashboard: cannot render "+pg.name, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = buf.WriteTo(w)
}

func (d *Dashboard) renderSignin(w http.ResponseWriter, code int, msg string) {
	pg := d.pages["signin"]
	w.Header().Set("X-Orca-Signin", "1") // the script's sign that the session is gone
	d.render(w, pg, "base", code, pageData{Title: "Sign in", View: pg.name, Body: msg})
}

func (d *Dashboard) renderError(w http.ResponseWriter, r *http.Request, v viewer, code int, msg string) {
	pg := d.pages["confirm"]
	data := d.data(r, v, pg, confirmData{Error: msg})
	data.Title = http.StatusText(code)
	d.render(w, pg, "base", code, data)
}
