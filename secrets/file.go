package secrets

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/cmd/sops/formats"
	sopsconfig "github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/version"
)

// File is one decrypted SOPS file, in memory only. Its values are the
// top-level keys of the document (YAML, JSON) or its lines (dotenv).
type File struct {
	// Path names the file in messages (relative to the checkout root).
	Path    string
	store   common.Store
	tree    *sops.Tree
	dataKey []byte
	hashKey []byte
}

// FileError is a problem of one secrets file.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

func fileErr(path, format string, args ...any) error {
	return &FileError{Path: path, Err: fmt.Errorf(format, args...)}
}

// FormatFor is the sops format of a secrets file by its name: YAML, JSON or
// dotenv; anything else is an error.
func FormatFor(path string) (formats.Format, error) {
	switch {
	case strings.HasSuffix(path, ".yaml"), strings.HasSuffix(path, ".yml"):
		return formats.Yaml, nil
	case strings.HasSuffix(path, ".json"):
		return formats.Json, nil
	case strings.HasSuffix(path, ".env"):
		return formats.Dotenv, nil
	}
	return 0, fileErr(path, "a secrets file must end in .yaml, .yml, .json or .env")
}

// Decrypt decrypts data, the content of the SOPS file path, with ids. It does
// what sops's decrypt.DataWithFormat does — load the store, recover the data
// key, decrypt the tree, verify the MAC — with two differences that are the
// reason it does not call it: the identity is passed explicitly instead of
// read from the process environment, and the data key is kept, for the keyed
// hash of the values and to re-encrypt an edited file with the same key.
func Decrypt(path string, data []byte, ids *Identities) (*File, error) {
	format, err := FormatFor(path)
	if err != nil {
		return nil, err
	}
	store := common.StoreForFormat(format, sopsconfig.NewStoresConfig())
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		return nil, fileErr(path, "not a readable SOPS file: %w", err)
	}
	if err := ids.canOpen(tree.Metadata); err != nil {
		return nil, fileErr(path, "cannot be decrypted: %w", err)
	}
	key, err := tree.Metadata.GetDataKeyWithKeyServices(ageKeys{ids}.client(), nil)
	if err != nil {
		return nil, fileErr(path, "cannot be decrypted with %s: %w", ids.describe(), err)
	}
	cipher := aes.NewCipher()
	mac, err := tree.Decrypt(key, cipher)
	if err != nil {
		return nil, fileErr(path, "cannot be decrypted: its values do not match its data key (tampered or corrupt): %w", err)
	}
	stored, err := cipher.Decrypt(tree.Metadata.MessageAuthenticationCode, key, tree.Metadata.LastModified.Format("2006-01-02T15:04:05Z07:00"))
	if err != nil || stored != mac {
		// Never print the MACs: they are digests of the values.
		return nil, fileErr(path, "cannot be decrypted: it failed its integrity check (MAC mismatch), so it was changed without sops; restore it from git or re-encrypt it")
	}
	return newFile(path, store, &tree, key), nil
}

func newFile(path string, store common.Store, tree *sops.Tree, key []byte) *File {
	hk, err := hkdf.Key(sha256.New, key, nil, "orca-sync secret hash v1", 32)
	if err != nil {
		panic(err) // only for an out-of-range length
	}
	return &File{Path: path, store: store, tree: tree, dataKey: key, hashKey: hk}
}

// canOpen tells a host without the right key apart before asking sops,
// whose error for it is a wall of text.
func (i *Identities) canOpen(m sops.Metadata) error {
	if i.Len() == 0 {
		return errNoIdentity
	}
	var recipients []string
	for _, g := range m.KeyGroups {
		for _, k := range g {
			if ak, ok := k.(*sopsage.MasterKey); ok {
				recipients = append(recipients, ak.Recipient)
			}
		}
	}
	if len(recipients) == 0 {
		return errors.New("it has no age recipient (orca-sync decrypts with age only)")
	}
	// Only X25519 identities have a known recipient; with any other kind
	// (SSH keys) let sops try.
	if len(i.recipients) < len(i.ids) {
		return nil
	}
	for _, r := range recipients {
		if slices.Contains(i.recipients, r) {
			return nil
		}
	}
	return fmt.Errorf("it is encrypted for %s, and this host's age identity (%s, public key %s) is not one of them",
		strings.Join(recipients, ", "), i.describe(), strings.Join(i.recipients, ", "))
}

// Names are the file's secret names, in file order.
func (f *File) Names() []string {
	var names []string
	for _, it := range f.branch() {
		if k, ok := it.Key.(string); ok {
			names = append(names, k)
		}
	}
	return names
}

// Get returns the value of name. ok is false when the file has no such key;
// err is set when it has one that is not a single value (a map or a list).
func (f *File) Get(name string) (value string, ok bool, err error) {
	for _, it := range f.branch() {
		if k, isStr := it.Key.(string); !isStr || k != name {
			continue
		}
		v, err := scalar(it.Value)
		if err != nil {
			return "", true, fmt.Errorf("%s in %s %w", name, f.Path, err)
		}
		return v, true, nil
	}
	return "", false, nil
}

func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case nil:
		return "", nil
	case bool:
		return strconv.FormatBool(v), nil
	case int:
		return strconv.Itoa(v), nil
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), nil
	case sops.TreeBranch:
		return "", errors.New("is a map, not a single value")
	case []any:
		return "", errors.New("is a list, not a single value")
	}
	return "", fmt.Errorf("is a %T, not a single value", v)
}

// Set sets name to value, adding it at the end when it is new.
func (f *File) Set(name, value string) {
	b := f.branch()
	for i, it := range b {
		if k, ok := it.Key.(string); ok && k == name {
			b[i].Value = value
			return
		}
	}
	f.tree.Branches[0] = append(b, sops.TreeItem{Key: name, Value: value})
}

// Remove deletes name; it reports whether the file had it.
func (f *File) Remove(name string) bool {
	b := f.branch()
	for i, it := range b {
		if k, ok := it.Key.(string); ok && k == name {
			f.tree.Branches[0] = slices.Delete(b, i, i+1)
			return true
		}
	}
	return false
}

func (f *File) branch() sops.TreeBranch {
	if len(f.tree.Branches) == 0 {
		f.tree.Branches = sops.TreeBranches{sops.TreeBranch{}}
	}
	return f.tree.Branches[0]
}

// Hash is the keyed hash of name's value: HMAC-SHA256 under a key derived
// (HKDF) from the file's data key. Only a holder of the data key — who can
// decrypt the file anyway — can compute it, so a label never lets anyone test
// a guess. It is the same on every host and after every restart, and stays so
// while the file keeps its data key (sops edit, sops set and orca-sync secrets
// set all do; sops rotate or a fresh sops -e do not).
func (f *File) Hash(name, value string) string {
	m := hmac.New(sha256.New, f.hashKey)
	m.Write([]byte(name))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// Encrypt returns the file encrypted again, as sops does after an edit: the
// same data key and recipients, values encrypted by common.EncryptTree (new
// MAC and lastmodified). The File is consumed: its tree now holds
// ciphertext.
func (f *File) Encrypt() ([]byte, error) {
	if f.tree == nil {
		return nil, errors.New("secrets file already encrypted")
	}
	if err := common.EncryptTree(common.EncryptTreeOpts{Tree: f.tree, Cipher: aes.NewCipher(), DataKey: f.dataKey}); err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", f.Path, err)
	}
	out, err := f.store.EmitEncryptedFile(*f.tree)
	f.tree = nil
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", f.Path, err)
	}
	return out, nil
}

// Create starts a new, empty SOPS file for path, encrypted (once Encrypt is
// called) for the age recipients of the creation rule rules gives, as sops
// would: a fresh data key, the rule's key groups and suffix settings.
func Create(path string, rule *sopsconfig.Config) (*File, error) {
	format, err := FormatFor(path)
	if err != nil {
		return nil, err
	}
	if rule == nil || len(rule.KeyGroups) == 0 {
		return nil, fmt.Errorf("%s is new and no .sops.yaml creation rule gives its recipients", path)
	}
	md := sops.Metadata{
		KeyGroups:               rule.KeyGroups,
		ShamirThreshold:         rule.ShamirThreshold,
		UnencryptedSuffix:       rule.UnencryptedSuffix,
		EncryptedSuffix:         rule.EncryptedSuffix,
		UnencryptedRegex:        rule.UnencryptedRegex,
		EncryptedRegex:          rule.EncryptedRegex,
		UnencryptedCommentRegex: rule.UnencryptedCommentRegex,
		EncryptedCommentRegex:   rule.EncryptedCommentRegex,
		MACOnlyEncrypted:        rule.MACOnlyEncrypted,
		Version:                 version.Version,
	}
	if md.UnencryptedSuffix == "" && md.EncryptedSuffix == "" && md.UnencryptedRegex == "" && md.EncryptedRegex == "" &&
		md.UnencryptedCommentRegex == "" && md.EncryptedCommentRegex == "" {
		md.UnencryptedSuffix = sops.DefaultUnencryptedSuffix
	}
	tree := &sops.Tree{Branches: sops.TreeBranches{sops.TreeBranch{}}, Metadata: md, FilePath: path}
	key, errs := tree.GenerateDataKeyWithKeyServices(ageKeys{}.client())
	if len(errs) > 0 {
		return nil, fmt.Errorf("create %s: %v", path, errors.Join(errs...))
	}
	store := common.StoreForFormat(format, sopsconfig.NewStoresConfig())
	return newFile(path, store, tree, key), nil
}
