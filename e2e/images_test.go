package e2e

import (
	"context"
	"time"

	"github.com/orca-sync/orca-sync/internal/dockertest"
)

// Test images, built FROM scratch from ./testapp by TestMain (see
// testapp/main.go for what the app does). All EXPOSE 8080 and run /app.
const (
	imageV1          = "orca-test/app:v1"          // VERSION=v1
	imageV2          = "orca-test/app:v2"          // VERSION=v2
	imageV3          = "orca-test/app:v3"          // VERSION=v3
	imageBroken      = "orca-test/app:broken"      // VERSION=broken, HEALTHZ_FAIL=1: /healthz answers 500
	imageHealthcheck = "orca-test/app:healthcheck" // VERSION=hc, Docker HEALTHCHECK /app healthcheck every 1s
	imageShell       = "orca-test/app:shell"       // VERSION=shell, with /bin/busybox: `/app sh -c ...` runs a shell
	// imageBackup is v1 under a tag of the backup tests' own, whose pre_hook
	// runs `/app dump`.
	imageBackup = "orca-test/app:backup" // VERSION=backup
)

// testAppPort is the port the test app listens on in every image.
const testAppPort = 8080

// appEntry ends the Dockerfile of every test image.
const appEntry = "EXPOSE 8080\nENTRYPOINT [\"/app\"]\n"

var testImages = []dockertest.Image{
	{Tag: imageV1, Lines: "ENV VERSION=v1\n" + appEntry},
	{Tag: imageV2, Lines: "ENV VERSION=v2\n" + appEntry},
	{Tag: imageV3, Lines: "ENV VERSION=v3\n" + appEntry},
	{Tag: imageBroken, Lines: "ENV VERSION=broken HEALTHZ_FAIL=1\n" + appEntry},
	{Tag: imageBackup, Lines: "ENV VERSION=backup\n" + appEntry},
	{Tag: imageHealthcheck, Lines: "ENV VERSION=hc\n" +
		`HEALTHCHECK --interval=1s --timeout=2s --retries=3 CMD ["/app","healthcheck"]` + "\n" + appEntry},
	{Tag: imageShell, Lines: "ENV VERSION=shell\n" + appEntry, Files: []dockertest.File{dockertest.Busybox}},
}

// buildTestImages compiles testapp once and builds every test image whose tag
// is missing or was built from another binary or Dockerfile.
func buildTestImages() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	return dockertest.BuildImages(ctx, docker, dockertest.Program{Dir: "testapp", Binary: "app"}, testImages...)
}
