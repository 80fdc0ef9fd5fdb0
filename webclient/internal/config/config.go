// Package config turns the web client's environment into a validated,
// typed Config. Validation happens once at start-up: a bad value stops the
// process with one line naming the variable, so operators never chase a
// misconfiguration through later, vaguer errors.
package config

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/joho/godotenv"
)

// SecretFileName is the file under WEBCLIENT_DATA_DIR that keeps the
// generated development secret, so sessions and stored tokens survive a
// restart even when WEBCLIENT_SECRET_KEY is not set.
const SecretFileName = "webclient-secret.key"

// minSecretLen is the shortest accepted WEBCLIENT_SECRET_KEY; everything the
// key protects (sessions, CSRF, stored OAuth tokens) needs about 256 bits.
const minSecretLen = 32

// Config is the web client's configuration, as documented in the
// contract's webclient table.
type Config struct {
	Host string // WEBCLIENT_HOST
	Port int    // WEBCLIENT_PORT; 0 picks a free port

	BaseURL              string // WEBCLIENT_BASE_URL, without trailing slash
	MCPServerURL         string // MCP_SERVER_URL, as the browser reaches it
	MCPServerInternalURL string // MCP_SERVER_INTERNAL_URL, as this process reaches it

	OAuthClientID     string   // OAUTH_CLIENT_ID; empty → dynamic registration
	OAuthClientSecret string   // OAUTH_CLIENT_SECRET
	OAuthRedirectURI  string   // OAUTH_REDIRECT_URI
	OAuthScopes       []string // OAUTH_SCOPES

	DatabaseURL string // WEBCLIENT_DATABASE_URL; empty → SQLite under DataDir
	DataDir     string // WEBCLIENT_DATA_DIR

	// SecretKey is WEBCLIENT_SECRET_KEY, or the generated development secret.
	SecretKey []byte
	// SecretGenerated reports that SecretKey came from SecretFileName rather
	// than the environment, so the caller can warn about it.
	SecretGenerated bool
}

// Addr is the listen address.
func (c Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// MCPResource is the OAuth resource indicator and the audience of the
// access tokens: the MCP endpoint as the authorization server names it.
func (c Config) MCPResource() string { return c.MCPServerURL + "/mcp" }

// MCPEndpoint is the MCP endpoint this process connects to.
func (c Config) MCPEndpoint() string { return c.MCPServerInternalURL + "/mcp" }

// SQLitePath is the database file used when DatabaseURL selects SQLite.
func (c Config) SQLitePath() string {
	if p, ok := strings.CutPrefix(c.DatabaseURL, "sqlite://"); ok {
		return p
	}
	return filepath.Join(c.DataDir, "webclient.db")
}

// UsesPostgres reports whether DatabaseURL selects Postgres.
func (c Config) UsesPostgres() bool {
	return strings.HasPrefix(c.DatabaseURL, "postgres://") || strings.HasPrefix(c.DatabaseURL, "postgresql://")
}

// Error names the variable whose value is wrong.
type Error struct {
	Var    string
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("invalid %s: %s", e.Var, e.Reason) }

// FromEnv reads a .env file from the working directory when there is one
// (real environment variables win) and then loads the configuration from
// the process environment.
func FromEnv() (Config, error) {
	if err := godotenv.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Config{}, fmt.Errorf("reading .env: %w", err)
	}
	return Load(os.LookupEnv)
}

// FromMap loads the configuration from a map, for tests and for programs
// that embed the web client with configuration built in code.
func FromMap(m map[string]string) (Config, error) {
	return Load(func(k string) (string, bool) { v, ok := m[k]; return v, ok })
}

// Load builds and validates the configuration from lookup. When
// WEBCLIENT_SECRET_KEY is empty it reads, or creates, the development secret
// under the data directory.
func Load(lookup func(string) (string, bool)) (Config, error) {
	get := func(k, def string) string {
		if v, ok := lookup(k); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	var c Config
	c.Host = get("WEBCLIENT_HOST", "127.0.0.1")
	port, err := strconv.Atoi(get("WEBCLIENT_PORT", "8000"))
	if err != nil || port < 0 || port > 65535 {
		return c, &Error{"WEBCLIENT_PORT", "must be a port number from 0 to 65535"}
	}
	c.Port = port

	if c.BaseURL, err = baseURL("WEBCLIENT_BASE_URL", get("WEBCLIENT_BASE_URL", "http://localhost:8000")); err != nil {
		return c, err
	}
	if c.MCPServerURL, err = baseURL("MCP_SERVER_URL", get("MCP_SERVER_URL", "http://localhost:8001")); err != nil {
		return c, err
	}
	if c.MCPServerInternalURL, err = baseURL("MCP_SERVER_INTERNAL_URL", get("MCP_SERVER_INTERNAL_URL", c.MCPServerURL)); err != nil {
		return c, err
	}

	c.OAuthClientID = get("OAUTH_CLIENT_ID", "")
	c.OAuthClientSecret = get("OAUTH_CLIENT_SECRET", "")
	if c.OAuthClientID == "" && c.OAuthClientSecret != "" {
		return c, &Error{"OAUTH_CLIENT_ID", "must be set when OAUTH_CLIENT_SECRET is set"}
	}
	if c.OAuthClientID != "" && c.OAuthClientSecret == "" {
		return c, &Error{"OAUTH_CLIENT_SECRET", "must be set when OAUTH_CLIENT_ID is set (the web client is a confidential client)"}
	}
	redirect := get("OAUTH_REDIRECT_URI", c.BaseURL+"/oauth/callback")
	if u, perr := url.Parse(redirect); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Fragment != "" {
		return c, &Error{"OAUTH_REDIRECT_URI", "must be an absolute http(s) URL without fragment"}
	}
	c.OAuthRedirectURI = redirect

	c.OAuthScopes = strings.Fields(get("OAUTH_SCOPES", "memories:read memories:write"))
	hasRead := false
	for _, s := range c.OAuthScopes {
		if strings.ContainsAny(s, "\"\\") {
			return c, &Error{"OAUTH_SCOPES", fmt.Sprintf("scope %q contains a forbidden character", s)}
		}
		hasRead = hasRead || s == "memories:read"
	}
	if !hasRead {
		return c, &Error{"OAUTH_SCOPES", "must include memories:read"}
	}

	c.DataDir = get("WEBCLIENT_DATA_DIR", "./.data")
	c.DatabaseURL = get("WEBCLIENT_DATABASE_URL", "")
	if c.DatabaseURL != "" && !c.UsesPostgres() && !strings.HasPrefix(c.DatabaseURL, "sqlite://") {
		return c, &Error{"WEBCLIENT_DATABASE_URL", "must start with postgres://, postgresql:// or sqlite://"}
	}
	if c.DatabaseURL != "" && c.UsesPostgres() {
		if _, perr := url.Parse(c.DatabaseURL); perr != nil {
			return c, &Error{"WEBCLIENT_DATABASE_URL", "is not a valid URL"}
		}
	}
	if strings.HasPrefix(c.DatabaseURL, "sqlite://") && c.SQLitePath() == "" {
		return c, &Error{"WEBCLIENT_DATABASE_URL", "sqlite:// needs a file path"}
	}

	if secret := get("WEBCLIENT_SECRET_KEY", ""); secret != "" {
		if len(secret) < minSecretLen {
			return c, &Error{"WEBCLIENT_SECRET_KEY", fmt.Sprintf("must be at least %d characters", minSecretLen)}
		}
		c.SecretKey = []byte(secret)
	} else {
		key, err := devSecret(c.DataDir)
		if err != nil {
			return c, &Error{"WEBCLIENT_DATA_DIR", err.Error()}
		}
		c.SecretKey, c.SecretGenerated = key, true
	}
	return c, nil
}

// baseURL validates an absolute http(s) URL and strips its trailing slash,
// so paths can be appended without doubling it.
func baseURL(name, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", &Error{name, "must be an absolute http(s) URL"}
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", &Error{name, "must not have a query or fragment"}
	}
	return strings.TrimRight(raw, "/"), nil
}

// devSecret returns the persisted development secret, creating it on first use.
func devSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, SecretFileName)
	if b, err := os.ReadFile(path); err == nil { // #nosec G304 -- the operator's data directory
		s := strings.TrimSpace(string(b))
		if len(s) < minSecretLen {
			return nil, fmt.Errorf("%s is shorter than %d characters; delete it to generate a new one", path, minSecretLen)
		}
		return []byte(s), nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %v", path, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %v", dir, err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	s := base64.RawURLEncoding.EncodeToString(raw)
	// O_EXCL so two processes starting together cannot each write a different secret.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600) // #nosec G304 -- the operator's data directory
	if errors.Is(err, fs.ErrExist) {
		return devSecret(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("creating %s: %v", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(s + "\n"); err != nil {
		return nil, fmt.Errorf("writing %s: %v", path, err)
	}
	return []byte(s), nil
}
