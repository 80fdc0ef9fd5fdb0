// Package crypt seals memory text at rest with Fernet tokens and supports key
// rotation: a Keyring holds several keys, the first one seals and every one
// of them opens. Each key has a short, stable id so that a store can record
// which key sealed a row and re-encrypt only the rows still sealed by an old
// key.
package crypt

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/fernet/fernet-go"
)

// DevKeysFile is the name of the file, inside the data directory, that holds
// the generated development keys.
const DevKeysFile = "encryption.keys"

// ErrOpen is returned by [Keyring.Open] when no key of the ring can verify and
// decrypt a token: it was sealed with a key that is not in the ring, or it was
// altered, truncated or is not a Fernet token at all.
var ErrOpen = errors.New("crypt: token cannot be opened with any configured key")

// ErrNoKeys is returned by [ParseKeys] when the list holds no key.
var ErrNoKeys = errors.New("crypt: no encryption keys configured")

// Keyring is an ordered set of Fernet keys. The first (primary) key seals;
// all keys open. A Keyring is immutable and safe for concurrent use; build
// one with [ParseKeys] (the zero value holds no key and cannot seal).
type Keyring struct {
	keys []*fernet.Key
	ids  []string
}

// ParseKeys builds a Keyring from a comma-separated list of Fernet keys, as
// found in MCP_ENCRYPTION_KEYS. Each key is the base64 encoding (standard or
// URL-safe, as Python's cryptography library writes it) of 32 random bytes;
// surrounding white space is ignored. The first key becomes the primary key.
// Errors name the offending key by its 1-based position and never echo key
// material.
func ParseKeys(s string) (*Keyring, error) {
	if strings.TrimSpace(s) == "" {
		return nil, ErrNoKeys
	}
	parts := strings.Split(s, ",")
	kr := &Keyring{
		keys: make([]*fernet.Key, 0, len(parts)),
		ids:  make([]string, 0, len(parts)),
	}
	seen := make(map[string]int, len(parts))
	for i, p := range parts {
		pos := i + 1
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("crypt: encryption key %d of %d is empty", pos, len(parts))
		}
		k, err := fernet.DecodeKey(p)
		if err != nil {
			return nil, fmt.Errorf("crypt: encryption key %d of %d is not a valid Fernet key (want base64 of 32 bytes): %w", pos, len(parts), err)
		}
		id := keyID(k)
		if prev, dup := seen[id]; dup {
			return nil, fmt.Errorf("crypt: encryption key %d of %d duplicates key %d", pos, len(parts), prev)
		}
		seen[id] = pos
		kr.keys = append(kr.keys, k)
		kr.ids = append(kr.ids, id)
	}
	return kr, nil
}

// keyID is the first 8 hex characters of the SHA-256 of the key bytes: short
// enough to store on every row, stable across restarts, and revealing nothing
// useful about the key.
func keyID(k *fernet.Key) string {
	sum := sha256.Sum256(k[:])
	return hex.EncodeToString(sum[:4])
}

// Seal encrypts and authenticates plaintext with the primary key. It returns
// the Fernet token (URL-safe base64 text) and the id of the key that sealed it.
func (kr *Keyring) Seal(plaintext []byte) (token []byte, keyID string, err error) {
	tok, err := fernet.EncryptAndSign(plaintext, kr.keys[0])
	if err != nil {
		return nil, "", fmt.Errorf("crypt: seal: %w", err)
	}
	return tok, kr.ids[0], nil
}

// Open verifies and decrypts a token sealed by any key of the ring. Tokens do
// not expire. It returns [ErrOpen] when no key fits.
func (kr *Keyring) Open(token []byte) ([]byte, error) {
	// ttl 0: Fernet's timestamp is not checked, a memory stays readable forever.
	msg := fernet.VerifyAndDecrypt(token, 0, kr.keys)
	if msg == nil {
		return nil, ErrOpen
	}
	return msg, nil
}

// PrimaryID returns the id of the key that seals new tokens.
func (kr *Keyring) PrimaryID() string { return kr.ids[0] }

// IDs returns the ids of all keys, primary first. The slice is a copy.
func (kr *Keyring) IDs() []string {
	out := make([]string, len(kr.ids))
	copy(out, kr.ids)
	return out
}

// GenerateKey returns a new random Fernet key, URL-safe base64 encoded, the
// same format Python's Fernet.generate_key produces.
func GenerateKey() (string, error) {
	var k fernet.Key
	if err := k.Generate(); err != nil {
		return "", fmt.Errorf("crypt: generate key: %w", err)
	}
	return k.Encode(), nil
}

// LoadOrCreateDevKeys returns the keys stored in dataDir/encryption.keys,
// creating the directory (0700) and a file (0600) holding one fresh key when
// the file does not exist; created reports that. It is meant for development
// only: production configuration must set MCP_ENCRYPTION_KEYS. The returned
// string is validated with [ParseKeys].
func LoadOrCreateDevKeys(dataDir string) (keysString string, created bool, err error) {
	path := filepath.Join(dataDir, DevKeysFile)
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's data directory
	switch {
	case err == nil:
		s := strings.TrimSpace(string(b))
		if _, err := ParseKeys(s); err != nil {
			return "", false, fmt.Errorf("crypt: dev keys in %s: %w", path, err)
		}
		return s, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", false, fmt.Errorf("crypt: read dev keys: %w", err)
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", false, fmt.Errorf("crypt: create data dir: %w", err)
	}
	key, err := GenerateKey()
	if err != nil {
		return "", false, err
	}
	// O_EXCL: if another process created the file in the meantime, use its key
	// rather than overwrite it and lose access to what it sealed.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the operator's data directory
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateDevKeys(dataDir)
	}
	if err != nil {
		return "", false, fmt.Errorf("crypt: create dev keys: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return "", false, fmt.Errorf("crypt: write dev keys: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return "", false, fmt.Errorf("crypt: write dev keys: %w", err)
	}
	return key, true, nil
}
