// Package e2e holds the end-to-end tests of orca-sync. They run against a real
// Docker engine (DOCKER_HOST or the default socket) and build their own test
// images from ./testapp, so no registry is needed.
//
//	go test ./e2e/...         full run (needs Docker)
//	go test -short ./...      unit tests only; every e2e test skips
//
// All helpers live in _test.go files, or in internal/dockertest and
// internal/gittest, which only tests import, so that no production binary
// links the testing package.
package e2e
