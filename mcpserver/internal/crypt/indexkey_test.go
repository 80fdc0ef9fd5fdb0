package crypt

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadOrCreateDevIndexKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, created, err := LoadOrCreateDevIndexKey(dir)
	if err != nil || !created || len(k1) != IndexKeySize {
		t.Fatalf("first call: %d bytes, created %v, %v", len(k1), created, err)
	}
	fi, err := os.Stat(filepath.Join(dir, DevIndexKeyFile))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	k2, created, err := LoadOrCreateDevIndexKey(dir)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("second call: created %v, same %v, %v", created, bytes.Equal(k1, k2), err)
	}
	if err := os.WriteFile(filepath.Join(dir, DevIndexKeyFile), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateDevIndexKey(dir); err == nil {
		t.Fatal("a damaged key file was accepted")
	}
}
