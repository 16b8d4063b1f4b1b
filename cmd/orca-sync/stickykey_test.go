package main

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/orca-sync/orca-sync/state"
)

// TestStickyKeyKeptInState: the first start makes a 32-byte key, and every
// later start (the state reopened) gets the same one back.
func TestStickyKeyKeptInState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	first, err := stickyKey(db)
	if err != nil || len(first) != 32 || bytes.Equal(first, make([]byte, 32)) {
		t.Fatalf("first key %x, %v; want 32 random bytes", first, err)
	}
	db.Close()
	db, err = state.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	again, err := stickyKey(db)
	if err != nil || !bytes.Equal(again, first) {
		t.Errorf("after reopening: %x, %v; want %x", again, err, first)
	}
}
