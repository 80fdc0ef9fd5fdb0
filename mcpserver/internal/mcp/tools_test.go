package mcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/mcpserver/internal/memory"
	"picard.dev/shared"
)

func ids(ms []shared.Memory) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestToolList(t *testing.T) {
	e := newEnv(t)
	cs := e.client(identity(e.alice))
	res, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		shared.ToolSubmitMemory, shared.ToolSubmitMemories, shared.ToolUpdateMemory, shared.ToolDeleteMemory,
		shared.ToolDeleteMemories, shared.ToolModifyPermissions, shared.ToolGetMemories, shared.ToolRetrieveMemories,
		shared.ToolQueryMemory, shared.ToolQueryUser, shared.ToolListPersonas, shared.ToolAdminStats,
		shared.ToolAdminListUsers, shared.ToolAdminSetUserDisabled,
	}
	var got []string
	for _, tl := range res.Tools {
		got = append(got, tl.Name)
		if tl.Description == "" || tl.Annotations == nil || tl.OutputSchema == nil {
			t.Errorf("%s: missing description, annotations or output schema", tl.Name)
		}
		if tl.Annotations.OpenWorldHint == nil || *tl.Annotations.OpenWorldHint {
			t.Errorf("%s: openWorldHint should be false", tl.Name)
		}
	}
	if !slices.Equal(sorted(got...), sorted(want...)) {
		t.Fatalf("tools = %v, want %v", got, want)
	}
	// Spot-check the tightened schemas.
	schema := func(name string) map[string]any {
		for _, tl := range res.Tools {
			if tl.Name == name {
				b, _ := json.Marshal(tl.InputSchema)
				var m map[string]any
				json.Unmarshal(b, &m)
				return m
			}
		}
		t.Fatalf("no tool %s", name)
		return nil
	}
	prop := func(s map[string]any, p string) map[string]any {
		return s["properties"].(map[string]any)[p].(map[string]any)
	}
	sm := schema(shared.ToolSubmitMemory)
	if got := prop(sm, "permission")["enum"]; len(got.([]any)) != 3 {
		t.Errorf("permission enum = %v", got)
	}
	if got := sm["required"]; len(got.([]any)) != 1 || got.([]any)[0] != "text" {
		t.Errorf("submit_memory required = %v", got)
	}
	if got := prop(sm, "expiration_date")["format"]; got != "date-time" {
		t.Errorf("expiration_date format = %v", got)
	}
	um := schema(shared.ToolUpdateMemory)
	if got := prop(um, "memory_id")["format"]; got != "uuid" {
		t.Errorf("memory_id format = %v", got)
	}
	if got := prop(um, "expiration_date")["type"]; !slices.Contains(got.([]any), "null") {
		t.Errorf("update expiration_date must accept null: %v", got)
	}
	gm := schema(shared.ToolGetMemories)
	if got := prop(gm, "sort")["enum"]; len(got.([]any)) != 2 {
		t.Errorf("sort enum = %v", got)
	}
	if got := prop(gm, "limit")["maximum"]; got != float64(500) {
		t.Errorf("limit maximum = %v", got)
	}
	for _, tl := range res.Tools {
		ro := tl.Annotations.ReadOnlyHint
		write := strings.HasPrefix(tl.Name, "submit") || strings.HasPrefix(tl.Name, "update") || strings.HasPrefix(tl.Name, "delete") || tl.Name == shared.ToolModifyPermissions || tl.Name == shared.ToolAdminSetUserDisabled
		if write == ro {
			t.Errorf("%s: readOnlyHint = %v", tl.Name, ro)
		}
		if strings.HasPrefix(tl.Name, "delete") && (tl.Annotations.DestructiveHint == nil || !*tl.Annotations.DestructiveHint) {
			t.Errorf("%s: destructiveHint should be true", tl.Name)
		}
	}
}

func TestMemoryLifecycle(t *testing.T) {
	e := newEnv(t)
	alice := e.client(identity(e.alice))
	bob := e.client(identity(e.bob))

	m := call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{
		"text": "I like green tea in the morning", "tags": []string{"drinks", "morning"},
		"metadata": map[string]any{"source": "chat"}, "expiration_date": "2099-01-01T00:00:00Z",
	})
	if m.Permission != "private" || m.OwnerID != e.alice.ID.String() || m.Expired || m.ExpirationDate == nil {
		t.Fatalf("submitted %+v", m)
	}

	batch := call[shared.MemoriesResult](t, alice, shared.ToolSubmitMemories, map[string]any{"memories": []any{
		map[string]any{"text": "first"}, map[string]any{"text": "second", "permission": "public"},
		map[string]any{"text": "third", "shared_with": []string{"bob@example.com"}},
	}})
	if len(batch.Memories) != 3 || batch.Memories[0].Text != "first" || batch.Memories[2].Text != "third" {
		t.Fatalf("batch order: %+v", batch.Memories)
	}
	if batch.Memories[2].Permission != "shared" || !slices.Equal(batch.Memories[2].SharedWith, []string{e.bob.ID.String()}) {
		t.Fatalf("shared_with by email: %+v", batch.Memories[2])
	}

	// update: text, tags, metadata; null expiration removes it.
	up := call[shared.Memory](t, alice, shared.ToolUpdateMemory, map[string]any{
		"memory_id": m.ID, "text": "I like green tea", "tags": []string{"tea"}, "metadata": map[string]any{"k": 1},
		"expiration_date": nil,
	})
	if up.Text != "I like green tea" || !slices.Equal(up.Tags, []string{"tea"}) || up.Metadata["k"] != float64(1) || up.ExpirationDate != nil {
		t.Fatalf("updated %+v", up)
	}
	// A field left out stays.
	up2 := call[shared.Memory](t, alice, shared.ToolUpdateMemory, map[string]any{"memory_id": m.ID, "tags": []string{"tea", "green"}})
	if up2.Text != "I like green tea" || len(up2.Tags) != 2 {
		t.Fatalf("partial update %+v", up2)
	}

	mp := call[shared.Memory](t, alice, shared.ToolModifyPermissions, map[string]any{
		"memory_id": m.ID, "permission": "shared", "shared_with": []string{e.bob.ID.String(), "carol@example.com"},
	})
	if mp.Permission != "shared" || len(mp.SharedWith) != 2 {
		t.Fatalf("modify_permissions %+v", mp)
	}
	// Bob now sees it.
	seen := call[shared.MemoryPage](t, bob, shared.ToolGetMemories, map[string]any{"user_id": e.alice.ID.String()})
	if !slices.Contains(ids(seen.Memories), m.ID) {
		t.Fatalf("bob does not see the shared memory: %v", ids(seen.Memories))
	}

	// query_memory: best first, scores descending.
	q := call[shared.QueryMemoryResult](t, alice, shared.ToolQueryMemory, map[string]any{"query": "green tea", "limit": 3})
	if len(q.Results) == 0 || q.Results[0].Memory.ID != m.ID {
		t.Fatalf("query results %+v", q.Results)
	}
	for i := 1; i < len(q.Results); i++ {
		if q.Results[i].Score > q.Results[i-1].Score {
			t.Fatalf("scores not descending: %+v", q.Results)
		}
	}

	// retrieve_memories pages with a cursor.
	p1 := call[shared.MemoryPage](t, alice, shared.ToolRetrieveMemories, map[string]any{"limit": 3})
	if len(p1.Memories) != 3 || p1.NextCursor == "" {
		t.Fatalf("page 1: %d, cursor %q", len(p1.Memories), p1.NextCursor)
	}
	p2 := call[shared.MemoryPage](t, alice, shared.ToolRetrieveMemories, map[string]any{"limit": 3, "cursor": p1.NextCursor})
	if len(p2.Memories) != 1 || p2.NextCursor != "" {
		t.Fatalf("page 2: %d, cursor %q", len(p2.Memories), p2.NextCursor)
	}

	// get_memories filters.
	byTag := call[shared.MemoryPage](t, alice, shared.ToolGetMemories, map[string]any{"tags": []string{"tea", "green"}})
	if !slices.Equal(ids(byTag.Memories), []string{m.ID}) {
		t.Fatalf("tags filter: %v", ids(byTag.Memories))
	}
	byPerm := call[shared.MemoryPage](t, alice, shared.ToolGetMemories, map[string]any{"permission": "public"})
	if !slices.Equal(ids(byPerm.Memories), []string{batch.Memories[1].ID}) {
		t.Fatalf("permission filter: %v", ids(byPerm.Memories))
	}
	byMeta := call[shared.MemoryPage](t, alice, shared.ToolGetMemories, map[string]any{"metadata": map[string]any{"k": 1}})
	if !slices.Equal(ids(byMeta.Memories), []string{m.ID}) {
		t.Fatalf("metadata filter: %v", ids(byMeta.Memories))
	}
	asc := call[shared.MemoryPage](t, alice, shared.ToolGetMemories, map[string]any{"sort": "updated_at", "order": "asc"})
	if len(asc.Memories) != 4 || asc.Memories[3].ID != m.ID {
		t.Fatalf("updated_at asc: %v", asc.Memories)
	}
	future := call[shared.MemoryPage](t, alice, shared.ToolGetMemories, map[string]any{"created_after": time.Now().Add(time.Hour).Format(time.RFC3339)})
	if len(future.Memories) != 0 {
		t.Fatalf("created_after filter: %v", ids(future.Memories))
	}

	// Personas: alice has one public memory.
	pp := call[shared.PersonaPage](t, bob, shared.ToolListPersonas, map[string]any{})
	if len(pp.Personas) != 1 || pp.Personas[0].UserID != e.alice.ID.String() || pp.Personas[0].PublicMemories != 1 || pp.Personas[0].Name != "Alice" {
		t.Fatalf("personas %+v", pp)
	}

	// query_user: extractive, only what bob may see, non-empty answer.
	qu := call[shared.QueryUserResult](t, bob, shared.ToolQueryUser, map[string]any{"user_id": e.alice.ID.String(), "prompt": "green tea"})
	if qu.Model != "extractive" || qu.Answer == "" || len(qu.Memories) == 0 || qu.Memories[0].Memory.ID != m.ID {
		t.Fatalf("query_user %+v", qu)
	}

	// Deletes.
	d := call[shared.DeleteMemoryResult](t, alice, shared.ToolDeleteMemory, map[string]any{"memory_id": m.ID})
	if !d.Deleted || d.MemoryID != m.ID {
		t.Fatalf("delete %+v", d)
	}
	dm := call[shared.DeleteMemoriesResult](t, alice, shared.ToolDeleteMemories, map[string]any{"memory_ids": []string{batch.Memories[0].ID, batch.Memories[1].ID}})
	if dm.Deleted != 2 || e.count(e.alice.ID) != 1 {
		t.Fatalf("delete_memories %+v, left %d", dm, e.count(e.alice.ID))
	}
	if got := callErr(t, alice, shared.ToolDeleteMemory, map[string]any{"memory_id": m.ID}); !strings.HasPrefix(got, "not_found:") {
		t.Fatalf("second delete: %s", got)
	}
}

func TestVisibility(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.client(identity(e.alice))
	bob := e.client(identity(e.bob))
	carol := e.client(identity(e.carol))
	past := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)

	mk := func(args map[string]any) shared.Memory {
		return call[shared.Memory](t, alice, shared.ToolSubmitMemory, args)
	}
	private := mk(map[string]any{"text": "alpha private secret"})
	public := mk(map[string]any{"text": "alpha public fact", "permission": "public"})
	shared_ := mk(map[string]any{"text": "alpha shared note", "permission": "shared", "shared_with": []string{e.bob.ID.String()}})
	expired := mk(map[string]any{"text": "alpha expired public", "permission": "public", "expiration_date": past})
	if !expired.Expired {
		t.Fatalf("past expiration should give expired: %+v", expired)
	}

	aliceID := e.alice.ID.String()
	cases := []struct {
		name string
		cs   *sdk.ClientSession
		args map[string]any
		want []string
	}{
		{"owner default hides expired", alice, map[string]any{}, []string{private.ID, public.ID, shared_.ID}},
		{"owner include_expired", alice, map[string]any{"include_expired": true}, []string{private.ID, public.ID, shared_.ID, expired.ID}},
		{"shared-with user", bob, map[string]any{"user_id": aliceID}, []string{public.ID, shared_.ID}},
		{"shared-with user include_expired is ignored", bob, map[string]any{"user_id": aliceID, "include_expired": true}, []string{public.ID, shared_.ID}},
		{"other user", carol, map[string]any{"user_id": aliceID}, []string{public.ID}},
		{"other user asks for private", carol, map[string]any{"user_id": aliceID, "permission": "private"}, []string{}},
		{"own list of other user is empty", carol, map[string]any{}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := call[shared.MemoryPage](t, c.cs, shared.ToolGetMemories, c.args)
			if !slices.Equal(ids(got.Memories), sorted(c.want...)) {
				t.Fatalf("got %v, want %v", ids(got.Memories), sorted(c.want...))
			}
		})
	}

	// Search obeys the same rules.
	search := func(cs *sdk.ClientSession) []string {
		r := call[shared.QueryMemoryResult](t, cs, shared.ToolQueryMemory, map[string]any{"query": "alpha", "limit": 100})
		var out []string
		for _, s := range r.Results {
			out = append(out, s.Memory.ID)
		}
		slices.Sort(out)
		return out
	}
	if got := search(bob); !slices.Equal(got, sorted(public.ID, shared_.ID)) {
		t.Errorf("bob search %v", got)
	}
	if got := search(carol); !slices.Equal(got, sorted(public.ID)) {
		t.Errorf("carol search %v", got)
	}

	// query_user: bob gets only public + shared, carol only public, alice all unexpired.
	ask := func(cs *sdk.ClientSession) []string {
		r := call[shared.QueryUserResult](t, cs, shared.ToolQueryUser, map[string]any{"user_id": aliceID, "prompt": "alpha"})
		var out []string
		for _, s := range r.Memories {
			out = append(out, s.Memory.ID)
		}
		slices.Sort(out)
		return out
	}
	if got := ask(bob); !slices.Equal(got, sorted(public.ID, shared_.ID)) {
		t.Errorf("bob query_user %v", got)
	}
	if got := ask(carol); !slices.Equal(got, sorted(public.ID)) {
		t.Errorf("carol query_user %v", got)
	}
	if got := ask(alice); !slices.Equal(got, sorted(private.ID, public.ID, shared_.ID)) {
		t.Errorf("alice query_user %v", got)
	}

	// Changing or deleting a memory one cannot see is not_found, exactly
	// like a memory that does not exist; nothing changes.
	for _, id := range []string{private.ID, expired.ID, uuid.NewString()} {
		for _, c := range []struct {
			tool string
			args map[string]any
		}{
			{shared.ToolUpdateMemory, map[string]any{"memory_id": id, "text": "hacked"}},
			{shared.ToolDeleteMemory, map[string]any{"memory_id": id}},
			{shared.ToolModifyPermissions, map[string]any{"memory_id": id, "permission": "public"}},
			{shared.ToolDeleteMemories, map[string]any{"memory_ids": []string{id}}},
		} {
			if got := callErr(t, carol, c.tool, c.args); !strings.HasPrefix(got, "not_found:") {
				t.Errorf("%s of %s by carol: %s", c.tool, id, got)
			}
		}
	}
	// Visible but not owned: may not be changed.
	if got := callErr(t, carol, shared.ToolUpdateMemory, map[string]any{"memory_id": public.ID, "text": "hacked"}); !strings.HasPrefix(got, "permission_denied:") {
		t.Errorf("update of a public memory by another user: %s", got)
	}
	m, err := e.mem.Get(ctx, e.alice.ID, uuid.MustParse(private.ID), true)
	if err != nil || m.Text != "alpha private secret" {
		t.Fatalf("private memory changed: %v %v", m, err)
	}
	if e.count(e.alice.ID) != 4 {
		t.Fatalf("alice has %d memories", e.count(e.alice.ID))
	}
}

func TestScopes(t *testing.T) {
	e := newEnv(t)
	setup := e.client(identity(e.alice))
	m := call[shared.Memory](t, setup, shared.ToolSubmitMemory, map[string]any{"text": "scoped"})

	readOnly := e.client(identity(e.alice, shared.ScopeRead))
	writeOnly := e.client(identity(e.alice, shared.ScopeWrite))
	adminScopeNotAdmin := e.client(identity(e.alice, shared.AllScopes...))
	adminNoScope := e.client(identity(e.admin, shared.ScopeRead, shared.ScopeWrite))
	admin := e.client(identity(e.admin))
	anonymous := e.client(nil)

	writes := map[string]map[string]any{
		shared.ToolSubmitMemory:      {"text": "x"},
		shared.ToolSubmitMemories:    {"memories": []any{map[string]any{"text": "x"}}},
		shared.ToolUpdateMemory:      {"memory_id": m.ID, "text": "x"},
		shared.ToolDeleteMemory:      {"memory_id": m.ID},
		shared.ToolDeleteMemories:    {"memory_ids": []string{m.ID}},
		shared.ToolModifyPermissions: {"memory_id": m.ID, "permission": "public"},
	}
	reads := map[string]map[string]any{
		shared.ToolGetMemories:      {},
		shared.ToolRetrieveMemories: {},
		shared.ToolQueryMemory:      {"query": "x"},
		shared.ToolQueryUser:        {"user_id": e.alice.ID.String(), "prompt": "x"},
		shared.ToolListPersonas:     {},
	}
	admins := map[string]map[string]any{
		shared.ToolAdminStats:           {},
		shared.ToolAdminListUsers:       {},
		shared.ToolAdminSetUserDisabled: {"user_id": e.bob.ID.String(), "disabled": false},
	}
	for tool, args := range writes {
		if got := callErr(t, readOnly, tool, args); !strings.HasPrefix(got, "insufficient_scope:") || !strings.Contains(got, shared.ScopeWrite) {
			t.Errorf("%s with read-only token: %s", tool, got)
		}
		if got := callErr(t, anonymous, tool, args); !strings.HasPrefix(got, "unauthenticated:") {
			t.Errorf("%s without identity: %s", tool, got)
		}
	}
	for tool, args := range reads {
		if got := callErr(t, writeOnly, tool, args); !strings.HasPrefix(got, "insufficient_scope:") || !strings.Contains(got, shared.ScopeRead) {
			t.Errorf("%s with write-only token: %s", tool, got)
		}
	}
	for tool, args := range admins {
		if got := callErr(t, adminScopeNotAdmin, tool, args); !strings.HasPrefix(got, "permission_denied:") {
			t.Errorf("%s by a non-admin account: %s", tool, got)
		}
		if got := callErr(t, adminNoScope, tool, args); !strings.HasPrefix(got, "insufficient_scope:") || !strings.Contains(got, shared.ScopeAdmin) {
			t.Errorf("%s without the admin scope: %s", tool, got)
		}
		call[map[string]any](t, admin, tool, args)
	}
	// Nothing was changed by the refused writes.
	got, err := e.mem.Get(context.Background(), e.alice.ID, uuid.MustParse(m.ID), true)
	if err != nil || got.Text != "scoped" || got.Permission != memory.Private || e.count(e.alice.ID) != 1 {
		t.Fatalf("store changed: %+v %v", got, err)
	}
	// Resources need memories:read.
	if _, err := writeOnly.ReadResource(context.Background(), &sdk.ReadResourceParams{URI: mcp.MemoryURI(uuid.MustParse(m.ID))}); err == nil || !strings.Contains(err.Error(), shared.ScopeRead) {
		t.Errorf("resource read with write-only token: %v", err)
	}
}

func TestAdminTools(t *testing.T) {
	revoked := &fakeRevoker{}
	e := newEnv(t, func(d *mcp.Deps) { d.Tokens = revoked })
	alice := e.client(identity(e.alice))
	admin := e.client(identity(e.admin))
	call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": "very private text", "permission": "private"})
	call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": "public text", "permission": "public"})
	e.reg.Flush()

	st := call[shared.AdminStatsResult](t, admin, shared.ToolAdminStats, map[string]any{})
	if st.Memories != 2 || st.ByPermission["private"] != 1 || st.ByPermission["public"] != 1 || st.Owners != 1 {
		t.Fatalf("stats %+v", st)
	}
	if st.ActivityCounts["tool:submit_memory"] != 2 {
		t.Fatalf("activity counts %+v", st.ActivityCounts)
	}
	users := call[shared.AdminUserPage](t, admin, shared.ToolAdminListUsers, map[string]any{"limit": 2})
	if len(users.Users) != 2 || users.NextCursor == "" {
		t.Fatalf("users page %+v", users)
	}
	more := call[shared.AdminUserPage](t, admin, shared.ToolAdminListUsers, map[string]any{"limit": 10, "cursor": users.NextCursor})
	if len(more.Users) != 2 {
		t.Fatalf("second users page %+v", more)
	}
	// No admin result carries memory text.
	for _, tool := range []string{shared.ToolAdminStats, shared.ToolAdminListUsers} {
		res, _ := admin.CallTool(context.Background(), &sdk.CallToolParams{Name: tool, Arguments: map[string]any{}})
		b, _ := json.Marshal(res)
		if strings.Contains(string(b), "very private text") {
			t.Fatalf("%s leaks memory text", tool)
		}
	}

	dis := call[shared.AdminSetUserDisabledResult](t, admin, shared.ToolAdminSetUserDisabled, map[string]any{"user_id": e.bob.ID.String(), "disabled": true})
	if !dis.User.Disabled || dis.RevokedTokens != 3 || revoked.user != e.bob.ID {
		t.Fatalf("disable %+v (revoked %v)", dis, revoked.user)
	}
	en := call[shared.AdminSetUserDisabledResult](t, admin, shared.ToolAdminSetUserDisabled, map[string]any{"user_id": e.bob.ID.String(), "disabled": false})
	if en.User.Disabled {
		t.Fatalf("enable %+v", en)
	}
	if got := callErr(t, admin, shared.ToolAdminSetUserDisabled, map[string]any{"user_id": e.admin.ID.String(), "disabled": true}); !strings.HasPrefix(got, "invalid_argument: user_id") {
		t.Fatalf("self-disable: %s", got)
	}
	if got := callErr(t, admin, shared.ToolAdminSetUserDisabled, map[string]any{"user_id": uuid.NewString(), "disabled": true}); !strings.HasPrefix(got, "not_found:") {
		t.Fatalf("unknown user: %s", got)
	}
	if got := callErr(t, admin, shared.ToolAdminSetUserDisabled, map[string]any{"user_id": e.bob.ID.String()}); !strings.Contains(got, "disabled") {
		t.Fatalf("missing disabled: %s", got)
	}
}

type fakeRevoker struct{ user uuid.UUID }

func (f *fakeRevoker) RevokeUserTokens(_ context.Context, id uuid.UUID) (int, error) {
	f.user = id
	return 3, nil
}

func TestActivityAndMetrics(t *testing.T) {
	e := newEnv(t)
	cs := e.client(identity(e.alice))
	call[shared.Memory](t, cs, shared.ToolSubmitMemory, map[string]any{"text": "x"})
	callErr(t, cs, shared.ToolSubmitMemory, map[string]any{"text": ""})
	callErr(t, e.client(identity(e.alice, shared.ScopeRead)), shared.ToolSubmitMemory, map[string]any{"text": "x"})
	e.reg.Flush()
	entries, err := e.db.Activity().ForUser(context.Background(), e.alice.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	var outcomes []string
	for _, en := range entries {
		if en.Action != "tool:submit_memory" || en.ClientID != "test-client" {
			t.Errorf("entry %+v", en)
		}
		outcomes = append(outcomes, en.Outcome)
	}
	if !slices.Equal(sorted(outcomes...), sorted("ok", "invalid_argument", "insufficient_scope")) {
		t.Fatalf("outcomes %v", outcomes)
	}
	mfs, err := e.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if m.Counter != nil {
				found[mf.GetName()] += m.Counter.GetValue()
			}
			if m.Histogram != nil {
				found[mf.GetName()] += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	if found["picard_tool_calls_total"] != 3 || found["picard_tool_errors_total"] != 2 || found["picard_tool_duration_seconds"] != 3 {
		t.Fatalf("metrics %v", found)
	}
}
