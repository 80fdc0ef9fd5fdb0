package oauth_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"picard.dev/mcpserver/internal/oauth"
)

func TestLoadSigningKeys(t *testing.T) {
	dir := t.TempDir()
	if _, err := oauth.LoadSigningKeys(oauth.KeyOptions{DataDir: dir, Production: true}); err == nil {
		t.Fatal("production without a key file must fail")
	}
	k1, err := oauth.LoadSigningKeys(oauth.KeyOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, oauth.DevKeyFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file: %v %v", st, err)
	}
	k2, err := oauth.LoadSigningKeys(oauth.KeyOptions{DataDir: dir})
	if err != nil || k2.KeyIDs()[0] != k1.KeyIDs()[0] {
		t.Fatalf("the generated key is not reused: %v", err)
	}

	// Rotation: a PEM file with the new key first and the old one after.
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rs, _ := rsa.GenerateKey(rand.Reader, 2048)
	newPEM, _ := oauth.EncodePrivateKeyPEM(ec)
	oldPEM, _ := os.ReadFile(filepath.Join(dir, oauth.DevKeyFileName))
	rsaPEM, _ := oauth.EncodePrivateKeyPEM(rs)
	file := filepath.Join(dir, "keys.pem")
	if err := os.WriteFile(file, append(append(newPEM, oldPEM...), rsaPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := oauth.LoadSigningKeys(oauth.KeyOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if ids := ks.KeyIDs(); len(ids) != 3 || ids[1] != k1.KeyIDs()[0] {
		t.Fatalf("key ids %v", ids)
	}
	var jwks struct{ Keys []map[string]any }
	if err := json.Unmarshal(ks.JWKS(), &jwks); err != nil || len(jwks.Keys) != 3 || jwks.Keys[2]["alg"] != "RS256" {
		t.Fatalf("jwks %s", ks.JWKS())
	}
	for _, k := range jwks.Keys {
		if k["d"] != nil || k["p"] != nil {
			t.Fatal("private material in the JWKS")
		}
	}
	for name, data := range map[string]string{"empty": "", "garbage": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"} {
		f := filepath.Join(dir, name+".pem")
		os.WriteFile(f, []byte(data), 0o600)
		if _, err := oauth.LoadSigningKeys(oauth.KeyOptions{File: f}); err == nil {
			t.Errorf("%s key file accepted", name)
		}
	}
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	if _, err := oauth.NewSigningKeys(small); err == nil {
		t.Error("1024-bit RSA key accepted")
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := oauth.NewSigningKeys(p384); err == nil {
		t.Error("P-384 key accepted for ES256")
	}
}

// TestKeyRotation: tokens signed by the previous key stay valid while it
// is published; new tokens are signed by the new key.
func TestKeyRotation(t *testing.T) {
	h := newHarness(t, backends()[0])
	_, _, tok := h.tokens(true, "rotate@example.com")
	oldToken := tok["access_token"].(string)

	newKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rotated, err := oauth.NewSigningKeys(newKey, h.key)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := oauth.New(oauth.Options{Issuer: h.issuer, Users: h.users, Store: h.db.OAuth(), Keys: rotated, Now: h.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Verify(h.ctx, oldToken); err != nil {
		t.Fatalf("token of the previous key refused during rotation: %v", err)
	}
	u, _ := h.users.ByEmail(h.ctx, "rotate@example.com")
	pat, err := srv.IssuePersonalToken(h.ctx, u.ID, []string{"memories:read"}, 0+3600e9)
	if err != nil {
		t.Fatal(err)
	}
	// The old server (old key only) cannot verify the new key's token:
	// proof it was signed by the new key.
	if _, err := h.srv.Verify(h.ctx, pat); err == nil {
		t.Fatal("new token verified by the old key alone")
	}
	// After the previous key is removed, its tokens are refused.
	final, _ := oauth.NewSigningKeys(newKey)
	srv2, _ := oauth.New(oauth.Options{Issuer: h.issuer, Users: h.users, Store: h.db.OAuth(), Keys: final, Now: h.clock.Now})
	if _, err := srv2.Verify(h.ctx, oldToken); err == nil {
		t.Fatal("token of a removed key accepted")
	}
}
