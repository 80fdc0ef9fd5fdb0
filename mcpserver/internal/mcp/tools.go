package mcp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/mcpserver/internal/user"
	"picard.dev/shared"
)

// Descriptions are written for the model that picks and fills in tools:
// what the tool does, what it returns, and the rules it would otherwise
// have to learn from errors.
func (r *Registry) defineTools() {
	exampleID := "123e4567-e89b-42d3-a456-426614174000"

	define(r, spec{
		name: shared.ToolSubmitMemory, title: "Remember something", scope: shared.ScopeWrite,
		description: "Store a new memory owned by the caller and return it. permission defaults to private " +
			"(only the caller sees it); public makes it visible to every signed-in user; shared makes it visible " +
			"to the users in shared_with (user ids or emails; giving shared_with without permission implies shared). " +
			"Limits: text 1-32768 characters, up to 32 tags of up to 64 characters, metadata a JSON object of at most 8 KiB. " +
			"An expiration_date in the past is accepted and stores the memory as expired.",
		example: shared.NewMemory{Text: "I prefer tea over coffee.", Tags: []string{"preferences"}},
	}, r.submitMemory, renderMemory)

	define(r, spec{
		name: shared.ToolSubmitMemories, title: "Remember several things", scope: shared.ScopeWrite, batch: true,
		description: "Store up to 1000 memories at once, all or nothing: if any memory breaks a rule, none is stored and " +
			"the error names the element (memories[i].field). Returns the memories in input order. Each element " +
			"takes the arguments of submit_memory.",
		example: shared.SubmitMemoriesArgs{Memories: []shared.NewMemory{{Text: "First fact"}, {Text: "Second fact", Permission: "public"}}},
	}, r.submitMemories, renderMemories)

	define(r, spec{
		name: shared.ToolUpdateMemory, title: "Change a memory", scope: shared.ScopeWrite, idempotent: true, destructive: true,
		description: "Change the text, tags, metadata or expiration_date of one of the caller's memories; arguments left " +
			"out stay as they are, tags and metadata replace the old values, and expiration_date null removes the " +
			"expiration. Use modify_permissions to change who may see it. A memory the caller cannot see is not_found.",
		example: map[string]any{"memory_id": exampleID, "text": "I prefer green tea.", "tags": []string{"preferences", "drinks"}},
	}, r.updateMemory, renderMemory)

	define(r, spec{
		name: shared.ToolDeleteMemory, title: "Forget a memory", scope: shared.ScopeWrite, destructive: true, idempotent: false,
		description: "Delete one of the caller's memories permanently. A memory the caller does not own or cannot see is not_found.",
		example:     shared.MemoryIDArgs{MemoryID: exampleID},
	}, r.deleteMemory, renderDeleted)

	define(r, spec{
		name: shared.ToolDeleteMemories, title: "Forget several memories", scope: shared.ScopeWrite, destructive: true, batch: true,
		description: "Delete up to 1000 of the caller's memories, all or nothing: if any id is unknown or not the caller's, " +
			"nothing is deleted and the result is not_found.",
		example: shared.DeleteMemoriesArgs{MemoryIDs: []string{exampleID}},
	}, r.deleteMemories, renderDeletedCount)

	define(r, spec{
		name: shared.ToolModifyPermissions, title: "Change who may see a memory", scope: shared.ScopeWrite, idempotent: true, destructive: true,
		description: "Set the permission of one of the caller's memories: private (only the owner), public (every signed-in " +
			"user) or shared (the owner and the users in shared_with, given as user ids or emails). shared_with replaces " +
			"the previous list and is only allowed with shared.",
		example: shared.ModifyPermissionsArgs{MemoryID: exampleID, Permission: "shared", SharedWith: []string{"friend@example.com"}},
	}, r.modifyPermissions, renderMemory)

	define(r, spec{
		name: shared.ToolGetMemories, title: "List memories", scope: shared.ScopeRead, readOnly: true, idempotent: true, maxLimit: memory.MaxListLimit,
		description: "List memories, newest first by default. Without user_id it lists the caller's own memories; with user_id " +
			"it lists what the caller may see of that user (their public memories and those shared with the caller). " +
			"Filters: permission, tags (memories carrying all of them), metadata (exact key/value matches), " +
			"created_after/created_before (RFC 3339). Expired memories appear only with include_expired and only for " +
			"the caller's own. Pass next_cursor back as cursor for the next page; it is absent on the last page.",
		example: shared.GetMemoriesArgs{Tags: []string{"preferences"}, Limit: 20},
	}, r.getMemories, renderPage)

	define(r, spec{
		name: shared.ToolRetrieveMemories, title: "List my memories", scope: shared.ScopeRead, readOnly: true, idempotent: true, maxLimit: memory.MaxListLimit,
		description: "List the caller's own unexpired memories, newest first, a page at a time (limit 1-500, default 50). " +
			"Pass next_cursor back as cursor for the next page.",
		example: shared.PageArgs{Limit: 50},
	}, r.retrieveMemories, renderPage)

	define(r, spec{
		name: shared.ToolQueryMemory, title: "Search memories", scope: shared.ScopeRead, readOnly: true, idempotent: true, maxLimit: memory.MaxSearchLimit,
		description: "Search the memories the caller may see (their own, public ones and those shared with them) and return " +
			"the best matches first, each with a score (higher is better). mode hybrid (the default) fuses meaning and " +
			"words and scores 0-1 (1: best by both); vector ranks by meaning alone, scored by cosine similarity (-1 to 1); " +
			"lexical ranks by shared words (BM25, 0 or more). Optional filters: user_id (one owner), permission, tags. " +
			"limit 1-100, default 10.",
		example: shared.QueryMemoryArgs{Query: "what does the user like to drink?", Limit: 5},
	}, r.queryMemory, renderScored)

	define(r, spec{
		name: shared.ToolQueryUser, title: "Ask a persona", scope: shared.ScopeRead, readOnly: true, idempotent: false,
		description: "Ask a question to the persona of a user: the answer is drawn from that user's memories that the caller " +
			"may see (public ones, those shared with the caller, and all of them when the caller asks their own persona), " +
			"and the memories it drew on are returned with it. model is the chat model that wrote the answer, or " +
			"\"extractive\" when no model is configured and the answer quotes the best-matching memories.",
		example: shared.QueryUserArgs{UserID: exampleID, Prompt: "What music do you like?"},
	}, r.queryUser, renderAnswer)

	define(r, spec{
		name: shared.ToolListPersonas, title: "List personas", scope: shared.ScopeRead, readOnly: true, idempotent: true, maxLimit: memory.MaxListLimit,
		description: "List the users that have at least one public memory, with their number of public memories; these " +
			"personas can be asked with query_user. Pass next_cursor back as cursor for the next page.",
		example: shared.PageArgs{Limit: 50},
	}, r.listPersonas, renderPersonas)

	define(r, spec{
		name: shared.ToolAdminStats, title: "Server statistics", scope: shared.ScopeAdmin, admin: true, readOnly: true, idempotent: true,
		description: "Administrators only: counts of memories (by permission, expired), owners, and the activity of the " +
			"last 24 hours per action. Contains no memory text.",
		example: shared.EmptyArgs{},
	}, r.adminStats, renderStats)

	define(r, spec{
		name: shared.ToolAdminListUsers, title: "List accounts", scope: shared.ScopeAdmin, admin: true, readOnly: true, idempotent: true, maxLimit: memory.MaxListLimit,
		description: "Administrators only: list accounts (id, email, name, admin, disabled, created and last seen), a page " +
			"at a time.",
		example: shared.AdminListUsersArgs{Limit: 50},
	}, r.adminListUsers, renderUsers)

	define(r, spec{
		name: shared.ToolAdminSetUserDisabled, title: "Disable or enable an account", scope: shared.ScopeAdmin, admin: true, idempotent: true, destructive: true,
		description: "Administrators only: disable an account (it can no longer sign in and its tokens are revoked) or " +
			"enable it again. Administrators cannot disable their own account.",
		example: shared.AdminSetUserDisabledArgs{UserID: exampleID, Disabled: true},
	}, r.adminSetUserDisabled, renderSetDisabled)
}

// wire converts a domain memory to the contract's memory object; lists are
// never null on the wire.
func wire(m *memory.Memory, now time.Time) shared.Memory {
	sw := make([]string, len(m.SharedWith))
	for i, id := range m.SharedWith {
		sw[i] = id.String()
	}
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	md := m.Metadata
	if md == nil {
		md = map[string]any{}
	}
	return shared.Memory{
		ID: m.ID.String(), OwnerID: m.OwnerID.String(), Text: m.Text, Permission: string(m.Permission),
		SharedWith: sw, Tags: tags, Metadata: md, ExpirationDate: m.ExpiresAt,
		Expired: m.Expired(now), CreatedAt: m.CreatedAt, UpdatedAt: m.UpdatedAt,
	}
}

func wireAll(ms []*memory.Memory, now time.Time) []shared.Memory {
	out := make([]shared.Memory, len(ms))
	for i, m := range ms {
		out[i] = wire(m, now)
	}
	return out
}

func wireScored(ss []memory.Scored, now time.Time) []shared.Scored {
	out := make([]shared.Scored, len(ss))
	for i, s := range ss {
		out[i] = shared.Scored{Memory: wire(s.Memory, now), Score: s.Score}
	}
	return out
}

func draft(n shared.NewMemory) memory.Draft {
	return memory.Draft{
		Text: n.Text, Permission: n.Permission, Tags: n.Tags, Metadata: n.Metadata,
		ExpiresAt: n.ExpirationDate, SharedWith: n.SharedWith,
	}
}

func (r *Registry) submitMemory(ctx context.Context, id *auth.Identity, in shared.NewMemory) (shared.Memory, error) {
	m, err := r.d.Memories.Create(ctx, id.UserID, draft(in))
	if err != nil {
		return shared.Memory{}, err
	}
	r.changed(ctx, m.OwnerID, m.ID)
	return wire(m, r.d.Memories.Now()), nil
}

func (r *Registry) submitMemories(ctx context.Context, id *auth.Identity, in shared.SubmitMemoriesArgs) (shared.MemoriesResult, error) {
	ds := make([]memory.Draft, len(in.Memories))
	for i, n := range in.Memories {
		ds[i] = draft(n)
	}
	ms, err := r.d.Memories.CreateBatch(ctx, id.UserID, ds)
	if err != nil {
		return shared.MemoriesResult{}, err
	}
	ids := make([]uuid.UUID, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	r.changed(ctx, id.UserID, ids...)
	return shared.MemoriesResult{Memories: wireAll(ms, r.d.Memories.Now())}, nil
}

func (r *Registry) updateMemory(ctx context.Context, id *auth.Identity, in shared.UpdateMemoryArgs) (shared.Memory, error) {
	mid, err := memory.ParseID("memory_id", in.MemoryID)
	if err != nil {
		return shared.Memory{}, err
	}
	p := memory.Patch{Text: in.Text, Tags: in.Tags, Metadata: in.Metadata}
	if in.ExpirationDate.IsSet {
		t := in.ExpirationDate.Time
		p.ExpiresAt = &t
	}
	if p.Text == nil && p.Tags == nil && p.Metadata == nil && p.ExpiresAt == nil {
		return shared.Memory{}, memory.Invalidf("arguments", "give at least one of text, tags, metadata, expiration_date")
	}
	m, err := r.d.Memories.Update(ctx, id.UserID, mid, p)
	if err != nil {
		return shared.Memory{}, notFound(err, mid)
	}
	r.changed(ctx, m.OwnerID, m.ID)
	return wire(m, r.d.Memories.Now()), nil
}

// notFound says which memory was not found, keeping the sentinel.
func notFound(err error, id uuid.UUID) error {
	if errors.Is(err, memory.ErrNotFound) {
		return fmt.Errorf("memory_id: no memory %s that you may see: %w", id, memory.ErrNotFound)
	}
	return err
}

func (r *Registry) deleteMemory(ctx context.Context, id *auth.Identity, in shared.MemoryIDArgs) (shared.DeleteMemoryResult, error) {
	mid, err := memory.ParseID("memory_id", in.MemoryID)
	if err != nil {
		return shared.DeleteMemoryResult{}, err
	}
	if _, err := r.d.Memories.Delete(ctx, id.UserID, []uuid.UUID{mid}); err != nil {
		return shared.DeleteMemoryResult{}, notFound(err, mid)
	}
	r.changed(ctx, id.UserID, mid)
	return shared.DeleteMemoryResult{MemoryID: mid.String(), Deleted: true}, nil
}

func (r *Registry) deleteMemories(ctx context.Context, id *auth.Identity, in shared.DeleteMemoriesArgs) (shared.DeleteMemoriesResult, error) {
	ids := make([]uuid.UUID, len(in.MemoryIDs))
	for i, s := range in.MemoryIDs {
		mid, err := memory.ParseID(fmt.Sprintf("memory_ids[%d]", i), s)
		if err != nil {
			return shared.DeleteMemoriesResult{}, err
		}
		ids[i] = mid
	}
	n, err := r.d.Memories.Delete(ctx, id.UserID, ids)
	if errors.Is(err, memory.ErrNotFound) {
		return shared.DeleteMemoriesResult{}, fmt.Errorf("memory_ids: some of these memories do not exist or are not yours; nothing was deleted: %w", memory.ErrNotFound)
	}
	if err != nil {
		return shared.DeleteMemoriesResult{}, err
	}
	r.changed(ctx, id.UserID, ids...)
	return shared.DeleteMemoriesResult{Deleted: n}, nil
}

func (r *Registry) modifyPermissions(ctx context.Context, id *auth.Identity, in shared.ModifyPermissionsArgs) (shared.Memory, error) {
	mid, err := memory.ParseID("memory_id", in.MemoryID)
	if err != nil {
		return shared.Memory{}, err
	}
	m, err := r.d.Memories.SetPermission(ctx, id.UserID, mid, in.Permission, in.SharedWith)
	if err != nil {
		return shared.Memory{}, notFound(err, mid)
	}
	r.changed(ctx, m.OwnerID, m.ID)
	return wire(m, r.d.Memories.Now()), nil
}

func (r *Registry) getMemories(ctx context.Context, id *auth.Identity, in shared.GetMemoriesArgs) (shared.MemoryPage, error) {
	q := memory.ListQuery{
		Viewer: id.UserID, Permission: memory.Permission(in.Permission), Tags: in.Tags, Metadata: in.Metadata,
		IncludeExpired: in.IncludeExpired, CreatedAfter: in.CreatedAfter, CreatedBefore: in.CreatedBefore,
		Sort: memory.SortField(in.Sort), Order: memory.Order(in.Order), Limit: in.Limit,
	}
	if in.UserID != "" {
		owner, err := memory.ParseID("user_id", in.UserID)
		if err != nil {
			return shared.MemoryPage{}, err
		}
		q.Owner = owner
	}
	return r.list(ctx, q, in.Cursor)
}

func (r *Registry) retrieveMemories(ctx context.Context, id *auth.Identity, in shared.PageArgs) (shared.MemoryPage, error) {
	return r.list(ctx, memory.ListQuery{Viewer: id.UserID, Owner: id.UserID, Limit: in.Limit}, in.Cursor)
}

func (r *Registry) list(ctx context.Context, q memory.ListQuery, cursor string) (shared.MemoryPage, error) {
	c, err := memory.DecodeCursor("cursor", cursor)
	if err != nil {
		return shared.MemoryPage{}, err
	}
	q.After = c
	p, err := r.d.Memories.List(ctx, q)
	if err != nil {
		return shared.MemoryPage{}, err
	}
	return shared.MemoryPage{Memories: wireAll(p.Memories, r.d.Memories.Now()), NextCursor: p.Next.Encode()}, nil
}

func (r *Registry) queryMemory(ctx context.Context, id *auth.Identity, in shared.QueryMemoryArgs) (shared.QueryMemoryResult, error) {
	req := memory.SearchRequest{Viewer: id.UserID, Query: in.Query, Mode: in.Mode, Permission: in.Permission, Tags: in.Tags, Limit: in.Limit}
	if in.UserID != "" {
		owner, err := memory.ParseID("user_id", in.UserID)
		if err != nil {
			return shared.QueryMemoryResult{}, err
		}
		req.Owner = owner
	}
	res, err := r.d.Memories.Search(ctx, req)
	if err != nil {
		return shared.QueryMemoryResult{}, err
	}
	return shared.QueryMemoryResult{Results: wireScored(res, r.d.Memories.Now())}, nil
}

func (r *Registry) queryUser(ctx context.Context, id *auth.Identity, in shared.QueryUserArgs) (shared.QueryUserResult, error) {
	target, err := memory.ParseID("user_id", in.UserID)
	if err != nil {
		return shared.QueryUserResult{}, err
	}
	a, err := r.d.Personas.Ask(ctx, id.UserID, target, in.Prompt)
	if err != nil {
		if errors.Is(err, memory.ErrNotFound) {
			return shared.QueryUserResult{}, fmt.Errorf("user_id: no persona %s: %w", target, memory.ErrNotFound)
		}
		return shared.QueryUserResult{}, err
	}
	return shared.QueryUserResult{Answer: a.Text, Memories: wireScored(a.Memories, r.d.Memories.Now()), Model: a.Model}, nil
}

// Persona and user cursors are the last id of a page, base64url-encoded so
// clients treat them as opaque.
func encodeIDCursor(id uuid.UUID) string { return base64.RawURLEncoding.EncodeToString(id[:]) }

func decodeIDCursor(s string) (uuid.UUID, error) {
	if s == "" {
		return uuid.Nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 16 {
		return uuid.Nil, memory.Invalidf("cursor", "is not a cursor returned by this server")
	}
	return uuid.UUID(b), nil
}

func pageLimit(limit int) (int, error) {
	switch {
	case limit == 0:
		return memory.DefaultListLimit, nil
	case limit < 0 || limit > memory.MaxListLimit:
		return 0, memory.Invalidf("limit", "must be between 1 and %d", memory.MaxListLimit)
	}
	return limit, nil
}

func (r *Registry) listPersonas(ctx context.Context, _ *auth.Identity, in shared.PageArgs) (shared.PersonaPage, error) {
	ps, next, err := pageByID(ctx, in.Cursor, in.Limit, r.d.Memories.Personas,
		func(p memory.Persona) uuid.UUID { return p.UserID },
		func(p memory.Persona) shared.Persona {
			return shared.Persona{UserID: p.UserID.String(), Name: p.Name, PublicMemories: p.PublicMemories}
		})
	return shared.PersonaPage{Personas: ps, NextCursor: next}, err
}

// pageByID runs a listing ordered by id: it decodes the cursor and the
// limit, fetches one page after the cursor's id, converts it, and returns
// the cursor of the next page ("" after the last).
func pageByID[S, T any](ctx context.Context, cursor string, limit int,
	fetch func(ctx context.Context, after uuid.UUID, limit int) ([]S, error),
	id func(S) uuid.UUID, convert func(S) T) ([]T, string, error) {
	after, err := decodeIDCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	if limit, err = pageLimit(limit); err != nil {
		return nil, "", err
	}
	items, err := fetch(ctx, after, limit)
	if err != nil {
		return nil, "", err
	}
	out := make([]T, len(items))
	for i, it := range items {
		out[i] = convert(it)
	}
	next := ""
	if len(items) == limit {
		next = encodeIDCursor(id(items[len(items)-1]))
	}
	return out, next, nil
}

// activityWindow is the period admin_stats reports activity for.
const activityWindow = 24 * time.Hour

func (r *Registry) adminStats(ctx context.Context, _ *auth.Identity, _ shared.EmptyArgs) (shared.AdminStatsResult, error) {
	st, err := r.d.Memories.Stats(ctx)
	if err != nil {
		return shared.AdminStatsResult{}, err
	}
	out := shared.AdminStatsResult{
		Memories: st.Memories, Expired: st.Expired, Owners: st.Owners,
		ByPermission:   map[string]int{},
		ActivitySince:  r.d.Memories.Now().Add(-activityWindow),
		ActivityCounts: map[string]int{},
	}
	for _, p := range memory.Permissions {
		out.ByPermission[string(p)] = st.ByPermission[p]
	}
	if r.d.Activity != nil {
		counts, err := r.d.Activity.Since(ctx, out.ActivitySince)
		if err != nil {
			return shared.AdminStatsResult{}, err
		}
		for k, v := range counts {
			out.ActivityCounts[k] = v
		}
	}
	return out, nil
}

func adminUser(u *user.User) shared.AdminUser {
	return shared.AdminUser{
		UserID: u.ID.String(), Email: u.Email, Name: u.Name, Admin: u.Admin, Disabled: u.Disabled,
		CreatedAt: u.CreatedAt, LastSeenAt: u.LastSeenAt,
	}
}

func (r *Registry) adminListUsers(ctx context.Context, _ *auth.Identity, in shared.AdminListUsersArgs) (shared.AdminUserPage, error) {
	us, next, err := pageByID(ctx, in.Cursor, in.Limit, r.d.Users.List,
		func(u *user.User) uuid.UUID { return u.ID }, adminUser)
	return shared.AdminUserPage{Users: us, NextCursor: next}, err
}

func (r *Registry) adminSetUserDisabled(ctx context.Context, id *auth.Identity, in shared.AdminSetUserDisabledArgs) (shared.AdminSetUserDisabledResult, error) {
	target, err := memory.ParseID("user_id", in.UserID)
	if err != nil {
		return shared.AdminSetUserDisabledResult{}, err
	}
	if target == id.UserID && in.Disabled {
		return shared.AdminSetUserDisabledResult{}, memory.Invalidf("user_id", "you cannot disable your own account")
	}
	u, err := r.d.Users.SetDisabled(ctx, target, in.Disabled)
	if errors.Is(err, user.ErrNotFound) {
		return shared.AdminSetUserDisabledResult{}, fmt.Errorf("user_id: no user %s: %w", target, user.ErrNotFound)
	}
	if err != nil {
		return shared.AdminSetUserDisabledResult{}, err
	}
	out := shared.AdminSetUserDisabledResult{User: adminUser(u)}
	if in.Disabled && r.d.Tokens != nil {
		n, err := r.d.Tokens.RevokeUserTokens(ctx, target)
		if err != nil {
			return shared.AdminSetUserDisabledResult{}, fmt.Errorf("account disabled, but revoking its tokens failed: %w", err)
		}
		out.RevokedTokens = n
	}
	return out, nil
}
