// Package config turns the environment into the typed configuration of
// mcpserver, validated once at start. A bad value is reported as one line
// naming the variable, and stops start-up.
package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// Environments.
const (
	Development = "development"
	Production  = "production"
)

// Embedders.
const (
	EmbedderOpenAI = "openai"
	EmbedderHash   = "hash"
)

// Config is the configuration of mcpserver. Field comments name the
// variable each one comes from.
type Config struct {
	Host              string        // MCP_SERVER_HOST
	Port              int           // MCP_SERVER_PORT (0 picks a free port)
	IssuerURL         string        // MCP_ISSUER_URL, without a trailing slash
	DatabaseURL       string        // MCP_DATABASE_URL or POSTGRES_*; empty selects SQLite
	DataDir           string        // MCP_DATA_DIR
	EncryptionKeys    string        // MCP_ENCRYPTION_KEYS; empty: generated dev keys
	IndexKey          []byte        // MCP_INDEX_KEY, 32 bytes (base64 in the variable); nil: generated dev key
	JWTPrivateKeyFile string        // MCP_JWT_PRIVATE_KEY_FILE; empty: generated dev key
	Env               string        // MCP_ENV
	Embedder          string        // MCP_EMBEDDER
	OpenAIAPIKey      string        // OPENAI_API_KEY
	OpenAIBaseURL     string        // OPENAI_BASE_URL
	EmbeddingModel    string        // MCP_EMBEDDING_MODEL
	ChatModel         string        // MCP_CHAT_MODEL
	AllowedOrigins    []string      // MCP_ALLOWED_ORIGINS
	RateLimit         float64       // MCP_RATE_LIMIT, requests per second per token; 0 disables
	Stateful          bool          // MCP_STATEFUL
	WebClientURL      string        // WEBCLIENT_BASE_URL, an allowed origin by default
	LogLevel          string        // MCP_LOG_LEVEL: debug, info, warn, error
	RequestTimeout    time.Duration // MCP_REQUEST_TIMEOUT: deadline of one request to /mcp or /api
	// PersonaMaxTemperature and PersonaMaxTokens bound the model
	// parameters a user may choose for their persona.
	PersonaMaxTemperature float64 // MCP_PERSONA_MAX_TEMPERATURE, 0–2
	PersonaMaxTokens      int     // MCP_PERSONA_MAX_TOKENS, 1–8192
}

// Error is a configuration error naming its variable.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string { return "config: " + e.Var + ": " + e.Msg }

// ErrInvalid matches every *Error with errors.Is.
var ErrInvalid = errors.New("invalid configuration")

// Is makes errors.Is(err, ErrInvalid) true.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// FromEnvironment reads a .env file in the working directory if there is
// one (without overriding variables already set), then the environment.
func FromEnvironment() (*Config, error) {
	if err := godotenv.Load(); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, &Error{Var: ".env", Msg: err.Error()}
	}
	return Load(os.Getenv)
}

// Load builds and validates a Config from a lookup function; tests pass a
// map's lookup instead of the process environment.
func Load(getenv func(string) string) (*Config, error) {
	r := reader{get: getenv}
	c := &Config{
		Host:              r.str("MCP_SERVER_HOST", "127.0.0.1"),
		Port:              r.port("MCP_SERVER_PORT", 8001),
		IssuerURL:         strings.TrimRight(r.url("MCP_ISSUER_URL", "http://localhost:8001"), "/"),
		DataDir:           r.str("MCP_DATA_DIR", "./.data"),
		EncryptionKeys:    r.str("MCP_ENCRYPTION_KEYS", ""),
		IndexKey:          r.key32("MCP_INDEX_KEY"),
		JWTPrivateKeyFile: r.str("MCP_JWT_PRIVATE_KEY_FILE", ""),
		Env:               r.oneOf("MCP_ENV", Development, Development, Production),
		OpenAIAPIKey:      r.str("OPENAI_API_KEY", ""),
		OpenAIBaseURL:     r.url("OPENAI_BASE_URL", ""),
		EmbeddingModel:    r.str("MCP_EMBEDDING_MODEL", "text-embedding-3-small"),
		ChatModel:         r.str("MCP_CHAT_MODEL", "gpt-4o-mini"),
		WebClientURL:      strings.TrimRight(r.url("WEBCLIENT_BASE_URL", "http://localhost:8000"), "/"),
		RateLimit:         r.float("MCP_RATE_LIMIT", 20),
		Stateful:          r.boolean("MCP_STATEFUL", false),
		LogLevel:          r.oneOf("MCP_LOG_LEVEL", "info", "debug", "info", "warn", "error"),
		RequestTimeout:    r.duration("MCP_REQUEST_TIMEOUT", 60*time.Second),

		PersonaMaxTemperature: r.floatIn("MCP_PERSONA_MAX_TEMPERATURE", 1.0, 0, 2),
		PersonaMaxTokens:      r.intIn("MCP_PERSONA_MAX_TOKENS", 1000, 1, 8192),
	}
	defaultEmbedder := EmbedderHash
	if c.OpenAIAPIKey != "" {
		defaultEmbedder = EmbedderOpenAI
	}
	c.Embedder = r.oneOf("MCP_EMBEDDER", defaultEmbedder, EmbedderOpenAI, EmbedderHash)
	c.DatabaseURL = r.database()
	c.AllowedOrigins = r.origins("MCP_ALLOWED_ORIGINS", []string{originOf(c.IssuerURL), originOf(c.WebClientURL)})
	if r.err != nil {
		return nil, r.err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) validate() error {
	if c.Embedder == EmbedderOpenAI && c.OpenAIAPIKey == "" {
		return &Error{"MCP_EMBEDDER", "openai needs OPENAI_API_KEY"}
	}
	if c.RateLimit < 0 {
		return &Error{"MCP_RATE_LIMIT", "must not be negative (0 disables rate limiting)"}
	}
	if c.IndexKey != nil {
		// The blind index must not be keyed with an encryption key: a key
		// serves one purpose, and the index key is rotated on its own.
		for _, k := range strings.Split(c.EncryptionKeys, ",") {
			if b, ok := decodeKey32(strings.TrimSpace(k)); ok && bytes.Equal(b, c.IndexKey) {
				return &Error{"MCP_INDEX_KEY", "must differ from every key of MCP_ENCRYPTION_KEYS"}
			}
		}
	}
	if !c.Production() {
		return nil
	}
	switch {
	case c.EncryptionKeys == "":
		return &Error{"MCP_ENCRYPTION_KEYS", "is required in production (generated keys are for development only)"}
	case c.IndexKey == nil:
		return &Error{"MCP_INDEX_KEY", "is required in production (a generated key is for development only)"}
	case c.JWTPrivateKeyFile == "":
		return &Error{"MCP_JWT_PRIVATE_KEY_FILE", "is required in production (a generated key is for development only)"}
	case strings.HasPrefix(c.IssuerURL, "http://"):
		return &Error{"MCP_ISSUER_URL", "must be https in production"}
	}
	for _, o := range c.AllowedOrigins {
		if o == "*" {
			return &Error{"MCP_ALLOWED_ORIGINS", "\"*\" (any origin) is refused in production"}
		}
	}
	return nil
}

// Production reports whether MCP_ENV is production.
func (c *Config) Production() bool { return c.Env == Production }

// ResourceURL is the MCP resource this server protects: $MCP_ISSUER_URL/mcp.
func (c *Config) ResourceURL() string { return c.IssuerURL + "/mcp" }

// Addr is the listen address.
func (c *Config) Addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// SQLitePath is where the embedded database lives when DatabaseURL is empty.
func (c *Config) SQLitePath() string { return c.DataDir + "/mcpserver.db" }

// reader collects the first error so Load reports exactly one line.
type reader struct {
	get func(string) string
	err error
}

func (r *reader) fail(name, format string, a ...any) {
	if r.err == nil {
		r.err = &Error{Var: name, Msg: fmt.Sprintf(format, a...)}
	}
}

func (r *reader) str(name, def string) string {
	if v := strings.TrimSpace(r.get(name)); v != "" {
		return v
	}
	return def
}

// key32 reads a 32-byte key written in base64 (standard or URL-safe, with
// or without padding); empty gives nil.
func (r *reader) key32(name string) []byte {
	v := r.str(name, "")
	if v == "" {
		return nil
	}
	b, ok := decodeKey32(v)
	if !ok {
		r.fail(name, "is not 32 bytes in base64 (generate one with `openssl rand -base64 32`)")
		return nil
	}
	return b
}

func decodeKey32(v string) ([]byte, bool) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil && len(b) == 32 {
			return b, true
		}
	}
	return nil, false
}

func (r *reader) port(name string, def int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 65535 {
		r.fail(name, "%q is not a port number (0-65535)", v)
	}
	return n
}

func (r *reader) float(name string, def float64) float64 {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		r.fail(name, "%q is not a number", v)
	}
	return f
}

// floatIn reads a number between lo and hi inclusive.
func (r *reader) floatIn(name string, def, lo, hi float64) float64 {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || f < lo || f > hi {
		r.fail(name, "%q is not a number between %g and %g", v, lo, hi)
		return def
	}
	return f
}

// intIn reads a whole number between lo and hi inclusive.
func (r *reader) intIn(name string, def, lo, hi int) int {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		r.fail(name, "%q is not a whole number between %d and %d", v, lo, hi)
		return def
	}
	return n
}

func (r *reader) boolean(name string, def bool) bool {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		r.fail(name, "%q is not true or false", v)
	}
	return b
}

func (r *reader) duration(name string, def time.Duration) time.Duration {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		r.fail(name, "%q is not a positive duration such as 30s or 2m", v)
	}
	return d
}

func (r *reader) oneOf(name, def string, allowed ...string) string {
	v := r.str(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	r.fail(name, "%q is not one of %s", v, strings.Join(allowed, ", "))
	return def
}

// url accepts an absolute http(s) URL (or empty when def is empty).
func (r *reader) url(name, def string) string {
	v := r.str(name, def)
	if v == "" {
		return ""
	}
	if err := checkHTTPURL(v); err != nil {
		r.fail(name, "%q %s", v, err.Error())
	}
	return v
}

func checkHTTPURL(v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("is not an absolute http(s) URL")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return errors.New("must not have a query or fragment")
	}
	return nil
}

func (r *reader) origins(name string, def []string) []string {
	v := r.str(name, "")
	if v == "" {
		return def
	}
	var out []string
	for _, o := range strings.Split(v, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		if o != "*" {
			if err := checkHTTPURL(o); err != nil || originOf(o) != o {
				r.fail(name, "%q is not an origin such as https://app.example.com", o)
				return def
			}
		}
		out = append(out, o)
	}
	return out
}

// database resolves MCP_DATABASE_URL, or builds a URL from POSTGRES_* when
// it is empty and POSTGRES_HOST is set; empty selects SQLite.
func (r *reader) database() string {
	if v := r.str("MCP_DATABASE_URL", ""); v != "" {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || u.Host == "" {
			r.fail("MCP_DATABASE_URL", "is not a postgres:// URL (leave it empty for the embedded SQLite database)")
		}
		return v
	}
	host := r.str("POSTGRES_HOST", "")
	if host == "" {
		return ""
	}
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(r.str("POSTGRES_USER", "postgres"), r.str("POSTGRES_PASSWORD", "")),
		Host:   net.JoinHostPort(host, strconv.Itoa(r.port("POSTGRES_PORT", 5432))),
		Path:   "/" + r.str("POSTGRES_DB", "picard"),
	}
	if r.str("POSTGRES_SSLMODE", "") != "" {
		u.RawQuery = "sslmode=" + url.QueryEscape(r.str("POSTGRES_SSLMODE", ""))
	}
	return u.String()
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Scheme + "://" + u.Host
}
