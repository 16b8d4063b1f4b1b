package state

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// deliveryTTL is how long a webhook delivery ID is remembered. Forges retry
// failed deliveries within minutes and operators redeliver by hand within
// hours; a day covers both without keeping IDs forever.
const deliveryTTL = 24 * time.Hour

// maxDeliveryIDLen bounds the key size: longer IDs (no forge sends them) are
// stored by their SHA-256 so a hostile header cannot bloat the file or exceed
// bbolt's key limit, while repeats are still recognised.
const maxDeliveryIDLen = 128

// SeenDelivery reports whether id was recorded within the 24 h before now,
// then records it at now. Expired IDs are purged in the same transaction by
// walking a time-ordered index from its oldest entry, so each call costs only
// the entries that actually expired. An empty id cannot be de-duplicated and
// is reported as unseen without being stored.
func (db *DB) SeenDelivery(id string, now time.Time) (bool, error) {
	if id == "" {
		return false, nil
	}
	key := deliveryKey(id)
	var seen bool
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		byID := tx.Bucket([]byte(deliveriesBucket))
		byTime := tx.Bucket([]byte(deliveryTimesBucket))
		cutoff := timeKey(now.Add(-deliveryTTL))
		if err := purgeDeliveries(byID, byTime, cutoff); err != nil {
			return err
		}
		if prev := byID.Get(key); prev != nil {
			seen = bytes.Compare(prev, cutoff) >= 0
			if err := byTime.Delete(indexKey(prev, key)); err != nil {
				return err
			}
		}
		at := timeKey(now)
		if err := byID.Put(key, at); err != nil {
			return err
		}
		return byTime.Put(indexKey(at, key), nil)
	})
	if err != nil {
		return false, fmt.Errorf("record webhook delivery in state %s: %w", db.path, err)
	}
	return seen, nil
}

// purgeDeliveries removes every ID recorded before cutoff from both buckets.
// Keys are collected first because deleting under a bbolt cursor skips
// entries.
func purgeDeliveries(byID, byTime *bolt.Bucket, cutoff []byte) error {
	var expired [][]byte
	c := byTime.Cursor()
	for k, _ := c.First(); k != nil && bytes.Compare(k[:8], cutoff) < 0; k, _ = c.Next() {
		expired = append(expired, append([]byte(nil), k...))
	}
	for _, k := range expired {
		if err := byTime.Delete(k); err != nil {
			return err
		}
		// Only drop the ID if it still points at this entry; a newer record
		// of the same ID has its own index entry.
		if id := k[8:]; bytes.Equal(byID.Get(id), k[:8]) {
			if err := byID.Delete(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// deliveryKey is the stored form of id: itself, or its hash when too long.
func deliveryKey(id string) []byte {
	if len(id) <= maxDeliveryIDLen {
		return []byte(id)
	}
	sum := sha256.Sum256([]byte(id))
	return []byte("sha256:" + hex.EncodeToString(sum[:]))
}

// timeKey encodes t as big-endian Unix nanoseconds, so byte order is time
// order (for any time after 1970, which every webhook is).
func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t.UnixNano()))
}

// indexKey is the time-ordered index entry: the time, then the ID.
func indexKey(at, id []byte) []byte {
	return append(append(make([]byte, 0, len(at)+len(id)), at...), id...)
}
