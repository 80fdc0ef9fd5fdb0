package crypt

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DevIndexKeyFile is the name of the file, inside the data directory, that
// holds the generated development key of the lexical blind index.
const DevIndexKeyFile = "index.key"

// IndexKeySize is the size of a blind index key in bytes.
const IndexKeySize = 32

// LoadOrCreateDevIndexKey returns the blind index key stored in
// dataDir/index.key (base64), creating the directory (0700) and the file
// (0600) with a fresh random key when it does not exist; created reports
// that. Like [LoadOrCreateDevKeys] it is meant for development only:
// production configuration sets MCP_INDEX_KEY.
func LoadOrCreateDevIndexKey(dataDir string) (key []byte, created bool, err error) {
	path := filepath.Join(dataDir, DevIndexKeyFile)
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's data directory
	switch {
	case err == nil:
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != IndexKeySize {
			return nil, false, fmt.Errorf("crypt: dev index key in %s is not %d bytes in base64", path, IndexKeySize)
		}
		return k, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("crypt: read dev index key: %w", err)
	}

	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, false, fmt.Errorf("crypt: create data dir: %w", err)
	}
	k := make([]byte, IndexKeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, false, fmt.Errorf("crypt: generate index key: %w", err)
	}
	// O_EXCL: if another process created the file in the meantime, use its
	// key rather than overwrite it and orphan the index it built.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the operator's data directory
	if errors.Is(err, os.ErrExist) {
		return LoadOrCreateDevIndexKey(dataDir)
	}
	if err != nil {
		return nil, false, fmt.Errorf("crypt: create dev index key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return nil, false, fmt.Errorf("crypt: write dev index key: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return nil, false, fmt.Errorf("crypt: write dev index key: %w", err)
	}
	return k, true, nil
}
