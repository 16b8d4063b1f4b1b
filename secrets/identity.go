// Package secrets decrypts and edits the SOPS files of an infra checkout
// with age, and resolves the ${secrets.NAME} references of a loaded checkout
// against them. Decrypted values live only in memory.
package secrets

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	sopsage "github.com/getsops/sops/v3/age"
)

// Identities are the age identities this host decrypts with. The zero value
// holds none: every file then fails to decrypt with a message that says how
// to configure one.
type Identities struct {
	ids sopsage.ParsedIdentities
	// from names where the identities came from, for messages.
	from []string
	// recipients are the public keys of ids, to tell "wrong key" apart.
	recipients []string
}

// Environment variables sops reads, and so do we.
const (
	EnvKeyFile = "SOPS_AGE_KEY_FILE"
	EnvKey     = "SOPS_AGE_KEY"
)

// LoadIdentities reads the age identities: from keyFile (--age-key-file) when
// it is set, else from $SOPS_AGE_KEY_FILE and $SOPS_AGE_KEY, else from sops's
// default key file (<user config dir>/sops/age/keys.txt) when it exists.
// getenv is os.Getenv outside tests. Having none is not an error here.
func LoadIdentities(keyFile string, getenv func(string) string) (*Identities, error) {
	ids := &Identities{}
	if keyFile != "" {
		return ids, ids.importFile(keyFile, "--age-key-file "+keyFile)
	}
	if f := getenv(EnvKeyFile); f != "" {
		if err := ids.importFile(f, EnvKeyFile+"="+f); err != nil {
			return nil, err
		}
	}
	if k := getenv(EnvKey); k != "" {
		if err := ids.importText(k, EnvKey); err != nil {
			return nil, err
		}
	}
	if len(ids.ids) == 0 {
		if dir, err := os.UserConfigDir(); err == nil {
			def := filepath.Join(dir, "sops", "age", "keys.txt")
			if _, err := os.Stat(def); err == nil {
				return ids, ids.importFile(def, def)
			}
		}
	}
	return ids, nil
}

// ParseIdentities parses age identities from text (one AGE-SECRET-KEY-1… a
// line, # comments allowed), as in a keys.txt.
func ParseIdentities(text, from string) (*Identities, error) {
	ids := &Identities{}
	return ids, ids.importText(text, from)
}

func (i *Identities) importFile(path, from string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read age identity: %w", err)
	}
	return i.importText(string(b), from)
}

func (i *Identities) importText(text, from string) error {
	var parsed sopsage.ParsedIdentities
	if err := parsed.Import(text); err != nil {
		// The parse error may quote the key material; say where, not what.
		return fmt.Errorf("%s: not a valid age identity file (one AGE-SECRET-KEY-1... per line)", from)
	}
	if len(parsed) == 0 {
		return fmt.Errorf("%s: holds no age identity", from)
	}
	i.ids = append(i.ids, parsed...)
	i.from = append(i.from, from)
	for _, id := range parsed {
		if x, ok := id.(*age.X25519Identity); ok {
			i.recipients = append(i.recipients, x.Recipient().String())
		}
	}
	return nil
}

// Len is the number of identities.
func (i *Identities) Len() int {
	if i == nil {
		return 0
	}
	return len(i.ids)
}

// Recipients are the public keys of the identities.
func (i *Identities) Recipients() []string {
	if i == nil {
		return nil
	}
	return i.recipients
}

// errNoIdentity is returned when a file must be decrypted and no identity is
// configured.
var errNoIdentity = errors.New("no age identity is configured on this host: pass --age-key-file, or set " + EnvKeyFile + " or " + EnvKey)

func (i *Identities) describe() string {
	if i.Len() == 0 {
		return "none"
	}
	return strings.Join(i.from, ", ")
}
