package e2e

import (
	"crypto/rand"
	"fmt"
	"testing"
	"time"
)

// BenchmarkBackup200MB is the throughput of `backup run` of a 200 MB volume
// (incompressible bytes) to a local target, then to a real S3 server
// (versitygw on loopback), through a running serve. Run it on a quiet
// machine:
//
//	go test -run '^$' -bench BenchmarkBackup200MB -benchtime 3x ./e2e
func BenchmarkBackup200MB(b *testing.B) {
	env := newEnv(b)
	s3 := startS3(b)
	local := b.TempDir()
	p, vol := env.project("bkb"), env.Prefix+"data"
	repo, srv := newServedRepo(b)
	localCluster := fmt.Sprintf("[[backup.targets]]\ntype = \"local\"\npath = %q\n", local)
	s3Cluster := fmt.Sprintf("[[backup.targets]]\ntype = \"s3\"\nendpoint = \"http://%s\"\nbucket = %q\naccess_key = %q\nsecret_key = %q\n",
		s3.addr, s3.bucket, s3.key, s3.sec)
	repo.WriteFile("cluster.toml", localCluster)
	db := webApp(imageBackup, 1)
	db.Name = "db"
	db.Tables = fmt.Sprintf("[[service.volumes]]\nsource = %q\ntarget = \"/data\"\n", vol)
	repo.WriteFile("services/"+p+"/service.toml", db.String())
	repo.CommitPush("db")
	d := startServe(b, env, srv.URL("infra.git"))
	d.waitIdle(b)
	base := dbURL(b, env, p)
	const size, chunk = 200 << 20, 10 << 20
	buf := make([]byte, chunk)
	for i := 0; i < size/chunk; i++ {
		rand.Read(buf)
		appPost(b, base, fmt.Sprintf("/data/f%02d", i), string(buf))
	}
	cli := &orcaCLI{t: b, dataDir: d.dataDir, docker: newScopedDocker(b, env.Prefix)}
	for _, tc := range []struct{ name, cluster string }{{"local", localCluster}, {"s3", s3Cluster}} {
		repo.WriteFile("cluster.toml", tc.cluster)
		repo.CommitPush("targets: " + tc.name)
		d.syncAndWait(b)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(size)
			var took time.Duration
			for i := 0; i < b.N; i++ {
				r := cli.run("backup", "run", p+"/db", "--server=http://"+d.api)
				if r.Code != 0 {
					b.Fatalf("backup run\n%s", r)
				}
				took += r.Took
				time.Sleep(time.Second) // a new archive name each run
			}
			b.ReportMetric(float64(size)/(1<<20)/(took.Seconds()/float64(b.N)), "MB/s")
		})
	}
}
