package crypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustRing(t *testing.T, keys ...string) *Keyring {
	t.Helper()
	kr, err := ParseKeys(strings.Join(keys, ","))
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestRoundTrip(t *testing.T) {
	kr := mustRing(t, mustKey(t))
	for _, msg := range []string{"", "hello", "a memory with ünïcode ✓", strings.Repeat("x", 40000)} {
		tok, id, err := kr.Seal([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		if id != kr.PrimaryID() {
			t.Errorf("Seal key id = %q, want primary %q", id, kr.PrimaryID())
		}
		got, err := kr.Open(tok)
		if err != nil {
			t.Fatalf("Open(%d bytes): %v", len(msg), err)
		}
		if string(got) != msg {
			t.Errorf("round trip of %d bytes returned %d different bytes", len(msg), len(got))
		}
	}
}

func TestSealedTokenHidesPlaintext(t *testing.T) {
	kr := mustRing(t, mustKey(t))
	plain := []byte("my bank PIN is 4711 and I live at 221B Baker Street")
	tok, _, err := kr.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(tok, plain) || bytes.Contains(tok, []byte("4711")) || bytes.Contains(tok, []byte("Baker")) {
		t.Fatalf("token contains plaintext: %s", tok)
	}
	// Nor in a base64 view of the token's bytes.
	raw, err := base64.URLEncoding.DecodeString(string(tok))
	if err != nil {
		t.Fatalf("token is not URL-safe base64: %v", err)
	}
	if bytes.Contains(raw, []byte("Baker")) {
		t.Fatal("decoded token contains plaintext")
	}
	// Two seals of the same text differ (random IV).
	tok2, _, _ := kr.Seal(plain)
	if bytes.Equal(tok, tok2) {
		t.Fatal("two seals of the same plaintext are identical")
	}
}

func TestRotation(t *testing.T) {
	oldKey, newKey := mustKey(t), mustKey(t)
	oldRing := mustRing(t, oldKey)
	tok, oldID, err := oldRing.Seal([]byte("sealed before rotation"))
	if err != nil {
		t.Fatal(err)
	}

	rotated := mustRing(t, newKey, oldKey)
	if rotated.PrimaryID() == oldID {
		t.Fatal("PrimaryID did not change after prepending a new key")
	}
	if got := rotated.IDs(); len(got) != 2 || got[0] != rotated.PrimaryID() || got[1] != oldID {
		t.Fatalf("IDs() = %v, want [%s %s]", got, rotated.PrimaryID(), oldID)
	}
	got, err := rotated.Open(tok)
	if err != nil || string(got) != "sealed before rotation" {
		t.Fatalf("old token after rotation: %q, %v", got, err)
	}
	tok2, id2, err := rotated.Seal([]byte("sealed after rotation"))
	if err != nil {
		t.Fatal(err)
	}
	if id2 != rotated.PrimaryID() {
		t.Errorf("new seal used key %s, want %s", id2, rotated.PrimaryID())
	}
	// The old ring alone cannot open what the new primary sealed.
	if _, err := oldRing.Open(tok2); !errors.Is(err, ErrOpen) {
		t.Errorf("old ring opened a token of the new key: %v", err)
	}
	// Key ids are stable: parsing the same key again yields the same id.
	if again := mustRing(t, oldKey); again.PrimaryID() != oldID {
		t.Errorf("key id not stable: %s vs %s", again.PrimaryID(), oldID)
	}
	// IDs returns a copy.
	ids := rotated.IDs()
	ids[0] = "mutated"
	if rotated.PrimaryID() == "mutated" || rotated.IDs()[0] == "mutated" {
		t.Error("IDs exposes internal state")
	}
}

func TestOpenFailures(t *testing.T) {
	a, b := mustRing(t, mustKey(t)), mustRing(t, mustKey(t))
	tok, _, err := a.Seal([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(tok)
	tampered[len(tampered)/2] ^= 'A' ^ 'B'
	if tampered[len(tampered)/2] == tok[len(tok)/2] {
		tampered[len(tampered)/2] = 'Z'
	}
	for name, tk := range map[string][]byte{
		"wrong key": tok,
		"garbage":   []byte("not a token"),
		"empty":     nil,
		"truncated": tok[:len(tok)-10],
	} {
		ring := a
		if name == "wrong key" {
			ring = b
		}
		if _, err := ring.Open(tk); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: Open err = %v, want ErrOpen", name, err)
		}
	}
	if _, err := a.Open(tampered); !errors.Is(err, ErrOpen) {
		t.Errorf("tampered: Open err = %v, want ErrOpen", err)
	}
}

func TestParseKeys(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	raw, _ := base64.URLEncoding.DecodeString(k1)
	std := base64.StdEncoding.EncodeToString(raw)
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))

	ok := []struct{ name, in string }{
		{"one key", k1},
		{"two keys", k1 + "," + k2},
		{"spaces", " " + k1 + " ,\t" + k2 + "\n"},
		{"standard base64", std},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseKeys(tc.in); err != nil {
				t.Fatalf("ParseKeys: %v", err)
			}
		})
	}
	if a, b := mustRing(t, k1), mustRing(t, std); a.PrimaryID() != b.PrimaryID() {
		t.Error("standard and URL-safe encodings of one key have different ids")
	}

	bad := []struct {
		name, in string
		want     []string // substrings of the error
	}{
		{"empty", "", []string{"no encryption keys"}},
		{"blank", "  ", []string{"no encryption keys"}},
		{"not base64", "not-a-key!!", []string{"key 1 of 1", "not a valid Fernet key"}},
		{"second malformed", k1 + ",abc", []string{"key 2 of 2"}},
		{"third too short", k1 + "," + k2 + "," + short, []string{"key 3 of 3", "32 bytes"}},
		{"empty middle", k1 + ",," + k2, []string{"key 2 of 3 is empty"}},
		{"trailing comma", k1 + ",", []string{"key 2 of 2 is empty"}},
		{"duplicate", k1 + "," + k2 + "," + k1, []string{"key 3 of 3 duplicates key 1"}},
		{"duplicate other encoding", k1 + "," + std, []string{"key 2 of 2 duplicates key 1"}},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKeys(tc.in)
			if err == nil {
				t.Fatal("ParseKeys accepted a bad key list")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), k1) || strings.Contains(err.Error(), k2) {
				t.Errorf("error leaks key material: %q", err)
			}
		})
	}
	if _, err := ParseKeys(""); !errors.Is(err, ErrNoKeys) {
		t.Errorf("empty list: err = %v, want ErrNoKeys", err)
	}
}

func TestGenerateKey(t *testing.T) {
	k1, k2 := mustKey(t), mustKey(t)
	if k1 == k2 {
		t.Fatal("two generated keys are equal")
	}
	raw, err := base64.URLEncoding.DecodeString(k1)
	if err != nil || len(raw) != 32 {
		t.Fatalf("generated key %q: %d bytes, %v", k1, len(raw), err)
	}
}

func TestLoadOrCreateDevKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "nested")
	keys, created, err := LoadOrCreateDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("created = false on first call")
	}
	kr, err := ParseKeys(keys)
	if err != nil {
		t.Fatalf("generated dev keys do not parse: %v", err)
	}
	if len(kr.IDs()) != 1 {
		t.Errorf("dev keys hold %d keys, want 1", len(kr.IDs()))
	}

	if runtime.GOOS != "windows" {
		fi, err := os.Stat(filepath.Join(dir, DevKeysFile))
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("key file mode = %o, want 600", perm)
		}
		di, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if perm := di.Mode().Perm(); perm != 0o700 {
			t.Errorf("data dir mode = %o, want 700", perm)
		}
	}

	again, created, err := LoadOrCreateDevKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if created || again != keys {
		t.Errorf("second call: created=%v, same keys=%v", created, again == keys)
	}

	// A corrupt key file is reported, not silently replaced.
	if err := os.WriteFile(filepath.Join(dir, DevKeysFile), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateDevKeys(dir); err == nil || !strings.Contains(err.Error(), "key 1 of 1") {
		t.Errorf("corrupt key file: err = %v", err)
	}
}
