package mcptools

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTypeScriptSDKOAuth runs scripts/mcp-tools/ts-oauth-flow.mjs with Node
// 22 against a real mcpserver: the official TypeScript SDK discovers the
// authorization server from the 401, registers, authorizes with PKCE (the
// script submits the login and consent forms), gets tokens, lists the tools,
// calls submit_memory and query_memory, and refreshes with rotation.
func TestTypeScriptSDKOAuth(t *testing.T) {
	nt := requireTools(t)
	s := startServer(t, nt.root)
	const email = "ts-sdk@example.com"
	s.createUser(email)

	script := filepath.Join(nt.root, "scripts", "mcp-tools", "ts-oauth-flow.mjs")
	stdout, stderr := runNode(t, nt, 45*time.Second, password+"\n", script, s.URL+"/mcp", email)
	if strings.TrimSpace(stderr) != "" {
		t.Logf("stderr:\n%s", stderr)
	}

	steps := map[string]map[string]any{}
	var final struct {
		OK       bool     `json:"ok"`
		ClientID string   `json:"client_id"`
		Tools    []string `json:"tools"`
		MemoryID string   `json:"memory_id"`
		Iss      string   `json:"iss"`
		Error    string   `json:"error"`
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("output line %q: %v\n%s", line, err, stdout)
		}
		if name, ok := m["step"].(string); ok {
			steps[name] = m
			continue
		}
		if err := json.Unmarshal([]byte(line), &final); err != nil {
			t.Fatal(err)
		}
	}
	if !final.OK {
		t.Fatalf("the TypeScript SDK flow failed: %s\n%s", final.Error, stdout)
	}
	for _, name := range []string{"registered", "authorize", "consent", "callback", "tokens", "tools/list", "submit_memory", "query_memory", "refresh"} {
		if steps[name] == nil {
			t.Errorf("step %q missing from the output:\n%s", name, stdout)
		}
	}
	if a := steps["authorize"]; a != nil {
		if a["code_challenge_method"] != "S256" || a["resource"] != s.URL+"/mcp" {
			t.Errorf("authorization request: %v, want S256 and resource %s/mcp", a, s.URL)
		}
	}
	if tok := steps["tokens"]; tok != nil {
		if tok["scope"] != "memories:read memories:write" || tok["refresh_token"] != true {
			t.Errorf("token response: %v, want scope memories:read memories:write and a refresh token", tok)
		}
	}
	if final.Iss != s.URL {
		t.Errorf("iss in the authorization response = %q, want the issuer %q", final.Iss, s.URL)
	}
	got := slices.Clone(final.Tools)
	slices.Sort(got)
	if !slices.Equal(got, contractTools) {
		t.Errorf("tools/list from the TypeScript SDK: %v, want %v", got, contractTools)
	}
	if final.MemoryID == "" {
		t.Error("no memory id from submit_memory")
	}
	t.Logf("TypeScript SDK: client %s authorized, %d tools, memory %s stored and found, refresh rotated",
		final.ClientID, len(final.Tools), final.MemoryID)
}
