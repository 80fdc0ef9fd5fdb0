package oauthclient

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"

	"github.com/fernet/fernet-go"
)

// sealer encrypts secrets at rest (tokens, client secret, PKCE verifiers)
// with a Fernet key derived from WEBCLIENT_SECRET_KEY, so a copy of the
// database alone does not yield usable credentials.
type sealer struct{ keys []*fernet.Key }

func newSealer(secret []byte) sealer {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("picard webclient token encryption v1"))
	var k fernet.Key
	copy(k[:], m.Sum(nil))
	return sealer{keys: []*fernet.Key{&k}}
}

var errUnseal = errors.New("stored secret cannot be decrypted (was WEBCLIENT_SECRET_KEY changed?)")

func (s sealer) seal(plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	b, err := fernet.EncryptAndSign([]byte(plain), s.keys[0])
	return string(b), err
}

func (s sealer) open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	b := fernet.VerifyAndDecrypt([]byte(sealed), 0, s.keys)
	if b == nil {
		return "", errUnseal
	}
	return string(b), nil
}
