package proxy

import "testing"

// TestWeightedSplit: the canary gets exactly its weight of every 100
// requests, round-robin inside each role; at 0 it gets nothing while stable
// targets exist, and all when only canaries are left.
func TestWeightedSplit(t *testing.T) {
	lb := newLoadBalancer()
	for _, tg := range []*Target{{ID: "s1", Role: "stable"}, {ID: "s2", Role: "stable"}, {ID: "c1", Role: RoleCanary}} {
		lb.add(tg)
	}
	for _, w := range []int{0, 20, 50, 100} {
		lb.setWeight(w)
		seen := map[string]int{}
		for range 1000 {
			tg := lb.pick()
			seen[tg.ID]++
			release(tg)
		}
		if seen["c1"] != w*10 {
			t.Errorf("weight %d: canary got %d of 1000, want %d (%v)", w, seen["c1"], w*10, seen)
		}
		if d := seen["s1"] - seen["s2"]; d < -1 || d > 1 {
			t.Errorf("weight %d: stable targets unevenly used: %v", w, seen)
		}
	}
	lb.setWeight(0)
	lb.remove("s1")
	lb.remove("s2")
	if tg := lb.pick(); tg == nil || tg.ID != "c1" {
		t.Errorf("only a canary left: picked %v, want c1", tg)
	}
}
