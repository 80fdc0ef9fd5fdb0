package mcp_test

import (
	"context"
	"encoding/json"
	"testing"

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/shared"
)

// FuzzToolArguments feeds arbitrary argument JSON to the tools' decoding
// and validation (through Registry.Call, the /api path): it must never
// panic, and a refusal must be a classified client error, never internal.
func FuzzToolArguments(f *testing.F) {
	for _, s := range []string{
		`{"text":"hello","tags":["a"],"metadata":{"k":1},"expiration_date":"2030-01-01T00:00:00Z"}`,
		`{"memory_id":"123e4567-e89b-42d3-a456-426614174000","expiration_date":null}`,
		`{"memories":[{"text":"x"},{"text":"y","shared_with":["a@b.c"]}]}`,
		`{"limit":5,"cursor":"abc","sort":"updated_at","order":"asc","created_after":"2020-01-01T00:00:00Z"}`,
		`[]`, `null`, `"x"`, `{"text":1}`, `{"tags":[null]}`, `{"metadata":{"":{}}}`,
	} {
		f.Add(shared.ToolSubmitMemory, s)
		f.Add(shared.ToolGetMemories, s)
		f.Add(shared.ToolUpdateMemory, s)
	}
	e := newEnv(f)
	ctx := auth.WithIdentity(context.Background(), identity(e.alice))
	f.Fuzz(func(t *testing.T, tool, args string) {
		if !json.Valid([]byte(args)) {
			return
		}
		_, err := e.reg.Call(ctx, tool, json.RawMessage(args))
		if err != nil {
			if _, ae := classify(err); ae.Code == shared.CodeInternal {
				t.Fatalf("%s %s: internal error %v", tool, args, err)
			}
		}
	})
}
