package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/orca-sync/orca-sync/reconcile"
)

const (
	viewerToken   = "dashboard-viewer-token-0123456789"
	deployerToken = "dashboard-deployer-token-0123456789"
)

// TestDashboard drives the dashboard in Debian's chromium against serve on
// the real engine: sign-in, the services of the deployed commit, a rolling
// update seen going from Progressing to Synced without a reload, a service's
// logs, "sync now" as a deployer (a viewer has no button; a POST without
// the session's CSRF token is refused), a canary's live figures, and no
// request to anything but the API listener. It writes screenshots.
func TestDashboard(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	pa, pc := env.project("dash"), env.project("dashcan")
	fileA, fileC := "services/"+pa+"/service.toml", "services/"+pc+"/service.toml"
	rolling := func(image string) string {
		s := webApp(image, 2)
		s.Deploy.MinReadySecs = 2 // a rollout long enough to be seen
		return s.String()
	}
	canaryDeploy := `steps = [{weight = 50, pause_secs = 3600}]
analysis = {min_requests = 20, max_error_rate = 0.5}`
	cluster := clusterWithWebhook + fmt.Sprintf(`
[[token]]
name = "viewer"
value = %q
role = "viewer"

[[token]]
name = "deployer"
value = %q
role = "deployer"
`, viewerToken, deployerToken)
	ps := startProxyServe(t, env, map[string]string{
		"cluster.toml": cluster,
		fileA:          rolling(imageV1),
		fileC:          canaryWeb(imageV1, "dashcan.test", canaryDeploy).String(),
	})
	origin := "http://" + ps.api
	waitFor(t, 120*time.Second, func() (bool, string) {
		st := ps.status()
		a, c := serviceOf(st, pa, "web"), serviceOf(st, pc, "web")
		return a.Sync == reconcile.SyncSynced && c.Sync == reconcile.SyncSynced && a.Ready == 2 && c.Ready == 2,
			fmt.Sprintf("%s/web %+v, %s/web %+v", pa, a, pc, c)
	})
	deployed := ps.status().Commit
	shots := t.TempDir()

	b := newBrowser(t)
	rowSync := func(project string) string {
		return fmt.Sprintf(`(document.querySelector('tr[data-service="%s/web"] td.sync') || {dataset: {}}).dataset.sync || ""`, project)
	}

	t.Run("without a session only the sign-in", func(t *testing.T) {
		b.run("open", chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`#token`))
		if txt := b.text(); strings.Contains(txt, pa) || strings.Contains(txt, deployed[:12]) {
			t.Fatalf("the sign-in page shows the host's state:\n%s", txt)
		}
	})

	signIn := func(token string) {
		t.Helper()
		b.run("sign in", chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`#token`),
			chromedp.SendKeys(`#token`, token), chromedp.Click(`#signin`), chromedp.WaitVisible(`table.services`))
	}

	t.Run("a viewer sees the deployed services and no button", func(t *testing.T) {
		signIn(viewerToken)
		b.waitJS(t, rowSync(pa), reconcile.SyncSynced)
		b.waitJS(t, rowSync(pc), reconcile.SyncSynced)
		b.waitJS(t, `document.getElementById("commit").textContent`, deployed[:12])
		if n, _ := evalJS[int](b, `document.querySelectorAll("#sync-now, #sync-retry, form[action='/ui/sync']").length`); n != 0 {
			t.Fatalf("a viewer sees %d sync buttons", n)
		}
		// The form a page of another origin could post: refused, role or not.
		code, err := evalJS[int](b, `fetch("/ui/sync", {method: "POST", body: new URLSearchParams({confirm: "yes"})}).then(r => r.status)`)
		if err != nil || code != http.StatusForbidden {
			t.Fatalf("viewer POST /ui/sync: %d %v, want 403", code, err)
		}
		// The session cookie opens no JSON route.
		if code, err := evalJS[int](b, `fetch("/api/v1/status").then(r => r.status)`); err != nil || code != http.StatusUnauthorized {
			t.Fatalf("GET /api/v1/status with the session cookie: %d %v, want 401", code, err)
		}
		b.run("sign out", chromedp.Click(`form[action="/ui/signout"] button`), chromedp.WaitVisible(`#token`))
	})

	t.Run("a deployer's sync now rolls out, seen live", func(t *testing.T) {
		signIn(deployerToken)
		before := len(ps.history())
		code, err := evalJS[int](b, `fetch("/ui/sync", {method: "POST", body: new URLSearchParams({confirm: "yes", csrf: "forged"})}).then(r => r.status)`)
		if err != nil || code != http.StatusForbidden {
			t.Fatalf("POST /ui/sync with a forged CSRF token: %d %v, want 403", code, err)
		}
		if n := len(ps.history()); n != before {
			t.Fatalf("the refused POST made a sync: %d records, had %d", n, before)
		}
		ps.repo.WriteFile(fileA, rolling(imageV2))
		next := ps.repo.Commit("web v2")
		ps.repo.Push()
		b.run("sync now", chromedp.Click(`#sync-now`), chromedp.WaitVisible(`#confirm`), chromedp.Click(`#confirm`),
			chromedp.WaitVisible(`.flash`))
		// From here on the page is not reloaded: the marker would be gone.
		b.run("watch", chromedp.Evaluate[chromedp.Void](`window.__kept = "yes";
			window.__seen = [];
			(function note() {
				var c = document.querySelector('tr[data-service="`+pa+`/web"] td.sync');
				var v = c && c.dataset.sync;
				if (v && window.__seen[window.__seen.length - 1] !== v) { window.__seen.push(v); }
				requestAnimationFrame(note);
			})();`))
		b.waitJS(t, `document.getElementById("commit").textContent`, next[:12])
		b.waitJS(t, `window.__seen.includes("Progressing") && window.__seen[window.__seen.length-1] === "Synced" ? "yes" : window.__seen.join(",")`, "yes")
		b.waitJS(t, `document.querySelector('tr[data-service="`+pa+`/web"] td.ready').textContent`, "2/2")
		b.waitJS(t, `window.__kept`, "yes")
		st := ps.status()
		if st.Commit != next || st.LastSync == nil || st.LastSync.Trigger != "api" {
			t.Fatalf("after sync now: commit %s (want %s), last sync %+v", st.Commit, next, st.LastSync)
		}
	})

	t.Run("a service's page shows its logs", func(t *testing.T) {
		b.run("open service", chromedp.Click(`tr[data-service="`+pa+`/web"] th a`), chromedp.WaitVisible(`#logs`))
		waitFor(t, 10*time.Second, func() (bool, string) {
			logs, err := evalJS[string](b, `document.getElementById("logs").textContent`)
			return err == nil && strings.Contains(logs, "testapp version=v2"), fmt.Sprintf("logs: %q %v", logs, err)
		})
		// Its two v2 containers, live and ready, as Docker has them.
		var want []string
		for _, c := range env.mustContainers(t, pa, "web") {
			want = append(want, strings.TrimPrefix(c.Names[0], "/")+" running ready")
		}
		slices.Sort(want)
		b.waitJS(t, `Array.from(document.querySelectorAll("table.containers tbody tr")).map(function (r) {
			return r.cells[0].textContent + " " + r.cells[1].textContent + " " + r.cells[5].textContent;
		}).sort().join(",")`, strings.Join(want, ","))
		if n, _ := evalJS[int](b, `document.querySelectorAll("#redeploy").length`); n != 1 {
			t.Fatalf("a deployer sees %d redeploy buttons, want 1", n)
		}
	})

	t.Run("the history has each sync and its outcome per service", func(t *testing.T) {
		b.run("history", chromedp.Navigate(origin+"/ui/history"), chromedp.WaitVisible(`.timeline details`))
		recs := ps.history()
		got, err := evalJS[string](b, `(function () {
			var d = document.querySelector(".timeline details");
			d.open = true;
			return d.querySelector("summary").textContent + "|" + d.querySelector("tbody th").textContent + "|" + document.querySelectorAll(".timeline > li").length;
		})()`)
		want := fmt.Sprintf("%s · %s", recs[0].Trigger, recs[0].Commit[:12])
		if err != nil || !strings.Contains(got, want) || !strings.Contains(got, "|"+pa+"/web|") || !strings.HasSuffix(got, fmt.Sprintf("|%d", len(recs))) {
			t.Fatalf("history page: %q %v; want the newest sync (%s) with %s/web and %d records", got, err, want, pa, len(recs))
		}
	})

	t.Run("screenshots of the overview", func(t *testing.T) {
		b.run("overview", chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`table.services`))
		b.screenshot(t, shots, "overview", 1280, 800)
		b.screenshot(t, shots, "overview", 390, 844)
	})

	t.Run("a canary's page draws its figures live", func(t *testing.T) {
		l := startLoad(ps.http, "dashcan.test", 2)
		defer l.finish()
		ps.repo.WriteFile(fileC, canaryWeb(imageV2, "dashcan.test", canaryDeploy).String())
		ps.repo.Commit("canary v2")
		ps.repo.Push()
		b.run("overview", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(origin+"/"), chromedp.WaitVisible(`#sync-now`),
			chromedp.Click(`#sync-now`), chromedp.WaitVisible(`#confirm`), chromedp.Click(`#confirm`), chromedp.WaitVisible(`.flash`))
		b.run("open canary", chromedp.Click(`tr[data-service="`+pc+`/web"] th a`), chromedp.WaitVisible(`#logs`))
		b.waitJS(t, `(document.querySelector("[data-phase]") || {}).textContent || ""`, "analysing")
		// Requests counted and drawn as they come: the chart has its four
		// lines (p95 and error rate, canary and stable) over a few updates.
		waitFor(t, 90*time.Second, func() (bool, string) {
			got, err := evalJS[string](b, `(function () {
				var c = document.querySelector("[data-chart]");
				return c.getAttribute("data-cp95") + " " + c.getAttribute("data-points") + " " + c.querySelectorAll("polyline").length;
			})()`)
			var p95 float64
			var points, lines int
			fmt.Sscan(got, &p95, &points, &lines)
			return err == nil && p95 > 0 && points >= 3 && lines == 4, fmt.Sprintf("chart (p95 points lines): %q %v", got, err)
		})
		b.screenshot(t, shots, "canary", 1280, 800)
		b.screenshot(t, shots, "canary", 390, 844)
	})

	t.Run("no request to anything but the API listener", func(t *testing.T) {
		urls := b.requests()
		if !slices.ContainsFunc(urls, func(u string) bool { return strings.HasPrefix(u, origin+"/ui/events") }) {
			t.Fatalf("the pages never opened the live stream: %q", urls)
		}
		if off := offOrigin(urls, origin); len(off) > 0 {
			t.Fatalf("requests to other origins: %q", off)
		}
	})

	t.Run("a stopped serve shows as unreachable", func(t *testing.T) {
		b.waitJS(t, `String(document.getElementById("conn").hidden)`, "true")
		ps.stop()
		// The open stream did not hold the shutdown up: serve ended cleanly.
		if code := ps.cmd.ProcessState.ExitCode(); code != 0 {
			t.Fatalf("serve exited with %d after SIGTERM with a dashboard open", code)
		}
		b.waitJS(t, `document.getElementById("conn").hidden ? "hidden" : document.getElementById("conn").textContent`, "serve unreachable: retrying…")
	})
}
