package oauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// DevKeyFileName is the file under the data directory that holds the
// signing key generated in development.
const DevKeyFileName = "jwt-signing-key.pem"

// SigningKeys are the keys of the access tokens: the first signs, every key
// verifies and is published in the JWKS. Keeping the previous key published
// for a while after a rotation lets tokens it signed stay valid until they
// expire.
type SigningKeys struct {
	keys   []*signingKey
	public jwk.Set // public halves of every key, with kid, alg and use
	jwks   []byte  // the JWKS document, rendered once
}

type signingKey struct {
	kid     string
	alg     jwa.SignatureAlgorithm
	private jwk.Key
}

// KeyOptions say where LoadSigningKeys finds the keys.
type KeyOptions struct {
	// File is MCP_JWT_PRIVATE_KEY_FILE: one or more PEM private keys (EC
	// P-256 for ES256, or RSA of at least 2048 bits for RS256; PKCS#8, SEC 1
	// or PKCS#1). The first block signs; later blocks are previous keys,
	// published for verification only.
	File string
	// DataDir is where a development key is generated when File is empty.
	DataDir string
	// Production refuses to generate a key.
	Production bool
	Logger     *slog.Logger
}

// LoadSigningKeys reads the signing keys, or in development generates one
// under DataDir (mode 0600) on first start and reuses it afterwards, so
// tokens survive restarts.
func LoadSigningKeys(o KeyOptions) (*SigningKeys, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.File != "" {
		data, err := os.ReadFile(o.File)
		if err != nil {
			return nil, fmt.Errorf("MCP_JWT_PRIVATE_KEY_FILE: %w", err)
		}
		keys, err := ParsePrivateKeysPEM(data)
		if err != nil {
			return nil, fmt.Errorf("MCP_JWT_PRIVATE_KEY_FILE %s: %w", o.File, err)
		}
		return NewSigningKeys(keys[0], keys[1:]...)
	}
	if o.Production {
		return nil, errors.New("MCP_JWT_PRIVATE_KEY_FILE is required in production")
	}
	path := filepath.Join(o.DataDir, DevKeyFileName)
	data, err := os.ReadFile(path) // #nosec G304 -- the operator's data directory
	switch {
	case err == nil:
		keys, err := ParsePrivateKeysPEM(data)
		if err != nil {
			return nil, fmt.Errorf("generated signing key %s: %w", path, err)
		}
		o.Logger.Warn("signing access tokens with a generated development key; set MCP_JWT_PRIVATE_KEY_FILE in production", "file", path)
		return NewSigningKeys(keys[0], keys[1:]...)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("generated signing key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	pemBytes, err := EncodePrivateKeyPEM(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	// O_EXCL: two processes starting together must not overwrite each
	// other's key; the loser reads the winner's.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the operator's data directory
	if errors.Is(err, fs.ErrExist) {
		return LoadSigningKeys(o)
	}
	if err != nil {
		return nil, fmt.Errorf("write generated signing key: %w", err)
	}
	if _, err := f.Write(pemBytes); err != nil {
		f.Close()
		return nil, fmt.Errorf("write generated signing key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write generated signing key: %w", err)
	}
	o.Logger.Warn("generated a development key for signing access tokens; set MCP_JWT_PRIVATE_KEY_FILE in production", "file", path)
	return NewSigningKeys(key)
}

// ParsePrivateKeysPEM parses every private key block of a PEM file, in order.
func ParsePrivateKeysPEM(data []byte) ([]crypto.Signer, error) {
	var keys []crypto.Signer
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PARAMETERS":
			continue // openssl ecparam writes these before the key
		default:
			return nil, fmt.Errorf("unsupported PEM block %q (want a private key)", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %w", len(keys)+1, err)
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("PEM block %d: unsupported key type %T", len(keys)+1, k)
		}
		keys = append(keys, s)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM private key found")
	}
	return keys, nil
}

// EncodePrivateKeyPEM returns key as a PKCS#8 PEM block.
func EncodePrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// NewSigningKeys builds the key set from a current key and previous keys.
// Key ids are RFC 7638 thumbprints, so the same key always has the same kid
// on every instance.
func NewSigningKeys(current crypto.Signer, previous ...crypto.Signer) (*SigningKeys, error) {
	sk := &SigningKeys{public: jwk.NewSet()}
	seen := map[string]bool{}
	for i, s := range append([]crypto.Signer{current}, previous...) {
		var alg jwa.SignatureAlgorithm
		switch k := s.(type) {
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P256() {
				return nil, fmt.Errorf("key %d: EC keys must use the P-256 curve (ES256)", i+1)
			}
			alg = jwa.ES256()
		case *rsa.PrivateKey:
			if k.N.BitLen() < 2048 {
				return nil, fmt.Errorf("key %d: RSA keys must have at least 2048 bits", i+1)
			}
			alg = jwa.RS256()
		default:
			return nil, fmt.Errorf("key %d: unsupported key type %T (use EC P-256 or RSA)", i+1, s)
		}
		priv, err := jwk.Import(s)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		tp, err := priv.Thumbprint(crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		kid := base64.RawURLEncoding.EncodeToString(tp)
		if seen[kid] {
			continue
		}
		seen[kid] = true
		for _, kv := range [][2]any{{jwk.KeyIDKey, kid}, {jwk.AlgorithmKey, alg}, {jwk.KeyUsageKey, "sig"}} {
			if err := priv.Set(kv[0].(string), kv[1]); err != nil {
				return nil, fmt.Errorf("key %d: %w", i+1, err)
			}
		}
		pub, err := priv.PublicKey()
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if err := sk.public.AddKey(pub); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		sk.keys = append(sk.keys, &signingKey{kid: kid, alg: alg, private: priv})
	}
	jwks, err := json.Marshal(sk.public)
	if err != nil {
		return nil, fmt.Errorf("render JWKS: %w", err)
	}
	sk.jwks = jwks
	return sk, nil
}

// GenerateSigningKeys returns a fresh ES256 key set, for tests and tools.
func GenerateSigningKeys() (*SigningKeys, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return NewSigningKeys(k)
}

// KeyIDs returns the kids of every key, the signing key first.
func (sk *SigningKeys) KeyIDs() []string {
	out := make([]string, len(sk.keys))
	for i, k := range sk.keys {
		out[i] = k.kid
	}
	return out
}

// JWKS returns the JSON Web Key Set document of the public keys.
func (sk *SigningKeys) JWKS() []byte { return sk.jwks }

func (sk *SigningKeys) signer() *signingKey { return sk.keys[0] }
