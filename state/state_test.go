package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openTemp opens a fresh state file in a test directory and closes it at the
// end of the test.
func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

func TestAddSyncAndHistoryOrder(t *testing.T) {
	db, _ := openTemp(t)
	start := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var newestFirst []SyncRecord
	for i := 1; i <= 3; i++ {
		r := SyncRecord{
			ID: 99, Commit: fmt.Sprintf("sha%d", i), Message: "msg", Trigger: "interval", Result: "succeeded",
			Started: start.Add(time.Duration(i) * time.Minute), Finished: start.Add(time.Duration(i)*time.Minute + time.Second),
			Plan:     "1 to update",
			Services: []ServiceResult{{Project: "web", Service: "api", Action: "update", Started: []string{"web-api-1"}, Duration: time.Second}},
		}
		id, err := db.AddSync(r)
		if err != nil || id != uint64(i) {
			t.Fatalf("AddSync #%d = %d, %v; want ID %d (r.ID must be ignored)", i, id, err, i)
		}
		r.ID = id
		newestFirst = append([]SyncRecord{r}, newestFirst...)
	}
	recs, err := db.History(0)
	if err != nil || !reflect.DeepEqual(recs, newestFirst) {
		t.Fatalf("History = %+v, %v;\nwant %+v", recs, err, newestFirst)
	}
	two, err := db.History(2)
	if err != nil || !reflect.DeepEqual(commits(two), []string{"sha3", "sha2"}) {
		t.Fatalf("History(2) = %v, %v", commits(two), err)
	}
}

func TestHistoryLimitDropsOldest(t *testing.T) {
	db, _ := openTemp(t)
	db.SetHistoryLimit(3)
	for i := 1; i <= 5; i++ {
		if _, err := db.AddSync(SyncRecord{Commit: fmt.Sprintf("sha%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := db.History(0)
	if err != nil {
		t.Fatal(err)
	}
	if got := commits(recs); !reflect.DeepEqual(got, []string{"sha5", "sha4", "sha3"}) {
		t.Fatalf("after 5 adds with limit 3: %v", got)
	}
	db.SetHistoryLimit(1)
	id, err := db.AddSync(SyncRecord{Commit: "sha6"})
	if err != nil || id != 6 {
		t.Fatalf("AddSync = %d, %v; IDs must keep counting after drops", id, err)
	}
	if recs, _ := db.History(0); len(recs) != 1 || recs[0].Commit != "sha6" {
		t.Fatalf("after lowering the limit to 1: %v", commits(recs))
	}
}

func TestPinsSurviveReopen(t *testing.T) {
	db, path := openTemp(t)
	since := time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)
	must(t, db.Pin(Pin{Service: "web/api", Hash: "aaa", Reason: "not ready", Since: since}))
	must(t, db.Pin(Pin{Service: "web/api", Hash: "bbb", Reason: "still not ready", Since: since}))
	must(t, db.Pin(Pin{Service: "web/worker", Hash: "ccc", Since: since}))
	must(t, db.Pin(Pin{Service: "db/pg", Hash: "ddd", Since: since}))
	must(t, db.Unpin("web/worker"))
	must(t, db.Unpin("no/such"))
	if err := db.Pin(Pin{Hash: "x"}); err == nil {
		t.Error("Pin with an empty service should fail")
	}
	must(t, db.Close())

	db, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer db.Close()
	pins, err := db.Pins()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Pin{
		"web/api": {Service: "web/api", Hash: "bbb", Reason: "still not ready", Since: since},
		"db/pg":   {Service: "db/pg", Hash: "ddd", Since: since},
	}
	if !reflect.DeepEqual(pins, want) {
		t.Fatalf("Pins after reopen = %+v, want %+v", pins, want)
	}
	must(t, db.ClearPins())
	if pins, err := db.Pins(); err != nil || pins == nil || len(pins) != 0 {
		t.Fatalf("after ClearPins: %v, %v (want an empty, non-nil map)", pins, err)
	}
	must(t, db.Pin(Pin{Service: "web/api", Hash: "eee"}))
	if pins, _ := db.Pins(); pins["web/api"].Hash != "eee" {
		t.Fatalf("Pin after ClearPins: %+v", pins)
	}
}

func TestSeenDelivery(t *testing.T) {
	db, _ := openTemp(t)
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	seen := func(id string, at time.Time) bool {
		t.Helper()
		ok, err := db.SeenDelivery(id, at)
		if err != nil {
			t.Fatalf("SeenDelivery(%q): %v", id, err)
		}
		return ok
	}
	if seen("a", t0) {
		t.Fatal("first delivery reported as seen")
	}
	if !seen("a", t0.Add(time.Hour)) {
		t.Fatal("repeat within 24h not reported as seen")
	}
	if seen("b", t0.Add(2*time.Hour)) {
		t.Fatal("a different ID reported as seen")
	}
	long := strings.Repeat("x", 10_000)
	if seen(long, t0) || !seen(long, t0.Add(time.Minute)) {
		t.Fatal("a very long ID is not de-duplicated")
	}
	if seen("", t0) || seen("", t0) {
		t.Fatal("an empty ID must never count as seen")
	}
	// "a" was last recorded at t0+1h and "b" at t0+2h; at t0+26h+1s both are
	// more than a day old.
	if seen("a", t0.Add(26*time.Hour+time.Second)) {
		t.Fatal("delivery older than 24h reported as seen")
	}
	// The call above purged "b" (t0+2h) and the long ID too.
	if n := countKeys(t, db, deliveriesBucket); n != 1 {
		t.Errorf("deliveries left after purge = %d, want 1 (only the re-recorded a)", n)
	}
	if n := countKeys(t, db, deliveryTimesBucket); n != 1 {
		t.Errorf("index entries left after purge = %d, want 1", n)
	}
}

func TestKeyValueRoundTrip(t *testing.T) {
	db, _ := openTemp(t)
	type canary struct {
		Weight int    `json:"weight"`
		Hash   string `json:"hash"`
	}
	must(t, db.Put("canary", "web/api", canary{Weight: 10, Hash: "abc"}))
	must(t, db.Put("canary", "web/front", canary{Weight: 50}))
	must(t, db.Put("notify", "web/api", "sent"))

	var c canary
	ok, err := db.Get("canary", "web/api", &c)
	if err != nil || !ok || c != (canary{Weight: 10, Hash: "abc"}) {
		t.Fatalf("Get = %+v, %v, %v", c, ok, err)
	}
	for _, nk := range [][2]string{{"canary", "missing"}, {"nobody", "x"}} {
		if ok, err := db.Get(nk[0], nk[1], &c); ok || err != nil {
			t.Fatalf("Get(%s, %s) of nothing = %v, %v", nk[0], nk[1], ok, err)
		}
	}
	keys, err := db.Keys("canary")
	if err != nil || !reflect.DeepEqual(keys, []string{"web/api", "web/front"}) {
		t.Fatalf("Keys = %v, %v", keys, err)
	}
	must(t, db.Delete("canary", "web/api"))
	must(t, db.Delete("canary", "web/api"))
	must(t, db.Delete("nobody", "x"))
	if keys, _ := db.Keys("canary"); !reflect.DeepEqual(keys, []string{"web/front"}) {
		t.Fatalf("Keys after Delete = %v", keys)
	}
	if keys, err := db.Keys("nobody"); err != nil || len(keys) != 0 {
		t.Fatalf("Keys of a missing namespace = %v, %v", keys, err)
	}
	if err := db.Put("", "k", 1); err == nil {
		t.Error("Put with an empty namespace should fail")
	}
	// A namespace named like an internal bucket stays separate from it.
	must(t, db.Put("history", "k", 1))
	if recs, err := db.History(0); err != nil || len(recs) != 0 {
		t.Fatalf("kv namespace leaked into history: %v, %v", recs, err)
	}
}

func TestOpenGarbageIsCorrupt(t *testing.T) {
	for name, content := range map[string][]byte{
		"short text": []byte("this is not a database\n"),
		"garbage":    garbage(64 << 10),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.db")
			must(t, os.WriteFile(path, content, 0o600))
			_, err := Open(path)
			wantCorrupt(t, err, path)
			if got, _ := os.ReadFile(path); string(got) != string(content) {
				t.Error("Open modified a file it could not read")
			}
		})
	}
}

func TestOpenDamagedPagesIsCorrupt(t *testing.T) {
	db, path := openTemp(t)
	for i := 0; i < 50; i++ {
		_, err := db.AddSync(SyncRecord{Commit: strings.Repeat("c", 40), Plan: strings.Repeat("p", 200)})
		must(t, err)
	}
	must(t, db.Close())
	good, err := os.ReadFile(path)
	must(t, err)
	// Keep both meta pages (the first two 4 KiB pages) and trash the rest,
	// so bbolt opens the file but the trees behind it are nonsense.
	bad := append([]byte(nil), good...)
	copy(bad[8192:], garbage(len(bad)-8192))
	must(t, os.WriteFile(path, bad, 0o600))
	_, err = Open(path)
	wantCorrupt(t, err, path)

	// The failed Open must not leave a lock behind: with the good bytes back
	// in the same file, Open succeeds at once.
	must(t, os.WriteFile(path, good, 0o600))
	db, err = Open(path)
	if err != nil {
		t.Fatalf("Open after restoring the file: %v", err)
	}
	defer db.Close()
	if recs, err := db.History(0); err != nil || len(recs) != 50 {
		t.Fatalf("restored history: %d records, %v", len(recs), err)
	}
}

func TestOpenForeignBoltIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	rawUpdate(t, path, func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err })
	_, err := Open(path)
	wantCorrupt(t, err, path)
}

func TestOpenNewerSchema(t *testing.T) {
	db, path := openTemp(t)
	must(t, db.Close())
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(metaBucket)).Put([]byte(schemaKey), []byte(strconv.Itoa(SchemaVersion+1)))
	})
	_, err := Open(path)
	if !errors.Is(err, ErrNewerSchema) {
		t.Fatalf("Open of a newer schema: %v, want ErrNewerSchema", err)
	}
	if msg := err.Error(); !strings.Contains(msg, path) || !strings.Contains(msg, "move it aside") {
		t.Errorf("error lacks the path or the hint: %s", msg)
	}
}

func TestOpenInUse(t *testing.T) {
	_, path := openTemp(t)
	start := time.Now()
	second, err := Open(path)
	took := time.Since(start)
	if err == nil {
		_ = second.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "in use by another orca-sync") || !strings.Contains(err.Error(), path) {
		t.Fatalf("second Open: %v, want the in-use error with the path", err)
	}
	if took > 3*time.Second {
		t.Fatalf("second Open took %s, want under 3s", took)
	}
}

func TestConcurrentAddSync(t *testing.T) {
	db, _ := openTemp(t)
	const workers, each = 8, 20
	var wg sync.WaitGroup
	ids := make(chan uint64, workers*each)
	errs := make(chan error, workers*each)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				db.SetHistoryLimit(1000)
				id, err := db.AddSync(SyncRecord{Commit: fmt.Sprintf("w%d-%d", w, i)})
				if err != nil {
					errs <- err
					return
				}
				ids <- id
				if _, err := db.History(5); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(ids)
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	unique := map[uint64]bool{}
	for id := range ids {
		if unique[id] {
			t.Fatalf("ID %d assigned twice", id)
		}
		unique[id] = true
	}
	recs, err := db.History(0)
	if err != nil || len(recs) != workers*each || len(unique) != workers*each {
		t.Fatalf("History has %d records (%v), %d unique IDs; want %d", len(recs), err, len(unique), workers*each)
	}
}

// rawUpdate edits a bbolt file behind the package's back, to build files
// that Open must refuse.
func rawUpdate(t *testing.T, path string, f func(*bolt.Tx) error) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer b.Close()
	must(t, b.Update(f))
}

// wantCorrupt checks the error an unreadable file must produce.
func wantCorrupt(t *testing.T, err error, path string) {
	t.Helper()
	if err == nil {
		t.Fatal("Open succeeded on an unreadable file")
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("error %v does not wrap ErrCorrupt", err)
	}
	msg := err.Error()
	for _, want := range []string{path, "corrupt", "move it aside to start fresh; history and pins will be lost"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
}

// garbage is deterministic noise: an all-zero page could look like an empty
// bbolt leaf, which would test less.
func garbage(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(b)
	return b
}

// countKeys counts a bucket's entries, to see what a purge left behind.
func countKeys(t *testing.T, db *DB, bucket string) int {
	t.Helper()
	n := 0
	must(t, db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucket)).ForEach(func(_, _ []byte) error { n++; return nil })
	}))
	return n
}

// commits lists the records' commits, to compare order at a glance.
func commits(recs []SyncRecord) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Commit
	}
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestUpdateSync(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	id, err := db.AddSync(SyncRecord{Commit: "abc", Result: "running"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.UpdateSync(SyncRecord{ID: id, Commit: "abc", Result: "succeeded"}); err != nil {
		t.Fatal(err)
	}
	recs, err := db.History(10)
	if err != nil || len(recs) != 1 || recs[0].Result != "succeeded" || recs[0].ID != id {
		t.Fatalf("history = %+v, %v", recs, err)
	}
	if err := db.UpdateSync(SyncRecord{ID: id + 100, Result: "x"}); err != nil {
		t.Fatal(err)
	}
	if recs, _ := db.History(10); len(recs) != 1 {
		t.Fatalf("an update of an unknown ID added a record: %+v", recs)
	}
}
