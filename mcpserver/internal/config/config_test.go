package config

import (
	"errors"
	"strings"
	"testing"
)

func lookup(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

func TestDefaults(t *testing.T) {
	c, err := Load(lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "127.0.0.1:8001" || c.IssuerURL != "http://localhost:8001" || c.ResourceURL() != "http://localhost:8001/mcp" {
		t.Errorf("listen/issuer defaults wrong: %s %s", c.Addr(), c.IssuerURL)
	}
	if c.DatabaseURL != "" || c.SQLitePath() != "./.data/mcpserver.db" || c.Embedder != EmbedderHash || c.RateLimit != 20 || c.Production() {
		t.Errorf("unexpected defaults: %+v", c)
	}
	if strings.Join(c.AllowedOrigins, " ") != "http://localhost:8001 http://localhost:8000" {
		t.Errorf("AllowedOrigins = %v", c.AllowedOrigins)
	}
	if c.PersonaMaxTemperature != 1.0 || c.PersonaMaxTokens != 1000 {
		t.Errorf("persona limits = %v, %v; want 1.0, 1000", c.PersonaMaxTemperature, c.PersonaMaxTokens)
	}
}

func TestPersonaLimits(t *testing.T) {
	for _, tt := range []struct {
		temp, tokens string
		wantTemp     float64
		wantTokens   int
	}{
		{"0", "1", 0, 1},
		{"2", "8192", 2, 8192},
		{" 0.7 ", "512", 0.7, 512},
	} {
		c, err := Load(lookup(map[string]string{"MCP_PERSONA_MAX_TEMPERATURE": tt.temp, "MCP_PERSONA_MAX_TOKENS": tt.tokens}))
		if err != nil {
			t.Errorf("%q, %q: %v", tt.temp, tt.tokens, err)
			continue
		}
		if c.PersonaMaxTemperature != tt.wantTemp || c.PersonaMaxTokens != tt.wantTokens {
			t.Errorf("%q, %q: got %v, %v", tt.temp, tt.tokens, c.PersonaMaxTemperature, c.PersonaMaxTokens)
		}
	}
}

func TestValues(t *testing.T) {
	c, err := Load(lookup(map[string]string{
		"MCP_ISSUER_URL":      "https://mcp.example.com/",
		"OPENAI_API_KEY":      "sk-test",
		"POSTGRES_HOST":       "db",
		"POSTGRES_PASSWORD":   "p@ss word",
		"POSTGRES_DB":         "mcp",
		"MCP_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com/",
		"MCP_RATE_LIMIT":      "0",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.IssuerURL != "https://mcp.example.com" {
		t.Errorf("issuer keeps a trailing slash: %q", c.IssuerURL)
	}
	if c.Embedder != EmbedderOpenAI {
		t.Errorf("embedder with an API key = %q", c.Embedder)
	}
	if c.DatabaseURL != "postgres://postgres:p%40ss%20word@db:5432/mcp" {
		t.Errorf("DatabaseURL = %q", c.DatabaseURL)
	}
	if strings.Join(c.AllowedOrigins, " ") != "https://a.example.com https://b.example.com" || c.RateLimit != 0 {
		t.Errorf("origins %v rate %v", c.AllowedOrigins, c.RateLimit)
	}
}

func TestInvalid(t *testing.T) {
	prod := map[string]string{
		"MCP_ENV": "production", "MCP_ENCRYPTION_KEYS": "k", "MCP_JWT_PRIVATE_KEY_FILE": "/k.pem",
		"MCP_ISSUER_URL": "https://mcp.example.com", "MCP_INDEX_KEY": indexKey,
	}
	with := func(base map[string]string, k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		m[k] = v
		return m
	}
	tests := []struct {
		env     map[string]string
		wantVar string
	}{
		{map[string]string{"MCP_SERVER_PORT": "eighty"}, "MCP_SERVER_PORT"},
		{map[string]string{"MCP_SERVER_PORT": "70000"}, "MCP_SERVER_PORT"},
		{map[string]string{"MCP_ISSUER_URL": "localhost:8001"}, "MCP_ISSUER_URL"},
		{map[string]string{"MCP_ISSUER_URL": "http://x/?a=b"}, "MCP_ISSUER_URL"},
		{map[string]string{"MCP_DATABASE_URL": "mysql://x/y"}, "MCP_DATABASE_URL"},
		{map[string]string{"MCP_ENV": "staging"}, "MCP_ENV"},
		{map[string]string{"MCP_EMBEDDER": "bert"}, "MCP_EMBEDDER"},
		{map[string]string{"MCP_EMBEDDER": "openai"}, "MCP_EMBEDDER"},
		{map[string]string{"MCP_RATE_LIMIT": "fast"}, "MCP_RATE_LIMIT"},
		{map[string]string{"MCP_RATE_LIMIT": "-1"}, "MCP_RATE_LIMIT"},
		{map[string]string{"MCP_STATEFUL": "maybe"}, "MCP_STATEFUL"},
		{map[string]string{"MCP_ALLOWED_ORIGINS": "https://a.example.com/path"}, "MCP_ALLOWED_ORIGINS"},
		{map[string]string{"MCP_REQUEST_TIMEOUT": "soon"}, "MCP_REQUEST_TIMEOUT"},
		{map[string]string{"OPENAI_BASE_URL": "ftp://x"}, "OPENAI_BASE_URL"},
		{map[string]string{"POSTGRES_HOST": "db", "POSTGRES_PORT": "x"}, "POSTGRES_PORT"},
		{map[string]string{"MCP_PERSONA_MAX_TEMPERATURE": "hot"}, "MCP_PERSONA_MAX_TEMPERATURE"},
		{map[string]string{"MCP_PERSONA_MAX_TEMPERATURE": "-0.1"}, "MCP_PERSONA_MAX_TEMPERATURE"},
		{map[string]string{"MCP_PERSONA_MAX_TEMPERATURE": "2.01"}, "MCP_PERSONA_MAX_TEMPERATURE"},
		{map[string]string{"MCP_PERSONA_MAX_TEMPERATURE": "NaN"}, "MCP_PERSONA_MAX_TEMPERATURE"},
		{map[string]string{"MCP_PERSONA_MAX_TOKENS": "0"}, "MCP_PERSONA_MAX_TOKENS"},
		{map[string]string{"MCP_PERSONA_MAX_TOKENS": "8193"}, "MCP_PERSONA_MAX_TOKENS"},
		{map[string]string{"MCP_PERSONA_MAX_TOKENS": "1.5"}, "MCP_PERSONA_MAX_TOKENS"},
		{with(prod, "MCP_ENCRYPTION_KEYS", ""), "MCP_ENCRYPTION_KEYS"},
		{with(prod, "MCP_INDEX_KEY", ""), "MCP_INDEX_KEY"},
		{map[string]string{"MCP_INDEX_KEY": "c2hvcnQ="}, "MCP_INDEX_KEY"},
		{map[string]string{"MCP_INDEX_KEY": "not base64 at all!"}, "MCP_INDEX_KEY"},
		{map[string]string{"MCP_INDEX_KEY": fernetKey, "MCP_ENCRYPTION_KEYS": "x," + fernetKey}, "MCP_INDEX_KEY"},
		{with(prod, "MCP_JWT_PRIVATE_KEY_FILE", ""), "MCP_JWT_PRIVATE_KEY_FILE"},
		{with(prod, "MCP_ISSUER_URL", "http://mcp.example.com"), "MCP_ISSUER_URL"},
		{with(prod, "MCP_ALLOWED_ORIGINS", "*"), "MCP_ALLOWED_ORIGINS"},
	}
	for _, tt := range tests {
		_, err := Load(lookup(tt.env))
		var ce *Error
		if !errors.As(err, &ce) || ce.Var != tt.wantVar || !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%v) error = %v, want one naming %s", tt.env, err, tt.wantVar)
			continue
		}
		if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "config: "+tt.wantVar+": ") {
			t.Errorf("error is not one line naming the variable: %q", err)
		}
	}
	if _, err := Load(lookup(prod)); err != nil {
		t.Errorf("valid production config refused: %v", err)
	}
}

// indexKey is 32 bytes in standard base64, fernetKey 32 other bytes in the
// URL-safe base64 of Fernet keys.
const (
	indexKey  = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	fernetKey = "_-7t7Ovq6ejn5uXk4-Lh4N_e3dzb2tnY19bV1NPS0dA="
)

func TestIndexKey(t *testing.T) {
	for _, v := range []string{indexKey, strings.TrimRight(indexKey, "="), fernetKey} {
		c, err := Load(lookup(map[string]string{"MCP_INDEX_KEY": v}))
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		if len(c.IndexKey) != 32 {
			t.Errorf("%q: %d bytes", v, len(c.IndexKey))
		}
	}
	c, err := Load(lookup(map[string]string{"MCP_INDEX_KEY": indexKey}))
	if err != nil {
		t.Fatal(err)
	}
	if c.IndexKey[0] != 0 || c.IndexKey[31] != 31 {
		t.Errorf("decoded %v", c.IndexKey)
	}
	if c, err := Load(lookup(nil)); err != nil || c.IndexKey != nil {
		t.Errorf("without MCP_INDEX_KEY: %v, %v (want nil: a development key is generated)", c.IndexKey, err)
	}
}
