package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseServiceFile: no input may panic, and a file that parses without
// errors must yield services with the invariants the planner relies on.
func FuzzParseServiceFile(f *testing.F) {
	f.Add([]byte(okService))
	f.Add([]byte("[[service]]\nname = \"a\"\nimage = \"x:1\"\ndepends_on = [\"a\"]\n"))
	f.Add([]byte("[[service]]\nname = \"w\"\nimage = \"x\"\nport = 1\n[service.deploy]\nstrategy = \"canary\"\nsteps = [{weight = 5}]\n[service.readiness]\nexpect_status = \"200-204\"\n"))
	f.Add([]byte("[[service]]\nenv = {A = \"${secrets.X}$${y}\"}\nextra_ports = [\"[::1]:80:80/udp\"]\n"))
	f.Add([]byte("[[service]]\n[service.deploy.analysis]\n[[service.volumes]]\n"))
	if data, err := os.ReadFile(filepath.Join("testdata", "keycloak", "services", "keycloak", "service.toml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		services, errs := ParseServiceFile("services/p/service.toml", "p", data)
		for _, e := range errs {
			if e.File != "services/p/service.toml" || e.Message == "" {
				t.Fatalf("malformed error %+v", e)
			}
		}
		if len(errs) > 0 {
			return
		}
		for _, s := range services {
			if s.Name == "" || s.Image == "" || s.Replicas < 0 || len(s.Routes) == 0 {
				t.Fatalf("valid file gave an invalid service %+v", s)
			}
		}
	})
}

func FuzzParseClusterFile(f *testing.F) {
	f.Add([]byte("[cluster]\nname = \"c\"\n[reconcile]\ninterval_secs = 5\n"))
	f.Add([]byte("[[notify]]\ntype = \"slack\"\nurl = \"${secrets.SLACK}\"\n[[token]]\nname = \"a\"\nvalue = \"sha256:00\"\nrole = \"admin\"\n"))
	if data, err := os.ReadFile(filepath.Join("testdata", "keycloak", "cluster.toml")); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, errs := ParseClusterFile("cluster.toml", data)
		if len(errs) == 0 && (c.Reconcile.Interval <= 0 || c.Proxy.MaxBodyBytes <= 0) {
			t.Fatalf("valid file gave an invalid cluster %+v", c)
		}
	})
}
