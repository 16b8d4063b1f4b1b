// Package dockertest is the one Docker harness of orca-sync's tests: the
// engine connection, FROM scratch test images built from a Go main package,
// and per-test scopes whose containers, networks and volumes are removed
// when the test ends.
//
// It is test support: only _test.go files import it.
package dockertest
