package state

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Pin marks a (service, spec-hash) whose rollout failed. The loop skips that
// hash until git produces a different one or an operator asks for a retry, so
// a broken commit is not rolled out and undone on every tick. Pins outlive
// restarts because the failure is not visible in Docker's labels: the undo
// leaves the old containers exactly as they were.
type Pin struct {
	Service string    `json:"service"` // "project/name"
	Hash    string    `json:"hash"`    // the spec hash that failed
	Reason  string    `json:"reason"`  // one line, shown by status
	Since   time.Time `json:"since"`
}

// Pin stores p under p.Service, replacing any earlier pin of that service:
// only the latest failed hash matters.
func (db *DB) Pin(p Pin) error {
	if p.Service == "" {
		return fmt.Errorf("pin in state %s: empty service name", db.path)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("pin %s in state %s: %w", p.Service, db.path, err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(pinsBucket)).Put([]byte(p.Service), raw)
	})
	if err != nil {
		return fmt.Errorf("pin %s in state %s: %w", p.Service, db.path, err)
	}
	return nil
}

// Unpin removes the pin of service ("project/name"); no pin is not an error.
func (db *DB) Unpin(service string) error {
	if service == "" {
		return nil
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(pinsBucket)).Delete([]byte(service))
	})
	if err != nil {
		return fmt.Errorf("unpin %s in state %s: %w", service, db.path, err)
	}
	return nil
}

// Pins returns every pin keyed by service ("project/name"); the map is never
// nil so callers can look up without checking.
func (db *DB) Pins() (map[string]Pin, error) {
	out := map[string]Pin{}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(pinsBucket)).ForEach(func(k, v []byte) error {
			var p Pin
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("pin %s: %w", k, err)
			}
			out[string(k)] = p
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read pins from state %s: %w", db.path, err)
	}
	return out, nil
}

// ClearPins removes every pin at once, for `sync --retry`, in one transaction
// so that a concurrent Pin lands either before (and is cleared) or after.
func (db *DB) ClearPins() error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket([]byte(pinsBucket)); err != nil {
			return err
		}
		_, err := tx.CreateBucket([]byte(pinsBucket))
		return err
	})
	if err != nil {
		return fmt.Errorf("clear pins in state %s: %w", db.path, err)
	}
	return nil
}
