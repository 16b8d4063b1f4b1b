package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ServiceResult is what one sync did to one service, kept so that `history`
// can say which containers came and went and why a rollout failed.
type ServiceResult struct {
	Project string   `json:"project"`
	Service string   `json:"service"`
	Action  string   `json:"action"` // create, update, scale, heal, remove; run, skip for jobs
	Error   string   `json:"error,omitempty"`
	Started []string `json:"started,omitempty"` // container names
	Removed []string `json:"removed,omitempty"` // container names
	// Repaired lists the drift findings this change repaired.
	Repaired []string      `json:"repaired,omitempty"`
	Duration time.Duration `json:"duration_ns"`
	// ExitCode and Output are a job run's: its exit code and last log
	// lines, secrets redacted.
	ExitCode *int   `json:"exit_code,omitempty"`
	Output   string `json:"output,omitempty"`
}

// SyncRecord is one pass of the loop, successful or not. Records are stored
// as JSON so that fields can be added without a schema bump: old records
// simply decode with the new fields empty.
type SyncRecord struct {
	ID       uint64          `json:"id"`                // assigned by AddSync
	Commit   string          `json:"commit,omitempty"`  // SHA, "" if unknown
	Message  string          `json:"message,omitempty"` // first line of the commit message
	Trigger  string          `json:"trigger"`           // start, interval, webhook, api, retry
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	Result   string          `json:"result"`          // succeeded, failed, invalid, fetch-failed, no-change
	Error    string          `json:"error,omitempty"` // one-line reason when not succeeded
	Plan     string          `json:"plan,omitempty"`  // plan summary line
	Services []ServiceResult `json:"services,omitempty"`
}

// SetHistoryLimit sets how many records AddSync keeps; n < 1 restores the
// default of 500. A lower limit takes effect at the next AddSync.
func (db *DB) SetHistoryLimit(n int) {
	if n < 1 {
		n = defaultHistoryLimit
	}
	db.historyLimit.Store(int64(n))
}

// AddSync stores r under a fresh ID (r.ID is ignored) and drops the oldest
// records beyond the history limit in the same transaction, so the file never
// grows past the bound even if the daemon is killed between the two steps.
func (db *DB) AddSync(r SyncRecord) (uint64, error) {
	limit := int(db.historyLimit.Load())
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(historyBucket))
		id, err := b.NextSequence()
		if err != nil {
			return err
		}
		r.ID = id
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(idKey(id), raw); err != nil {
			return err
		}
		return trimHistory(b, limit)
	})
	if err != nil {
		return 0, fmt.Errorf("add sync to state %s: %w", db.path, err)
	}
	return r.ID, nil
}

// trimHistory deletes everything older than the newest limit records. It walks
// back from the newest key rather than trusting IDs to be contiguous, and
// collects keys before deleting because deleting under a bbolt cursor skips
// entries.
func trimHistory(b *bolt.Bucket, limit int) error {
	c := b.Cursor()
	k, _ := c.Last()
	for i := 1; i < limit && k != nil; i++ {
		k, _ = c.Prev()
	}
	if k == nil {
		return nil
	}
	var old [][]byte
	for k, _ = c.Prev(); k != nil; k, _ = c.Prev() {
		old = append(old, append([]byte(nil), k...))
	}
	for _, k := range old {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// History returns up to limit records, newest first; limit < 1 returns all
// that are kept.
func (db *DB) History(limit int) ([]SyncRecord, error) {
	var out []SyncRecord
	err := db.bolt.View(func(tx *bolt.Tx) error {
		c := tx.Bucket([]byte(historyBucket)).Cursor()
		for k, v := c.Last(); k != nil && (limit < 1 || len(out) < limit); k, v = c.Prev() {
			var r SyncRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("record %d: %w", binary.BigEndian.Uint64(k), err)
			}
			r.ID = binary.BigEndian.Uint64(k)
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read history from state %s: %w", db.path, err)
	}
	return out, nil
}

// idKey encodes an ID big-endian so that bbolt's byte order is numeric order
// and the cursor walks records oldest to newest.
func idKey(id uint64) []byte {
	return binary.BigEndian.AppendUint64(nil, id)
}

// UpdateSync rewrites the record with r.ID, as a sync recorded when it
// started is completed. A record already dropped by the bound is not
// written back.
func (db *DB) UpdateSync(r SyncRecord) error {
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(historyBucket))
		if b.Get(idKey(r.ID)) == nil {
			return nil
		}
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put(idKey(r.ID), raw)
	})
	if err != nil {
		return fmt.Errorf("update sync %d in state %s: %w", r.ID, db.path, err)
	}
	return nil
}
