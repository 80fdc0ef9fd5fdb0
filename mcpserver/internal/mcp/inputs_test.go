package mcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/shared"
)

// TestBadInputs sends every kind of bad input of the contract: each is
// refused with a clear error naming the argument, and nothing is stored,
// changed or deleted.
func TestBadInputs(t *testing.T) {
	e := newEnv(t)
	cs := e.client(identity(e.alice))
	keep := call[shared.Memory](t, cs, shared.ToolSubmitMemory, map[string]any{"text": "keep me", "tags": []string{"a"}})
	before := e.count(e.alice.ID)

	many := func(n int, f func(i int) any) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	bigMeta := map[string]any{"blob": strings.Repeat("x", 9000)}
	cases := []struct {
		name, tool string
		args       any
		code, arg  string
	}{
		{"empty text", shared.ToolSubmitMemory, map[string]any{"text": ""}, "invalid_argument", "text"},
		{"blank text", shared.ToolSubmitMemory, map[string]any{"text": "   "}, "invalid_argument", "text"},
		{"missing text", shared.ToolSubmitMemory, map[string]any{}, "invalid_argument", "text"},
		{"text too long", shared.ToolSubmitMemory, map[string]any{"text": strings.Repeat("é", 32769)}, "invalid_argument", "text"},
		{"too many tags", shared.ToolSubmitMemory, map[string]any{"text": "x", "tags": many(33, func(i int) any { return fmt.Sprint("t", i) })}, "invalid_argument", "tags"},
		{"tag too long", shared.ToolSubmitMemory, map[string]any{"text": "x", "tags": []string{strings.Repeat("t", 65)}}, "invalid_argument", "tags"},
		{"empty tag", shared.ToolSubmitMemory, map[string]any{"text": "x", "tags": []string{" "}}, "invalid_argument", "tags[0]"},
		{"metadata too large", shared.ToolSubmitMemory, map[string]any{"text": "x", "metadata": bigMeta}, "too_large", "metadata"},
		{"metadata not an object", shared.ToolSubmitMemory, map[string]any{"text": "x", "metadata": []int{1}}, "invalid_argument", "metadata"},
		{"unknown permission", shared.ToolSubmitMemory, map[string]any{"text": "x", "permission": "friends"}, "invalid_argument", "permission"},
		{"bad expiration", shared.ToolSubmitMemory, map[string]any{"text": "x", "expiration_date": "tomorrow"}, "invalid_argument", "expiration_date"},
		{"unknown argument", shared.ToolSubmitMemory, map[string]any{"text": "x", "colour": "red"}, "invalid_argument", "colour"},
		{"share with unknown user", shared.ToolSubmitMemory, map[string]any{"text": "x", "shared_with": []string{"nobody@example.com"}}, "invalid_argument", "shared_with[0]"},
		{"share a private memory", shared.ToolSubmitMemory, map[string]any{"text": "x", "permission": "private", "shared_with": []string{"bob@example.com"}}, "invalid_argument", "shared_with"},
		{"batch with one bad element", shared.ToolSubmitMemories, map[string]any{"memories": []any{map[string]any{"text": "ok"}, map[string]any{"text": "ok", "tags": []string{""}}}}, "invalid_argument", "memories[].tags[]"},
		{"batch with unknown share", shared.ToolSubmitMemories, map[string]any{"memories": []any{map[string]any{"text": "ok"}, map[string]any{"text": "ok", "shared_with": []string{uuid.NewString()}}}}, "invalid_argument", "shared_with[0]"},
		{"empty batch", shared.ToolSubmitMemories, map[string]any{"memories": []any{}}, "invalid_argument", "memories"},
		{"batch too large", shared.ToolSubmitMemories, map[string]any{"memories": many(1001, func(int) any { return map[string]any{"text": "x"} })}, "invalid_argument", "memories"},
		{"update bad id", shared.ToolUpdateMemory, map[string]any{"memory_id": "42", "text": "x"}, "invalid_argument", "memory_id"},
		{"update nothing", shared.ToolUpdateMemory, map[string]any{"memory_id": keep.ID}, "invalid_argument", "arguments"},
		{"update empty text", shared.ToolUpdateMemory, map[string]any{"memory_id": keep.ID, "text": ""}, "invalid_argument", "text"},
		{"update too many tags", shared.ToolUpdateMemory, map[string]any{"memory_id": keep.ID, "tags": many(33, func(i int) any { return fmt.Sprint(i) })}, "invalid_argument", "tags"},
		{"update metadata too large", shared.ToolUpdateMemory, map[string]any{"memory_id": keep.ID, "metadata": bigMeta}, "too_large", "metadata"},
		{"delete bad id", shared.ToolDeleteMemory, map[string]any{"memory_id": "nope"}, "invalid_argument", "memory_id"},
		{"delete_memories one unknown", shared.ToolDeleteMemories, map[string]any{"memory_ids": []string{keep.ID, uuid.NewString()}}, "not_found", "memory_ids"},
		{"delete_memories bad id", shared.ToolDeleteMemories, map[string]any{"memory_ids": []string{keep.ID, "x"}}, "invalid_argument", "memory_ids[1]"},
		{"delete_memories empty", shared.ToolDeleteMemories, map[string]any{"memory_ids": []string{}}, "invalid_argument", "memory_ids"},
		{"permission missing", shared.ToolModifyPermissions, map[string]any{"memory_id": keep.ID}, "invalid_argument", "permission"},
		{"permission unknown", shared.ToolModifyPermissions, map[string]any{"memory_id": keep.ID, "permission": "everyone"}, "invalid_argument", "permission"},
		{"public with shares", shared.ToolModifyPermissions, map[string]any{"memory_id": keep.ID, "permission": "public", "shared_with": []string{"bob@example.com"}}, "invalid_argument", "shared_with"},
		{"get limit too big", shared.ToolGetMemories, map[string]any{"limit": 501}, "invalid_argument", "limit"},
		{"get limit zero", shared.ToolGetMemories, map[string]any{"limit": -1}, "invalid_argument", "limit"},
		{"get bad cursor", shared.ToolGetMemories, map[string]any{"cursor": "garbage"}, "invalid_argument", "cursor"},
		{"get bad sort", shared.ToolGetMemories, map[string]any{"sort": "text"}, "invalid_argument", "sort"},
		{"get bad order", shared.ToolGetMemories, map[string]any{"order": "up"}, "invalid_argument", "order"},
		{"get bad user", shared.ToolGetMemories, map[string]any{"user_id": "bob"}, "invalid_argument", "user_id"},
		{"get bad date", shared.ToolGetMemories, map[string]any{"created_after": "yesterday"}, "invalid_argument", "created_after"},
		{"get dates reversed", shared.ToolGetMemories, map[string]any{"created_after": "2030-01-01T00:00:00Z", "created_before": "2020-01-01T00:00:00Z"}, "invalid_argument", "created_after"},
		{"retrieve limit", shared.ToolRetrieveMemories, map[string]any{"limit": 1000}, "invalid_argument", "limit"},
		{"query empty", shared.ToolQueryMemory, map[string]any{"query": ""}, "invalid_argument", "query"},
		{"query limit", shared.ToolQueryMemory, map[string]any{"query": "x", "limit": 101}, "invalid_argument", "limit"},
		{"query bad permission", shared.ToolQueryMemory, map[string]any{"query": "x", "permission": "secret"}, "invalid_argument", "permission"},
		{"query bad mode", shared.ToolQueryMemory, map[string]any{"query": "x", "mode": "fuzzy"}, "invalid_argument", "mode"},
		{"query_user bad id", shared.ToolQueryUser, map[string]any{"user_id": "alice", "prompt": "x"}, "invalid_argument", "user_id"},
		{"query_user unknown", shared.ToolQueryUser, map[string]any{"user_id": uuid.NewString(), "prompt": "x"}, "not_found", "user_id"},
		{"query_user empty prompt", shared.ToolQueryUser, map[string]any{"user_id": e.bob.ID.String(), "prompt": ""}, "invalid_argument", "prompt"},
		{"personas bad cursor", shared.ToolListPersonas, map[string]any{"cursor": "!!"}, "invalid_argument", "cursor"},
		{"wrong type", shared.ToolGetMemories, map[string]any{"limit": "ten"}, "invalid_argument", "limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := callErr(t, cs, c.tool, c.args)
			if !strings.HasPrefix(got, c.code+": ") {
				t.Errorf("error %q, want code %s", got, c.code)
			}
			if !strings.Contains(got, c.arg) {
				t.Errorf("error %q does not name %s", got, c.arg)
			}
		})
	}
	if n := e.count(e.alice.ID); n != before {
		t.Fatalf("store changed: %d memories, want %d", n, before)
	}
	got, err := e.mem.Get(context.Background(), e.alice.ID, uuid.MustParse(keep.ID), true)
	if err != nil || got.Text != "keep me" || len(got.Tags) != 1 || got.Permission != "private" {
		t.Fatalf("memory changed: %+v %v", got, err)
	}
}

// TestSameErrorsOnAPI checks that Registry.Call (the /api transport) gives
// the same error text as MCP for the same bad input.
func TestSameErrorsOnAPI(t *testing.T) {
	e := newEnv(t)
	id := identity(e.alice)
	cs := e.client(id)
	for _, args := range []string{`{"text":""}`, `{"text":"x","tags":"a"}`, `{"text":"x","bogus":1}`, `{"text":"x","permission":"nope"}`} {
		var a map[string]any
		json.Unmarshal([]byte(args), &a)
		mcpText := callErr(t, cs, shared.ToolSubmitMemory, a)
		_, err := e.reg.Call(auth.WithIdentity(context.Background(), id), shared.ToolSubmitMemory, json.RawMessage(args))
		if err == nil {
			t.Fatalf("%s: no error on /api", args)
		}
		apiText := apiErrorText(err)
		if apiText != mcpText {
			t.Errorf("%s:\n mcp %q\n api %q", args, mcpText, apiText)
		}
	}
}

func apiErrorText(err error) string {
	_, e := classify(err)
	return e.Code + ": " + e.Message
}
