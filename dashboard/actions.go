package dashboard

import (
	"net/http"
	"net/url"
)

// confirmData is the confirmation page of an action, or an error page.
type confirmData struct {
	Question string
	Action   string // the form's URL
	Fields   map[string]string
	Back     string
	Error    string
}

// confirmed reports whether the form is the confirmation's; if not, it
// shows the confirmation page, whose form posts the action again with
// confirm=yes. It works without the script, and with the keyboard.
func (d *Dashboard) confirmed(w http.ResponseWriter, r *http.Request, v viewer, c confirmData) bool {
	if r.PostFormValue("confirm") == "yes" {
		return true
	}
	pg := d.pages["confirm"]
	c.Action = r.URL.Path
	d.render(w, pg, "base", http.StatusOK, d.data(r, v, pg, c))
	return false
}

// syncAction is "sync now" and "sync --retry": the API's POST /api/v1/sync.
func (d *Dashboard) syncAction(w http.ResponseWriter, r *http.Request, v viewer) {
	retry := r.PostFormValue("retry") == "true"
	q := "Sync the branch head now?"
	fields := map[string]string{}
	if retry {
		q = "Sync now and retry a stalled commit (sync --retry)?"
		fields["retry"] = "true"
	}
	if !d.confirmed(w, r, v, confirmData{Question: q, Fields: fields, Back: "/"}) {
		return
	}
	d.opts.Sync.Sync("api", retry)
	msg := "Sync signalled."
	if retry {
		msg = "Sync with retry signalled."
	}
	d.sessions.setFlash(v.sessionID, msg)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// serviceAction is redeploy, promote or abort of one service: the API's
// POST /api/v1/services/{project}/{name}/{action}.
func (d *Dashboard) serviceAction(w http.ResponseWriter, r *http.Request, v viewer) {
	project, name, action := r.PathValue("project"), r.PathValue("name"), r.PathValue("action")
	back := "/ui/services/" + url.PathEscape(project) + "/" + url.PathEscape(name)
	var q string
	switch action {
	case "redeploy":
		q = "Pull the image again and restart " + project + "/" + name + "?"
	case "promote":
		q = "Promote the canary of " + project + "/" + name + " to every replica now?"
	case "abort":
		q = "Abort the canary of " + project + "/" + name + " and keep the stable version?"
	default:
		http.Error(w, "no such action", http.StatusNotFound)
		return
	}
	if !d.confirmed(w, r, v, confirmData{Question: q, Back: back}) {
		return
	}
	var err error
	if action == "redeploy" {
		err = d.opts.Services.Redeploy(r.Context(), project, name)
	} else {
		err = d.opts.Services.Canary(r.Context(), project, name, action)
	}
	msg := action + " signalled."
	if err != nil {
		msg = action + " failed: " + err.Error()
	}
	d.sessions.setFlash(v.sessionID, msg)
	http.Redirect(w, r, back, http.StatusSeeOther)
}
