package stackcheck

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

func base64URL(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// permissions: a's private, public, shared-with-b and expired memories as
// seen by a, b and c, over /api/tools, MCP tools and MCP resources.
func (s *mcpSuite) permissions() {
	a, b, c := s.users[0], s.users[1], s.users[2]
	ptag := s.tag + "-perm"
	past := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	var priv, pub, shr, exp shared.Memory
	if !s.check("permissions: a stores private, public, shared-with-b and expired memories", func() error {
		if b.id == "" {
			return errors.New("b's id is unknown")
		}
		var out shared.MemoriesResult
		err := a.api.Call(s.ctx, shared.ToolSubmitMemories, shared.SubmitMemoriesArgs{Memories: []shared.NewMemory{
			{Text: "Stackcheck private: the self-destruct code is zero zero zero destruct zero.", Tags: []string{s.tag, ptag}},
			{Text: "Stackcheck public: Picard plays the Ressikan flute.", Permission: shared.PermissionPublic, Tags: []string{s.tag, ptag}},
			{Text: "Stackcheck shared: the poker game is on Thursday.", Permission: shared.PermissionShared, SharedWith: []string{b.id}, Tags: []string{s.tag, ptag}},
			{Text: "Stackcheck expired: the old duty roster of the Stargazer.", Permission: shared.PermissionPublic, ExpirationDate: &past, Tags: []string{s.tag, ptag}},
		}}, &out)
		if err != nil {
			return err
		}
		if len(out.Memories) != 4 {
			return fmt.Errorf("%d memories, want 4", len(out.Memories))
		}
		priv, pub, shr, exp = out.Memories[0], out.Memories[1], out.Memories[2], out.Memories[3]
		if c.id == "" {
			var m shared.Memory
			if err := c.api.Call(s.ctx, shared.ToolSubmitMemory, shared.NewMemory{Text: "Stackcheck: user c exists.", Tags: []string{s.tag}}, &m); err != nil {
				return err
			}
			c.id = m.OwnerID
		}
		return nil
	}) {
		return
	}

	sees := func(viewer *user, args shared.GetMemoriesArgs, want ...shared.Memory) error {
		var page shared.MemoryPage
		if err := viewer.api.Call(s.ctx, shared.ToolGetMemories, args, &page); err != nil {
			return err
		}
		if got := ids(page.Memories); !sameSet(got, ids(want)) {
			return fmt.Errorf("%s sees %v, want %v", viewer.label, texts(page.Memories), texts(want))
		}
		return nil
	}
	s.check("permissions: the owner sees private, public and shared, not expired", func() error {
		return sees(a, shared.GetMemoriesArgs{Tags: []string{ptag}}, priv, pub, shr)
	})
	s.check("permissions: the owner sees the expired one with include_expired", func() error {
		return sees(a, shared.GetMemoriesArgs{Tags: []string{ptag}, IncludeExpired: true}, priv, pub, shr, exp)
	})
	s.check("permissions: b sees a's public and shared-with-b memories only", func() error {
		return sees(b, shared.GetMemoriesArgs{UserID: a.id, Tags: []string{ptag}}, pub, shr)
	})
	s.check("permissions: include_expired shows nothing more to others", func() error {
		return sees(b, shared.GetMemoriesArgs{UserID: a.id, Tags: []string{ptag}, IncludeExpired: true}, pub, shr)
	})
	s.check("permissions: c sees a's public memory only", func() error {
		return sees(c, shared.GetMemoriesArgs{UserID: a.id, Tags: []string{ptag}}, pub)
	})
	s.check("permissions: b's search does not find a's private or expired memories", func() error {
		for _, m := range []shared.Memory{priv, exp} {
			var res shared.QueryMemoryResult
			if err := b.api.Call(s.ctx, shared.ToolQueryMemory, shared.QueryMemoryArgs{Query: m.Text, Limit: 100}, &res); err != nil {
				return err
			}
			if slices.Contains(scoredIDs(res.Results), m.ID) {
				return fmt.Errorf("b found %q", m.Text)
			}
		}
		return nil
	})
	s.check("permissions: c's question to a's persona does not use the shared memory", func() error {
		var res shared.QueryUserResult
		if err := c.api.Call(s.ctx, shared.ToolQueryUser, shared.QueryUserArgs{UserID: a.id, Prompt: "When is the poker game?"}, &res); err != nil {
			return err
		}
		for _, m := range res.Memories {
			if m.Memory.ID == shr.ID || m.Memory.ID == priv.ID || m.Memory.ID == exp.ID {
				return fmt.Errorf("c's answer used %q", m.Memory.Text)
			}
		}
		return nil
	})
	unknown := "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name   string
		caller *user
		tool   string
		args   any
	}{
		{"b updates a's private memory", b, shared.ToolUpdateMemory, map[string]any{"memory_id": priv.ID, "text": "hacked"}},
		{"b deletes a's private memory", b, shared.ToolDeleteMemory, shared.MemoryIDArgs{MemoryID: priv.ID}},
		{"c updates the memory a shared with b", c, shared.ToolUpdateMemory, map[string]any{"memory_id": shr.ID, "text": "hacked"}},
		{"b changes permissions of a's private memory", b, shared.ToolModifyPermissions, shared.ModifyPermissionsArgs{MemoryID: priv.ID, Permission: shared.PermissionPublic}},
		{"a updates a memory that does not exist", a, shared.ToolUpdateMemory, map[string]any{"memory_id": unknown, "text": "x"}},
		{"a deletes a memory that does not exist", a, shared.ToolDeleteMemory, shared.MemoryIDArgs{MemoryID: unknown}},
	} {
		s.check("permissions: "+tc.name+" → not_found", func() error {
			err := tc.caller.api.Call(s.ctx, tc.tool, tc.args, nil)
			var te *ToolError
			if !errors.As(err, &te) || te.Code != shared.CodeNotFound || te.Status != http.StatusNotFound {
				return fmt.Errorf("got %v, want HTTP 404 not_found", err)
			}
			return nil
		})
	}
	s.check("permissions: the refused changes changed nothing", func() error {
		var page shared.MemoryPage
		if err := a.api.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{Tags: []string{ptag}}, &page); err != nil {
			return err
		}
		for _, m := range page.Memories {
			if m.ID == priv.ID && (m.Text != priv.Text || m.Permission != shared.PermissionPrivate) {
				return fmt.Errorf("a's private memory is now %q (%s)", m.Text, m.Permission)
			}
		}
		if !slices.Contains(ids(page.Memories), priv.ID) {
			return errors.New("a's private memory is gone")
		}
		return nil
	})
	s.check("permissions over MCP: b gets not_found for a's private memory", func() error {
		err := b.mcp.Call(s.ctx, shared.ToolUpdateMemory, map[string]any{"memory_id": priv.ID, "text": "hacked"}, nil)
		if codeOf(err) != shared.CodeNotFound {
			return fmt.Errorf("got %v, want a not_found tool error", err)
		}
		return nil
	})

	// Resources.
	read := func(u *user, uri string) (string, error) {
		res, err := u.mcp.Session.ReadResource(s.ctx, &mcp.ReadResourceParams{URI: uri})
		if err != nil {
			return "", err
		}
		var sb strings.Builder
		for _, c := range res.Contents {
			sb.WriteString(c.Text)
		}
		return sb.String(), nil
	}
	s.check("resource memories://{id}: the owner reads its private memory", func() error {
		text, err := read(a, "memories://"+priv.ID)
		if err != nil {
			return err
		}
		var m shared.Memory
		if err := json.Unmarshal([]byte(text), &m); err != nil {
			return fmt.Errorf("not a memory as JSON: %v: %s", err, snippet([]byte(text)))
		}
		if m.ID != priv.ID || m.Text != priv.Text {
			return fmt.Errorf("got %+v", m)
		}
		return nil
	})
	s.check("resource memories://{id}: b reads a's public memory, not the private one", func() error {
		if text, err := read(b, "memories://"+pub.ID); err != nil || !strings.Contains(text, pub.ID) {
			return fmt.Errorf("public memory: %v %s", err, snippet([]byte(text)))
		}
		text, err := read(b, "memories://"+priv.ID)
		if err == nil {
			return fmt.Errorf("b read a's private memory: %s", snippet([]byte(text)))
		}
		return nil
	})
	s.check("resource users://{id}/memories: b sees a's public and shared memories", func() error {
		text, err := read(b, "users://"+a.id+"/memories")
		if err != nil {
			return err
		}
		if strings.Contains(text, priv.ID) || strings.Contains(text, exp.ID) {
			return errors.New("the list shows a's private or expired memory to b")
		}
		if !strings.Contains(text, pub.ID) || !strings.Contains(text, shr.ID) {
			// The list may be paged; it is newest first, and these are new.
			return fmt.Errorf("the list lacks a's public or shared memory: %s", snippet([]byte(text)))
		}
		return nil
	})
}

func texts(ms []shared.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

// badInputs: limits and malformed requests are refused and store nothing.
func (s *mcpSuite) badInputs() {
	a := s.users[0]
	btag := s.tag + "-bad"
	manyTags := make([]string, 33)
	for i := range manyTags {
		manyTags[i] = fmt.Sprintf("t%d", i)
	}
	bigMeta := map[string]any{"blob": strings.Repeat("x", 9*1024)}
	invalid := []string{shared.CodeInvalidArgument, shared.CodeTooLarge}
	for _, tc := range []struct {
		name  string
		tool  string
		args  any
		codes []string
	}{
		{"empty text", shared.ToolSubmitMemory, map[string]any{"text": "", "tags": []string{btag}}, []string{shared.CodeInvalidArgument}},
		{"text of 32,769 characters", shared.ToolSubmitMemory, map[string]any{"text": strings.Repeat("a", 32769), "tags": []string{btag}}, invalid},
		{"33 tags", shared.ToolSubmitMemory, map[string]any{"text": "x", "tags": append(manyTags, btag)}, invalid},
		{"a tag of 65 characters", shared.ToolSubmitMemory, map[string]any{"text": "x", "tags": []string{btag, strings.Repeat("t", 65)}}, invalid},
		{"metadata over 8 KiB", shared.ToolSubmitMemory, map[string]any{"text": "x", "tags": []string{btag}, "metadata": bigMeta}, invalid},
		{"unknown permission", shared.ToolSubmitMemory, map[string]any{"text": "x", "tags": []string{btag}, "permission": "everyone"}, []string{shared.CodeInvalidArgument}},
		{"text of the wrong type", shared.ToolSubmitMemory, map[string]any{"text": 42, "tags": []string{btag}}, []string{shared.CodeInvalidArgument}},
		{"memory_id that is not a UUID", shared.ToolDeleteMemory, map[string]any{"memory_id": "not-a-uuid"}, []string{shared.CodeInvalidArgument, shared.CodeNotFound}},
		{"one bad memory in a batch", shared.ToolSubmitMemories, map[string]any{"memories": []any{map[string]any{"text": "ok", "tags": []string{btag}}, map[string]any{"text": "", "tags": []string{btag}}}}, []string{shared.CodeInvalidArgument}},
		{"query_memory limit over 100", shared.ToolQueryMemory, map[string]any{"query": "x", "limit": 101}, []string{shared.CodeInvalidArgument}},
		{"unknown tool", "no_such_tool", map[string]any{}, []string{shared.CodeNotFound, shared.CodeInvalidArgument}},
	} {
		s.check("bad input ("+tc.name+") → "+strings.Join(tc.codes, " or "), func() error {
			err := a.api.Call(s.ctx, tc.tool, tc.args, nil)
			var te *ToolError
			if !errors.As(err, &te) || !slices.Contains(tc.codes, te.Code) {
				return fmt.Errorf("got %v", err)
			}
			if want := statusOf(te.Code); te.Status != want {
				return fmt.Errorf("HTTP %d for %s, want %d", te.Status, te.Code, want)
			}
			return nil
		})
	}
	s.check("bad input: a request body over 1 MiB → 413 too_large", func() error {
		err := a.api.Call(s.ctx, shared.ToolSubmitMemory, map[string]any{"text": strings.Repeat("a", 1100*1024), "tags": []string{btag}}, nil)
		var te *ToolError
		if !errors.As(err, &te) || te.Status != http.StatusRequestEntityTooLarge || te.Code != shared.CodeTooLarge {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	s.check("bad input: a body that is not JSON → 400 invalid_argument", func() error {
		err := a.api.post(s.ctx, []byte(`{"tool": "submit_memory", "data": {`), nil)
		if codeOf(err) != shared.CodeInvalidArgument {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	s.check("bad input over MCP: an empty text is a tool error invalid_argument", func() error {
		err := a.mcp.Call(s.ctx, shared.ToolSubmitMemory, map[string]any{"text": "", "tags": []string{btag}}, nil)
		if codeOf(err) != shared.CodeInvalidArgument {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
	s.check("bad inputs stored nothing", func() error {
		var page shared.MemoryPage
		if err := a.api.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{Tags: []string{btag}, IncludeExpired: true}, &page); err != nil {
			return err
		}
		if len(page.Memories) != 0 {
			return fmt.Errorf("%d memories were stored: %v", len(page.Memories), texts(page.Memories))
		}
		return nil
	})
}

func statusOf(code string) int {
	switch code {
	case shared.CodeInvalidArgument:
		return http.StatusBadRequest
	case shared.CodeNotFound:
		return http.StatusNotFound
	case shared.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case shared.CodeInsufficientScope, shared.CodePermissionDenied:
		return http.StatusForbidden
	case shared.CodeUnauthenticated:
		return http.StatusUnauthorized
	}
	return 0
}

// readOnly: a token with memories:read only reads and is refused writes.
func (s *mcpSuite) readOnly() {
	a := s.users[0]
	var ro *TokenResponse
	if !s.check("a read-only token (scope memories:read)", func() (err error) {
		ro, err = s.flow(a, a.client, shared.ScopeRead, false)
		if err == nil && strings.Contains(ro.Scope, shared.ScopeWrite) {
			err = fmt.Errorf("granted %q for a request of memories:read", ro.Scope)
		}
		return err
	}) {
		return
	}
	api := s.apiWith(ro.AccessToken)
	s.check("read-only token reads", func() error {
		return api.Call(s.ctx, shared.ToolRetrieveMemories, shared.PageArgs{Limit: 1}, nil)
	})
	s.check("read-only token: /api/tools write → 403 insufficient_scope with WWW-Authenticate", func() error {
		err := api.Call(s.ctx, shared.ToolSubmitMemory, shared.NewMemory{Text: "must not be stored", Tags: []string{s.tag}}, nil)
		var te *ToolError
		if !errors.As(err, &te) || te.Status != http.StatusForbidden || te.Code != shared.CodeInsufficientScope {
			return fmt.Errorf("got %v", err)
		}
		h := te.WWWAuthenticate
		if !strings.HasPrefix(h, "Bearer") || !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, "memories:write") {
			return fmt.Errorf("WWW-Authenticate %q", h)
		}
		return nil
	})
	s.check("read-only token: MCP write → 403 or a tool error naming memories:write", func() error {
		m, err := ConnectMCP(s.ctx, s.o.Transport, s.base+"/mcp", ro.AccessToken)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer m.Close()
		err = m.Call(s.ctx, shared.ToolSubmitMemory, shared.NewMemory{Text: "must not be stored", Tags: []string{s.tag}}, nil)
		if err == nil {
			return errors.New("the write was accepted")
		}
		if !strings.Contains(err.Error(), "memories:write") && !strings.Contains(err.Error(), "403") && !strings.Contains(strings.ToLower(err.Error()), "forbidden") {
			return fmt.Errorf("got %v", err)
		}
		return nil
	})
}

// admin: admin tools are refused to ordinary users; with an admin token
// they work.
func (s *mcpSuite) admin() {
	a := s.users[0]
	s.check("admin tools are refused to a user without memories:admin", func() error {
		err := a.api.Call(s.ctx, shared.ToolAdminStats, map[string]any{}, nil)
		var te *ToolError
		if !errors.As(err, &te) || te.Status != http.StatusForbidden {
			return fmt.Errorf("got %v, want HTTP 403", err)
		}
		return nil
	})
	if s.o.AdminToken == "" {
		return
	}
	admin := s.apiWith(s.o.AdminToken)
	s.check("admin_stats with an admin token", func() error {
		var out map[string]any
		return admin.Call(s.ctx, shared.ToolAdminStats, map[string]any{}, &out)
	})
	s.check("admin_list_users lists this run's users", func() error {
		var out json.RawMessage
		if err := admin.Call(s.ctx, shared.ToolAdminListUsers, map[string]any{"limit": 500}, &out); err != nil {
			return err
		}
		if !strings.Contains(string(out), a.id) && !strings.Contains(string(out), a.Email) {
			return errors.New("user a is not in the list (first page)")
		}
		return nil
	})
}

// cleanup deletes every memory this run created, so the stack stays usable.
func (s *mcpSuite) cleanup() {
	s.check("cleanup: every memory of this run deleted", func() error {
		for _, u := range s.users {
			if u.api == nil {
				continue
			}
			for range 20 {
				var page shared.MemoryPage
				if err := u.api.Call(s.ctx, shared.ToolGetMemories, shared.GetMemoriesArgs{Tags: []string{s.tag}, IncludeExpired: true, Limit: 500}, &page); err != nil {
					return err
				}
				if len(page.Memories) == 0 {
					break
				}
				if err := u.api.Call(s.ctx, shared.ToolDeleteMemories, shared.DeleteMemoriesArgs{MemoryIDs: ids(page.Memories)}, nil); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
