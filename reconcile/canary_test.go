package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/orca-sync/orca-sync/config"
)

func TestJudge(t *testing.T) {
	a := config.Analysis{MaxErrorRate: 0.05, MaxP95: 200 * time.Millisecond, MinRequests: 20}
	cases := []struct {
		name string
		f    RoleFigures
		want string
	}{
		{"too few requests to judge", roleFigures(19, 19, time.Second), ""},
		{"healthy", roleFigures(100, 5, 100*time.Millisecond), ""},
		{"error rate", roleFigures(100, 30, 10*time.Millisecond), "error rate 30.0% (30 of 100 requests) is above max_error_rate 5.0%"},
		{"p95", roleFigures(40, 0, 300*time.Millisecond), "p95 300.0 ms over 40 requests is above max_p95_ms 200"},
	}
	for _, c := range cases {
		if got := judge(a, c.f); got != c.want {
			t.Errorf("%s: judge = %q, want %q", c.name, got, c.want)
		}
	}
	if got := judge(config.Analysis{MaxErrorRate: 0.05, MinRequests: 1}, roleFigures(10, 0, time.Hour)); got != "" {
		t.Errorf("no max_p95_ms: judged %q", got)
	}
}

func TestCanaryStepsAndWaits(t *testing.T) {
	manual := config.Deploy{CanaryWeight: 30, Analysis: config.Analysis{MinRequests: 20}}
	if st := canarySteps(manual); len(st) != 1 || st[0].Weight != 30 || st[0].Pause != 0 {
		t.Errorf("steps without steps = %v, want one of canary_weight", st)
	}
	svc := &config.Service{Name: "api", Project: "shop", Deploy: manual}
	w := canaryWaits(canaryRecord{Service: "shop/api", Weight: 30, Phase: phaseWaiting}, svc, 0)
	if !strings.Contains(w, "orca-sync promote shop/api") {
		t.Errorf("waiting canary says %q", w)
	}
	w = canaryWaits(canaryRecord{Service: "shop/api", Weight: 30, Phase: phaseAnalysing, StepStarted: time.Now()}, svc, 5)
	if !strings.Contains(w, "step 1 of 1 at 30%") || !strings.Contains(w, "15 more request(s) to the canary (5 of 20)") {
		t.Errorf("analysing canary with 5 of 20 requests says %q", w)
	}
	// Once min_requests is met the figure no longer says it waits for requests.
	if w = canaryWaits(canaryRecord{Service: "shop/api", Weight: 30, Phase: phaseAnalysing, StepStarted: time.Now()}, svc, 141); strings.Contains(w, "request") {
		t.Errorf("analysing canary with 141 of 20 requests says %q", w)
	}
}
