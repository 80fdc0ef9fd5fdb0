package mcptools

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"picard.dev/shared"
)

// contractTools are the tools of ../shared/CONTRACT.md, sorted.
var contractTools = func() []string {
	names := []string{
		shared.ToolSubmitMemory, shared.ToolSubmitMemories, shared.ToolUpdateMemory,
		shared.ToolDeleteMemory, shared.ToolDeleteMemories, shared.ToolModifyPermissions,
		shared.ToolGetMemories, shared.ToolRetrieveMemories, shared.ToolQueryMemory,
		shared.ToolQueryUser, shared.ToolListPersonas,
		shared.ToolAdminStats, shared.ToolAdminListUsers, shared.ToolAdminSetUserDisabled,
	}
	slices.Sort(names)
	return names
}()

// TestInspector drives a real mcpserver with MCP Inspector in CLI mode and a
// personal access token from `mcpserver tokens issue`: tools/list (every
// contract tool, schemas free of portability errors under --strict), then
// submit_memory and query_memory, which must find the memory just stored.
func TestInspector(t *testing.T) {
	nt := requireTools(t)
	s := startServer(t, nt.root)
	const email = "inspector@example.com"
	s.createUser(email)
	token := s.cli("", "tokens", "issue", "--email", email, "--scopes", shared.ScopeRead+" "+shared.ScopeWrite)
	if token == "" {
		t.Fatal("tokens issue printed no token")
	}

	inspect := func(args ...string) []byte {
		t.Helper()
		base := []string{nt.inspector, "--cli", s.URL + "/mcp", "--transport", "http",
			"--header", "Authorization: Bearer " + token}
		out, _ := runNode(t, nt, 45*time.Second, "", append(base, args...)...)
		return []byte(out)
	}

	// tools/list. --strict exits non-zero on an error-severity schema
	// portability problem (warnings are only printed).
	var list struct {
		Tools []struct {
			Name        string          `json:"name"`
			Description string          `json:"description"`
			InputSchema json.RawMessage `json:"inputSchema"`
		} `json:"tools"`
	}
	if err := json.Unmarshal(inspect("--method", "tools/list", "--strict"), &list); err != nil {
		t.Fatalf("tools/list output: %v", err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || len(tool.InputSchema) == 0 {
			t.Errorf("tool %s has no description or input schema", tool.Name)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, contractTools) {
		t.Fatalf("tools/list: %d tools %v, want the %d of the contract %v", len(names), names, len(contractTools), contractTools)
	}

	// submit_memory, then query_memory finds it.
	text := "Inspector check: the lighthouse keeper's cat is called Picard"
	type memory struct {
		ID         string   `json:"id"`
		Text       string   `json:"text"`
		Permission string   `json:"permission"`
		Tags       []string `json:"tags"`
	}
	var submitted struct {
		IsError    bool   `json:"isError"`
		Structured memory `json:"structuredContent"`
		Content    []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	}
	out := inspect("--method", "tools/call", "--tool-name", shared.ToolSubmitMemory,
		"--tool-arg", "text="+text, "--tool-arg", `tags=["inspector"]`)
	if err := json.Unmarshal(out, &submitted); err != nil {
		t.Fatalf("submit_memory output: %v\n%s", err, out)
	}
	m := submitted.Structured
	if submitted.IsError || m.ID == "" || m.Text != text || m.Permission != "private" || !slices.Equal(m.Tags, []string{"inspector"}) {
		t.Fatalf("submit_memory: %s", out)
	}
	if len(submitted.Content) == 0 || !strings.Contains(submitted.Content[0].Text, m.ID) {
		t.Errorf("submit_memory: text content does not name the memory: %s", out)
	}

	var queried struct {
		IsError    bool `json:"isError"`
		Structured struct {
			Results []struct {
				Memory memory  `json:"memory"`
				Score  float64 `json:"score"`
			} `json:"results"`
		} `json:"structuredContent"`
	}
	out = inspect("--method", "tools/call", "--tool-name", shared.ToolQueryMemory,
		"--tool-arg", "query=what is the lighthouse keeper's cat called", "--tool-arg", "limit=5")
	if err := json.Unmarshal(out, &queried); err != nil {
		t.Fatalf("query_memory output: %v\n%s", err, out)
	}
	if queried.IsError || len(queried.Structured.Results) == 0 || queried.Structured.Results[0].Memory.ID != m.ID {
		t.Fatalf("query_memory did not return the submitted memory %s first: %s", m.ID, out)
	}
	t.Logf("Inspector: %d tools listed; submit_memory stored %s; query_memory found it (score %.3f)",
		len(names), m.ID, queried.Structured.Results[0].Score)
}
