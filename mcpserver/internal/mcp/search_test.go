package mcp_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/shared"
)

// TestQueryMemoryModes checks the mode argument of query_memory: its
// schema, and what each mode finds and how it scores.
func TestQueryMemoryModes(t *testing.T) {
	e := newEnv(t)
	alice := e.client(identity(e.alice))

	res, err := alice.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range res.Tools {
		if tl.Name != shared.ToolQueryMemory {
			continue
		}
		b, _ := json.Marshal(tl.InputSchema)
		var s struct {
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if got := s.Properties["mode"].Enum; !slices.Equal(got, []string{"hybrid", "vector", "lexical"}) {
			t.Errorf("mode enum %v", got)
		}
	}

	submit := func(text string) string {
		return call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": text}).ID
	}
	violin := submit("My daughter started violin lessons in September")
	submit("We repainted the kitchen walls a pale yellow")
	submit("The car needs new winter tyres before December")
	// Stored without a vector, as when the embedder failed: only its words
	// can find it.
	pendingID := e.insertWithoutVector(e.alice.ID, "The violin teacher is called Mrs Okafor")

	query := func(mode, q string) []shared.Scored {
		args := map[string]any{"query": q, "limit": 10}
		if mode != "" {
			args["mode"] = mode
		}
		r := call[shared.QueryMemoryResult](t, alice, shared.ToolQueryMemory, args)
		for i := 1; i < len(r.Results); i++ {
			if r.Results[i].Score > r.Results[i-1].Score {
				t.Fatalf("%s %q: scores not descending: %+v", mode, q, r.Results)
			}
		}
		return r.Results
	}
	idsOf := func(rs []shared.Scored) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Memory.ID)
		}
		return out
	}

	// lexical: only memories sharing a word, pending ones included, BM25 > 0.
	lex := query("lexical", "violins")
	if got := idsOf(lex); !slices.Equal(sorted(got...), sorted(violin, pendingID)) {
		t.Errorf("lexical found %v", got)
	}
	// vector: every memory with a vector, the violin one first, cosine ≤ 1;
	// the pending one is not found.
	vec := query("vector", "violin lessons")
	if len(vec) != 3 || vec[0].Memory.ID != violin || vec[0].Score > 1 || slices.Contains(idsOf(vec), pendingID) {
		t.Errorf("vector found %+v", vec)
	}
	// hybrid (the default): both, fused; scores in (0, 1].
	for _, mode := range []string{"", "hybrid"} {
		hyb := query(mode, "violin")
		if len(hyb) < 2 || hyb[0].Memory.ID != violin || !slices.Contains(idsOf(hyb), pendingID) {
			t.Errorf("hybrid (mode %q) found %+v", mode, hyb)
		}
		for _, r := range hyb {
			if r.Score <= 0 || r.Score > 1 {
				t.Errorf("hybrid score %v outside (0, 1]", r.Score)
			}
		}
	}
	if msg := callErr(t, alice, shared.ToolQueryMemory, map[string]any{"query": "x", "mode": "semantic"}); !strings.Contains(msg, "mode") {
		t.Errorf("unknown mode: %q", msg)
	}
}

// insertWithoutVector stores a memory of owner with no vector, as the store
// keeps one whose embedding is pending, and returns its id.
func (e *env) insertWithoutVector(owner uuid.UUID, text string) string {
	e.t.Helper()
	now := e.mem.Now()
	m := &memory.Memory{ID: uuid.New(), OwnerID: owner, Text: text, Permission: memory.Private,
		SharedWith: []uuid.UUID{}, Tags: []string{}, Metadata: map[string]any{}, CreatedAt: now, UpdatedAt: now, Version: 1}
	if err := e.db.Memories().Insert(context.Background(), []*memory.Memory{m}, []memory.Vector{{}}); err != nil {
		e.t.Fatal(err)
	}
	return m.ID.String()
}
