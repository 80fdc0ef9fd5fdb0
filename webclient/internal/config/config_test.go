package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	dir := t.TempDir()
	c, err := FromMap(map[string]string{"WEBCLIENT_DATA_DIR": dir})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr() != "127.0.0.1:8000" || c.BaseURL != "http://localhost:8000" || c.MCPServerInternalURL != "http://localhost:8001" {
		t.Errorf("defaults: %+v", c)
	}
	if c.OAuthRedirectURI != "http://localhost:8000/oauth/callback" || c.MCPResource() != "http://localhost:8001/mcp" {
		t.Errorf("derived URLs: %s %s", c.OAuthRedirectURI, c.MCPResource())
	}
	if strings.Join(c.OAuthScopes, " ") != "memories:read memories:write" {
		t.Errorf("scopes %v", c.OAuthScopes)
	}
	if !c.SecretGenerated || len(c.SecretKey) < minSecretLen {
		t.Fatalf("no generated secret")
	}
	if c.SQLitePath() != filepath.Join(dir, "webclient.db") || c.UsesPostgres() {
		t.Errorf("database: %s", c.SQLitePath())
	}
	// The generated secret persists across starts.
	c2, err := FromMap(map[string]string{"WEBCLIENT_DATA_DIR": dir})
	if err != nil || string(c2.SecretKey) != string(c.SecretKey) {
		t.Fatalf("secret not persisted: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, SecretFileName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file: %v %v", fi, err)
	}
}

func TestInternalURLFollowsPublic(t *testing.T) {
	c, err := FromMap(map[string]string{"MCP_SERVER_URL": "https://mcp.example.com/", "WEBCLIENT_SECRET_KEY": strings.Repeat("k", 32)})
	if err != nil {
		t.Fatal(err)
	}
	if c.MCPServerURL != "https://mcp.example.com" || c.MCPServerInternalURL != c.MCPServerURL || c.SecretGenerated {
		t.Errorf("%+v", c)
	}
}

func TestInvalidVariables(t *testing.T) {
	ok := map[string]string{"WEBCLIENT_SECRET_KEY": strings.Repeat("k", 32)}
	tests := []struct {
		name, value, want string
		extra             map[string]string
	}{
		{name: "WEBCLIENT_PORT", value: "eighty", want: "WEBCLIENT_PORT"},
		{name: "WEBCLIENT_PORT", value: "70000", want: "WEBCLIENT_PORT"},
		{name: "WEBCLIENT_BASE_URL", value: "localhost:8000", want: "WEBCLIENT_BASE_URL"},
		{name: "WEBCLIENT_BASE_URL", value: "ftp://x", want: "WEBCLIENT_BASE_URL"},
		{name: "MCP_SERVER_URL", value: "not a url", want: "MCP_SERVER_URL"},
		{name: "MCP_SERVER_INTERNAL_URL", value: "http://", want: "MCP_SERVER_INTERNAL_URL"},
		{name: "OAUTH_REDIRECT_URI", value: "/oauth/callback", want: "OAUTH_REDIRECT_URI"},
		{name: "OAUTH_SCOPES", value: "memories:write", want: "OAUTH_SCOPES"},
		{name: "OAUTH_CLIENT_SECRET", value: "s3cret", want: "OAUTH_CLIENT_ID"},
		{name: "OAUTH_CLIENT_ID", value: "abc", want: "OAUTH_CLIENT_SECRET"},
		{name: "WEBCLIENT_DATABASE_URL", value: "mysql://x", want: "WEBCLIENT_DATABASE_URL"},
		{name: "WEBCLIENT_SECRET_KEY", value: "short", want: "WEBCLIENT_SECRET_KEY"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range ok {
				env[k] = v
			}
			env[tt.name] = tt.value
			_, err := FromMap(env)
			var ce *Error
			if !errors.As(err, &ce) || ce.Var != tt.want {
				t.Fatalf("error %v, want one naming %s", err, tt.want)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error is not one line naming the variable: %q", err)
			}
		})
	}
}

func TestUnwritableDataDir(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	_, err := FromMap(map[string]string{"WEBCLIENT_DATA_DIR": filepath.Join(f, "sub")})
	var ce *Error
	if !errors.As(err, &ce) || ce.Var != "WEBCLIENT_DATA_DIR" {
		t.Fatalf("got %v", err)
	}
}
