// Package argon2id hashes passwords with Argon2id in the PHC string format
// ($argon2id$v=19$m=…,t=…,p=…$salt$key), which both services use for their
// accounts. Verification reads the parameters from the stored hash, so
// hashes made with older parameters keep working after a change.
package argon2id

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Parameters of new hashes: OWASP's recommended minimum for Argon2id
// (19 MiB, 2 passes, one lane), a balance between resistance to guessing
// and the time a small server spends on each login.
const (
	memoryKiB = 19 * 1024
	passes    = 2
	lanes     = 1
	keyLen    = 32
	saltLen   = 16
)

// Bounds on the parameters of a stored hash. A hash from an untrusted
// source (a restored backup) must not make one verification cost minutes or
// gigabytes.
const (
	maxMemoryKiB = 1 << 20 // 1 GiB
	maxPasses    = 16
	maxLanes     = 16
)

// ErrMalformed means a stored hash is not an Argon2id PHC string this
// package can verify.
var ErrMalformed = errors.New("malformed password hash")

// Hash returns the PHC string of a new hash of password, with a random salt.
func Hash(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("password salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, passes, memoryKiB, lanes, keyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, memoryKiB, passes, lanes,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Check reports whether password matches hash, comparing in constant time.
func Check(hash, password string) (bool, error) {
	h, err := parse(hash)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), h.salt, h.passes, h.memoryKiB, h.lanes, uint32(len(h.key))) // #nosec G115 -- parse bounds the key to 64 bytes
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

// Valid reports whether hash is a well-formed hash Check can afford to
// verify.
func Valid(hash string) bool {
	_, err := parse(hash)
	return err == nil
}

type parsed struct {
	memoryKiB, passes uint32
	lanes             uint8
	salt, key         []byte
}

func parse(hash string) (*parsed, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return nil, ErrMalformed
	}
	var h parsed
	if n, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &h.memoryKiB, &h.passes, &h.lanes); err != nil || n != 3 ||
		h.memoryKiB == 0 || h.memoryKiB > maxMemoryKiB || h.passes == 0 || h.passes > maxPasses || h.lanes == 0 || h.lanes > maxLanes {
		return nil, ErrMalformed
	}
	var err error
	if h.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(h.salt) < 8 {
		return nil, ErrMalformed
	}
	if h.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(h.key) < 16 || len(h.key) > 64 {
		return nil, ErrMalformed
	}
	return &h, nil
}
