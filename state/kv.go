package state

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Put stores v as JSON under namespace/key. Namespaces are nested buckets
// created on first use, so later features (canary state, notification
// memory) need no schema change to keep a few records of their own.
func (db *DB) Put(namespace, key string, v any) error {
	if err := checkNames(namespace, key); err != nil {
		return fmt.Errorf("put %s/%s in state %s: %w", namespace, key, db.path, err)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("put %s/%s in state %s: %w", namespace, key, db.path, err)
	}
	err = db.bolt.Update(func(tx *bolt.Tx) error {
		b, err := tx.Bucket([]byte(kvBucket)).CreateBucketIfNotExists([]byte(namespace))
		if err != nil {
			return err
		}
		return b.Put([]byte(key), raw)
	})
	if err != nil {
		return fmt.Errorf("put %s/%s in state %s: %w", namespace, key, db.path, err)
	}
	return nil
}

// Get decodes the value at namespace/key into v and reports whether it
// existed; a missing key leaves v untouched.
func (db *DB) Get(namespace, key string, v any) (bool, error) {
	if err := checkNames(namespace, key); err != nil {
		return false, fmt.Errorf("get %s/%s from state %s: %w", namespace, key, db.path, err)
	}
	var found bool
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(kvBucket)).Bucket([]byte(namespace))
		if b == nil {
			return nil
		}
		raw := b.Get([]byte(key))
		if raw == nil {
			return nil
		}
		found = true
		return json.Unmarshal(raw, v)
	})
	if err != nil {
		return false, fmt.Errorf("get %s/%s from state %s: %w", namespace, key, db.path, err)
	}
	return found, nil
}

// Delete removes namespace/key; a missing key or namespace is not an error.
func (db *DB) Delete(namespace, key string) error {
	if err := checkNames(namespace, key); err != nil {
		return fmt.Errorf("delete %s/%s from state %s: %w", namespace, key, db.path, err)
	}
	err := db.bolt.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(kvBucket)).Bucket([]byte(namespace))
		if b == nil {
			return nil
		}
		return b.Delete([]byte(key))
	})
	if err != nil {
		return fmt.Errorf("delete %s/%s from state %s: %w", namespace, key, db.path, err)
	}
	return nil
}

// Keys lists the keys of namespace in byte order; an unknown namespace has
// none.
func (db *DB) Keys(namespace string) ([]string, error) {
	if namespace == "" {
		return nil, fmt.Errorf("list keys in state %s: empty namespace", db.path)
	}
	var out []string
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(kvBucket)).Bucket([]byte(namespace))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list keys of %s in state %s: %w", namespace, db.path, err)
	}
	return out, nil
}

// checkNames rejects the empty names bbolt cannot store, with a message that
// says which one was empty.
func checkNames(namespace, key string) error {
	if namespace == "" {
		return errors.New("empty namespace")
	}
	if key == "" {
		return errors.New("empty key")
	}
	return nil
}
