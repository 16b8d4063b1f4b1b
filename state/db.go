// Package state is orca-sync's memory between restarts: sync history, failed
// rollout pins, webhook delivery IDs and small namespaced records for later
// features, kept in one bbolt file at <data-dir>/state.db.
//
// Live container state is deliberately absent: Docker's labels are the truth,
// so losing this file costs history and pins, never convergence. That is also
// why a file that cannot be read is reported, not silently replaced: the
// operator decides whether the history is worth more than a fresh start.
package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// SchemaVersion is the layout this build reads and writes, stored under
// meta/schema. Bump it (and add a migration in checkSchema) whenever a bucket
// or record format changes incompatibly.
const SchemaVersion = 1

// openTimeout bounds the wait for bbolt's file lock, so a second daemon on the
// same data directory fails fast instead of hanging at start-up.
const openTimeout = 2 * time.Second

// defaultHistoryLimit keeps roughly a few days of syncs at a one-minute
// interval with changes, while keeping the file small.
const defaultHistoryLimit = 500

// moveAsideHint tells the operator the one safe way out; it is appended to
// every "cannot use this file" error.
const moveAsideHint = "move it aside to start fresh; history and pins will be lost"

var (
	// ErrCorrupt means the file is not a bbolt database, fails bbolt's
	// consistency check, or holds no orca-sync schema version.
	ErrCorrupt = errors.New("state file is corrupt")
	// ErrNewerSchema means a newer orca-sync wrote the file; reading it could
	// misinterpret records, and writing it could damage them for that version.
	ErrNewerSchema = errors.New("state file was written by a newer orca-sync")
	// ErrInUse means another process holds the file's lock.
	ErrInUse = errors.New("state file is in use by another orca-sync")
)

// Bucket names. Namespaced user data lives under kvBucket so that a namespace
// can never collide with an internal bucket. They are constants, converted at
// each use, so no package-level byte slice can be mutated by accident.
const (
	metaBucket          = "meta"
	historyBucket       = "history"
	pinsBucket          = "pins"
	deliveriesBucket    = "deliveries"
	deliveryTimesBucket = "delivery_times"
	kvBucket            = "kv"
	schemaKey           = "schema"
)

// DB is the open state file. It is safe for concurrent use: bbolt serialises
// writers and the history limit is atomic.
type DB struct {
	bolt         *bolt.DB
	path         string
	historyLimit atomic.Int64
}

// Open opens or creates the state file at path (and its directory). A file
// that is not a bbolt database, is corrupt, or carries a newer schema version
// is an error wrapping ErrCorrupt or ErrNewerSchema; a file locked by another
// process is an error wrapping ErrInUse after about two seconds.
func Open(path string) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	if err := verify(path); err != nil {
		return nil, err
	}
	bdb, err := openBolt(path, false)
	if err != nil {
		return nil, err
	}
	// The schema is checked again under the exclusive lock, in case the file
	// was swapped between verify and here; the cost is one page read.
	err = bdb.Update(func(tx *bolt.Tx) error {
		fresh, err := checkSchema(tx)
		if err != nil {
			return schemaError(path, err)
		}
		if err := ensureBuckets(tx, fresh); err != nil {
			return fmt.Errorf("open state %s: initialise: %w", path, err)
		}
		return nil
	})
	if err != nil {
		_ = bdb.Close()
		return nil, err
	}
	db := &DB{bolt: bdb, path: path}
	db.historyLimit.Store(defaultHistoryLimit)
	return db, nil
}

// verify checks an existing file read-only before it is opened for writing:
// bbolt's read-write open already rewrites pages and loads the freelist (and
// panics on a garbage one, leaking its lock), so a file we are going to
// refuse is never touched that way. The page-level check runs once here,
// while the file is small and nobody writes to it, so a damaged page is
// reported at start-up instead of panicking mid-sync.
func verify(path string) (err error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("open state %s: %w", path, err)
	case info.Size() == 0:
		return nil // bbolt initialises an empty file; nothing to lose
	}
	bdb, err := openBolt(path, true)
	if err != nil {
		return err
	}
	defer bdb.Close()
	defer func() {
		if r := recover(); r != nil {
			err = corruptError(path, fmt.Errorf("panic: %v", r))
		}
	}()
	if err := bdb.View(checkConsistency); err != nil {
		return corruptError(path, err)
	}
	return bdb.View(func(tx *bolt.Tx) error {
		_, err := checkSchema(tx)
		return schemaError(path, err)
	})
}

// openBolt opens the file and translates bbolt's errors into ours. bbolt
// panics on some damaged files instead of returning an error; the panic is
// turned into ErrCorrupt rather than crashing the daemon with a stack trace
// the operator cannot act on.
func openBolt(path string, readOnly bool) (bdb *bolt.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			bdb, err = nil, corruptError(path, fmt.Errorf("panic: %v", r))
		}
	}()
	bdb, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, ReadOnly: readOnly})
	switch {
	case err == nil:
		return bdb, nil
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open state %s: %w (lock not acquired within %s)", path, ErrInUse, openTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return nil, corruptError(path, err)
	default:
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
}

// checkConsistency runs bbolt's page-level check and returns its first
// finding. The channel must be drained for the checker goroutine to finish.
func checkConsistency(tx *bolt.Tx) error {
	var first error
	n := 0
	for err := range tx.Check() {
		if first == nil {
			first = err
		}
		n++
	}
	if n > 1 {
		return fmt.Errorf("%w (and %d more problems)", first, n-1)
	}
	return first
}

// checkSchema reports whether the file is empty (fresh) and refuses versions
// it does not understand. A file with buckets but no meta bucket is some
// other program's bbolt database; treating it as ours would mix data.
func checkSchema(tx *bolt.Tx) (fresh bool, err error) {
	meta := tx.Bucket([]byte(metaBucket))
	if meta == nil {
		var other []byte
		_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			other = name
			return errors.New("stop")
		})
		if other != nil {
			return false, fmt.Errorf("not an orca-sync state file (bucket %q but no schema version)", other)
		}
		return true, nil
	}
	raw := meta.Get([]byte(schemaKey))
	v, perr := strconv.ParseUint(string(raw), 10, 32)
	switch {
	case perr != nil:
		return false, fmt.Errorf("unreadable schema version %q", raw)
	case v > SchemaVersion:
		return false, fmt.Errorf("%w (schema %d, this build reads %d)", ErrNewerSchema, v, SchemaVersion)
	case v < 1:
		return false, fmt.Errorf("unknown schema version %d", v)
	}
	return false, nil
}

// ensureBuckets creates every bucket the current schema uses, and stamps the
// schema version on a fresh file. It runs on every open, so a file from an
// older build of the same schema gains any bucket it lacks.
func ensureBuckets(tx *bolt.Tx, fresh bool) error {
	for _, name := range []string{metaBucket, historyBucket, pinsBucket, deliveriesBucket, deliveryTimesBucket, kvBucket} {
		if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	if !fresh {
		return nil
	}
	return tx.Bucket([]byte(metaBucket)).Put([]byte(schemaKey), []byte(strconv.Itoa(SchemaVersion)))
}

// schemaError turns a checkSchema failure into the error Open returns: a
// newer schema asks for an upgrade first, anything else is corruption.
func schemaError(path string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNewerSchema):
		return fmt.Errorf("open state %s: %w; upgrade orca-sync, or %s", path, err, moveAsideHint)
	default:
		return corruptError(path, err)
	}
}

// corruptError wraps ErrCorrupt and the cause with the path and the way out.
func corruptError(path string, cause error) error {
	return fmt.Errorf("open state %s: %w (%w); %s", path, ErrCorrupt, cause, moveAsideHint)
}

// Close releases the file and its lock. Transactions in flight finish first.
func (db *DB) Close() error {
	if err := db.bolt.Close(); err != nil {
		return fmt.Errorf("close state %s: %w", db.path, err)
	}
	return nil
}

// Path is the file this DB was opened from, for log and error messages.
func (db *DB) Path() string { return db.path }
