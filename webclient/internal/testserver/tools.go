package testserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

func caller(req *mcp.CallToolRequest) (string, []string) {
	if req.Extra == nil || req.Extra.TokenInfo == nil {
		return "", nil
	}
	return req.Extra.TokenInfo.UserID, req.Extra.TokenInfo.Scopes
}

var (
	errNotFound = errors.New("not_found: memory not found")
	errScope    = errors.New("insufficient_scope: this tool needs memories:write")
)

func needWrite(scopes []string) error {
	if !slices.Contains(scopes, shared.ScopeWrite) {
		return errScope
	}
	return nil
}

// visible applies the contract's rules; s.mu must be held.
func (s *Server) visible(m *shared.Memory, user string) bool {
	if m.OwnerID == user {
		return true
	}
	if m.Expired {
		return false
	}
	return m.Permission == shared.PermissionPublic || (m.Permission == shared.PermissionShared && slices.Contains(m.SharedWith, user))
}

func (s *Server) resolveUsers(in []string) ([]string, error) {
	var out []string
	for _, x := range in {
		if id, ok := s.users[x]; ok {
			out = append(out, id)
			continue
		}
		if _, ok := s.names[x]; ok {
			out = append(out, x)
			continue
		}
		return nil, fmt.Errorf("invalid_argument: unknown user %q", x)
	}
	return out, nil
}

func (s *Server) newMemory(owner string, in shared.NewMemory) (*shared.Memory, error) {
	if strings.TrimSpace(in.Text) == "" {
		return nil, errors.New("invalid_argument: text is empty")
	}
	perm := in.Permission
	if perm == "" {
		perm = shared.PermissionPrivate
	}
	shared_, err := s.resolveUsers(in.SharedWith)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	m := &shared.Memory{ID: uuid.NewString(), OwnerID: owner, Text: in.Text, Permission: perm, SharedWith: shared_,
		Tags: in.Tags, Metadata: in.Metadata, ExpirationDate: in.ExpirationDate, CreatedAt: now, UpdatedAt: now}
	if m.SharedWith == nil {
		m.SharedWith = []string{}
	}
	if m.Tags == nil {
		m.Tags = []string{}
	}
	if m.Metadata == nil {
		// The output schema inferred from shared.Memory says object, not null.
		m.Metadata = map[string]any{}
	}
	m.Expired = m.ExpirationDate != nil && m.ExpirationDate.Before(now)
	return m, nil
}

func (s *Server) mcpServer() *mcp.Server {
	srv := mcp.NewServer(&mcp.Implementation{Name: "fake-picard", Version: "test"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolSubmitMemory}, func(_ context.Context, req *mcp.CallToolRequest, in shared.NewMemory) (*mcp.CallToolResult, shared.Memory, error) {
		user, scopes := caller(req)
		if err := needWrite(scopes); err != nil {
			return nil, shared.Memory{}, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		m, err := s.newMemory(user, in)
		if err != nil {
			return nil, shared.Memory{}, err
		}
		s.memories[m.ID] = m
		return nil, *m, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolSubmitMemories}, func(_ context.Context, req *mcp.CallToolRequest, in shared.SubmitMemoriesArgs) (*mcp.CallToolResult, shared.MemoriesResult, error) {
		user, scopes := caller(req)
		if err := needWrite(scopes); err != nil {
			return nil, shared.MemoriesResult{}, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		var out []shared.Memory
		for i, nm := range in.Memories {
			m, err := s.newMemory(user, nm)
			if err != nil {
				return nil, shared.MemoriesResult{}, fmt.Errorf("%w (memory %d)", err, i)
			}
			out = append(out, *m)
		}
		for i := range out {
			m := out[i]
			s.memories[m.ID] = &m
		}
		return nil, shared.MemoriesResult{Memories: out}, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolUpdateMemory}, func(_ context.Context, req *mcp.CallToolRequest, raw updateArgs) (*mcp.CallToolResult, shared.Memory, error) {
		in, err := raw.decode()
		if err != nil {
			return nil, shared.Memory{}, err
		}
		user, scopes := caller(req)
		if err := needWrite(scopes); err != nil {
			return nil, shared.Memory{}, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		m, ok := s.memories[in.MemoryID]
		if !ok || m.OwnerID != user {
			return nil, shared.Memory{}, errNotFound
		}
		if in.Text != nil {
			m.Text = *in.Text
		}
		if in.Tags != nil {
			m.Tags = *in.Tags
		}
		if in.Metadata != nil && *in.Metadata != nil {
			m.Metadata = *in.Metadata
		}
		if in.ExpirationDate.IsSet {
			m.ExpirationDate = in.ExpirationDate.Time
		}
		m.UpdatedAt = time.Now().UTC()
		m.Expired = m.ExpirationDate != nil && m.ExpirationDate.Before(m.UpdatedAt)
		return nil, *m, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolDeleteMemory}, func(_ context.Context, req *mcp.CallToolRequest, in shared.MemoryIDArgs) (*mcp.CallToolResult, shared.DeleteMemoryResult, error) {
		user, scopes := caller(req)
		if err := needWrite(scopes); err != nil {
			return nil, shared.DeleteMemoryResult{}, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		m, ok := s.memories[in.MemoryID]
		if !ok || m.OwnerID != user {
			return nil, shared.DeleteMemoryResult{}, errNotFound
		}
		delete(s.memories, in.MemoryID)
		return nil, shared.DeleteMemoryResult{MemoryID: in.MemoryID, Deleted: true}, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolModifyPermissions}, func(_ context.Context, req *mcp.CallToolRequest, in shared.ModifyPermissionsArgs) (*mcp.CallToolResult, shared.Memory, error) {
		user, scopes := caller(req)
		if err := needWrite(scopes); err != nil {
			return nil, shared.Memory{}, err
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		m, ok := s.memories[in.MemoryID]
		if !ok || m.OwnerID != user {
			return nil, shared.Memory{}, errNotFound
		}
		ids, err := s.resolveUsers(in.SharedWith)
		if err != nil {
			return nil, shared.Memory{}, err
		}
		m.Permission = in.Permission
		m.SharedWith = append([]string{}, ids...)
		m.UpdatedAt = time.Now().UTC()
		return nil, *m, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolGetMemories}, func(_ context.Context, req *mcp.CallToolRequest, in shared.GetMemoriesArgs) (*mcp.CallToolResult, shared.MemoryPage, error) {
		user, _ := caller(req)
		s.mu.Lock()
		defer s.mu.Unlock()
		owner := in.UserID
		if owner == "" {
			owner = user
		}
		var list []shared.Memory
		for _, m := range s.memories {
			if m.OwnerID != owner || !s.visible(m, user) || (m.Expired && !(in.IncludeExpired && m.OwnerID == user)) {
				continue
			}
			if in.Permission != "" && m.Permission != in.Permission {
				continue
			}
			if !containsAll(m.Tags, in.Tags) {
				continue
			}
			list = append(list, *m)
		}
		sort.Slice(list, func(i, j int) bool {
			if !list[i].CreatedAt.Equal(list[j].CreatedAt) {
				return list[i].CreatedAt.After(list[j].CreatedAt)
			}
			return list[i].ID < list[j].ID
		})
		limit := in.Limit
		if limit <= 0 {
			limit = 50
		}
		start, _ := strconv.Atoi(in.Cursor)
		if start > len(list) {
			start = len(list)
		}
		end := min(start+limit, len(list))
		page := shared.MemoryPage{Memories: list[start:end]}
		if page.Memories == nil {
			page.Memories = []shared.Memory{}
		}
		if end < len(list) {
			page.NextCursor = strconv.Itoa(end)
		}
		return nil, page, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolQueryMemory}, func(_ context.Context, req *mcp.CallToolRequest, in shared.QueryMemoryArgs) (*mcp.CallToolResult, shared.QueryMemoryResult, error) {
		user, _ := caller(req)
		s.mu.Lock()
		defer s.mu.Unlock()
		res := shared.QueryMemoryResult{Results: []shared.Scored{}}
		for _, m := range s.memories {
			if !s.visible(m, user) || m.Expired || (in.UserID != "" && m.OwnerID != in.UserID) || (in.Permission != "" && m.Permission != in.Permission) || !containsAll(m.Tags, in.Tags) {
				continue
			}
			if sc := score(in.Query, m.Text); sc > 0 {
				res.Results = append(res.Results, shared.Scored{Memory: *m, Score: sc})
			}
		}
		sort.Slice(res.Results, func(i, j int) bool { return res.Results[i].Score > res.Results[j].Score })
		return nil, res, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolListPersonas}, func(_ context.Context, req *mcp.CallToolRequest, in shared.PageArgs) (*mcp.CallToolResult, shared.PersonaPage, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		counts := map[string]int{}
		for _, m := range s.memories {
			if m.Permission == shared.PermissionPublic && !m.Expired {
				counts[m.OwnerID]++
			}
		}
		page := shared.PersonaPage{Personas: []shared.Persona{}}
		for id, n := range counts {
			page.Personas = append(page.Personas, shared.Persona{UserID: id, Name: s.names[id], PublicMemories: n})
		}
		sort.Slice(page.Personas, func(i, j int) bool { return page.Personas[i].UserID < page.Personas[j].UserID })
		return nil, page, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: shared.ToolQueryUser}, func(_ context.Context, req *mcp.CallToolRequest, in shared.QueryUserArgs) (*mcp.CallToolResult, shared.QueryUserResult, error) {
		user, _ := caller(req)
		s.mu.Lock()
		defer s.mu.Unlock()
		res := shared.QueryUserResult{Memories: []shared.Scored{}}
		for _, m := range s.memories {
			if m.OwnerID != in.UserID || !s.visible(m, user) || m.Expired {
				continue
			}
			if sc := score(in.Prompt, m.Text); sc > 0 {
				res.Memories = append(res.Memories, shared.Scored{Memory: *m, Score: sc})
			}
		}
		sort.Slice(res.Memories, func(i, j int) bool { return res.Memories[i].Score > res.Memories[j].Score })
		if len(res.Memories) > 0 {
			res.Answer = res.Memories[0].Memory.Text
		}
		return nil, res, nil
	})
	srv.AddResourceTemplate(&mcp.ResourceTemplate{Name: "memory", URITemplate: "memories://{memory_id}", MIMEType: "application/json"},
		func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			user := ""
			if req.Extra != nil && req.Extra.TokenInfo != nil {
				user = req.Extra.TokenInfo.UserID
			}
			id := strings.TrimPrefix(req.Params.URI, "memories://")
			s.mu.Lock()
			defer s.mu.Unlock()
			m, ok := s.memories[id]
			if !ok || !s.visible(m, user) {
				return nil, mcp.ResourceNotFoundError(req.Params.URI)
			}
			b, _ := json.Marshal(m)
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, MIMEType: "application/json", Text: string(b)}}}, nil
		})
	return srv
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// score is the share of query words found in text: crude, but higher is
// better, as the contract requires.
func score(query, text string) float64 {
	words := strings.Fields(strings.ToLower(query))
	if len(words) == 0 {
		return 0
	}
	text = strings.ToLower(text)
	n := 0
	for _, w := range words {
		if strings.Contains(text, strings.Trim(w, "?.,!")) {
			n++
		}
	}
	return float64(n) / float64(len(words))
}

// updateArgs takes update_memory's arguments as a plain object: the
// schema inferred from shared.NullableTime says "object", while the wire
// carries an RFC 3339 string or null.
type updateArgs map[string]any

func (u updateArgs) decode() (shared.UpdateMemoryArgs, error) {
	var out shared.UpdateMemoryArgs
	b, _ := json.Marshal(u)
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("invalid_argument: %v", err)
	}
	return out, nil
}
