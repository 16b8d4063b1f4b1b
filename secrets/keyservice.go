package secrets

import (
	"fmt"

	"context"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/keyservice"
)

// ageKeys is a sops key service that knows only age, and only the
// identities it was given. sops's own local key service would read
// SOPS_AGE_KEY* from the process environment on every call; this one passes
// the identity explicitly, so two checkouts (or tests) with different keys
// never see each other's and the environment is never changed.
type ageKeys struct {
	ids *Identities
}

var _ keyservice.KeyServiceServer = ageKeys{}

// client is the key service as sops's Metadata methods take it.
func (k ageKeys) client() []keyservice.KeyServiceClient {
	return []keyservice.KeyServiceClient{keyservice.NewCustomLocalClient(k)}
}

func (k ageKeys) Encrypt(_ context.Context, req *keyservice.EncryptRequest) (*keyservice.EncryptResponse, error) {
	ak, ok := req.Key.GetKeyType().(*keyservice.Key_AgeKey)
	if !ok {
		return nil, fmt.Errorf("orca-sync encrypts for age recipients only, not %T", req.Key.GetKeyType())
	}
	mk, err := sopsage.MasterKeyFromRecipient(ak.AgeKey.Recipient)
	if err != nil {
		return nil, err
	}
	if err := mk.Encrypt(req.Plaintext); err != nil {
		return nil, err
	}
	return &keyservice.EncryptResponse{Ciphertext: mk.EncryptedDataKey()}, nil
}

func (k ageKeys) Decrypt(_ context.Context, req *keyservice.DecryptRequest) (*keyservice.DecryptResponse, error) {
	ak, ok := req.Key.GetKeyType().(*keyservice.Key_AgeKey)
	if !ok {
		return nil, fmt.Errorf("orca-sync decrypts with age only, not %T", req.Key.GetKeyType())
	}
	// With no identity applied, sops's MasterKey would fall back to the
	// environment; refuse before that can happen.
	if k.ids.Len() == 0 {
		return nil, errNoIdentity
	}
	mk := &sopsage.MasterKey{Recipient: ak.AgeKey.Recipient, EncryptedKey: string(req.Ciphertext)}
	k.ids.ids.ApplyToMasterKey(mk)
	pt, err := mk.Decrypt()
	if err != nil {
		return nil, err
	}
	return &keyservice.DecryptResponse{Plaintext: pt}, nil
}
