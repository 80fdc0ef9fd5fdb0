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

	"picard.dev/mcpserver/internal/auth"
	"picard.dev/mcpserver/internal/mcp"
	"picard.dev/shared"
)

func TestResources(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	alice := e.client(identity(e.alice))
	bob := e.client(identity(e.bob))
	private := call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": "private resource"})
	public := call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": "public resource", "permission": "public"})
	expired := call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": "old", "permission": "public", "expiration_date": "2000-01-01T00:00:00Z"})

	tpls, err := alice.ListResourceTemplates(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, tp := range tpls.ResourceTemplates {
		uris = append(uris, tp.URITemplate)
	}
	if !slices.Equal(sorted(uris...), sorted(mcp.MemoryTemplate, mcp.UserMemoriesTemplate)) {
		t.Fatalf("templates %v", uris)
	}

	// The caller's recent memories are listed, others' are not.
	list, err := alice.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, r := range list.Resources {
		listed = append(listed, r.URI)
	}
	if !slices.Equal(sorted(listed...), sorted("memories://"+private.ID, "memories://"+public.ID)) {
		t.Fatalf("alice's resources %v", listed)
	}
	if bl, _ := bob.ListResources(ctx, nil); len(bl.Resources) != 0 {
		t.Fatalf("bob lists %v", bl.Resources)
	}

	read := func(cs *sdk.ClientSession, uri string, out any) error {
		res, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: uri})
		if err != nil {
			return err
		}
		return json.Unmarshal([]byte(res.Contents[0].Text), out)
	}
	var m shared.Memory
	if err := read(alice, "memories://"+private.ID, &m); err != nil || m.Text != "private resource" {
		t.Fatalf("alice reads her private memory: %+v %v", m, err)
	}
	if err := read(bob, "memories://"+public.ID, &m); err != nil || m.ID != public.ID {
		t.Fatalf("bob reads a public memory: %v", err)
	}
	// Invisible, expired, unknown and malformed are all "not found".
	for _, uri := range []string{"memories://" + private.ID, "memories://" + expired.ID, "memories://" + uuid.NewString(), "memories://nope", "users://" + uuid.NewString() + "/memories"} {
		err := read(bob, uri, &m)
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "not found") {
			t.Errorf("bob reads %s: %v", uri, err)
		}
	}
	var page shared.MemoryPage
	if err := read(bob, "users://"+e.alice.ID.String()+"/memories", &page); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(page.Memories), []string{public.ID}) {
		t.Fatalf("bob's view of alice: %v", ids(page.Memories))
	}

	// Completion of template arguments.
	comp, err := alice.Complete(ctx, &sdk.CompleteParams{
		Ref:      &sdk.CompleteReference{Type: "ref/resource", URI: mcp.MemoryTemplate},
		Argument: sdk.CompleteParamsArgument{Name: "memory_id", Value: private.ID[:4]},
	})
	if err != nil || !slices.Contains(comp.Completion.Values, private.ID) {
		t.Fatalf("memory_id completion %+v %v", comp, err)
	}
	comp, err = bob.Complete(ctx, &sdk.CompleteParams{
		Ref:      &sdk.CompleteReference{Type: "ref/resource", URI: mcp.UserMemoriesTemplate},
		Argument: sdk.CompleteParamsArgument{Name: "user_id", Value: ""},
	})
	if err != nil || !slices.Contains(comp.Completion.Values, e.alice.ID.String()) || !slices.Contains(comp.Completion.Values, e.bob.ID.String()) {
		t.Fatalf("user_id completion %+v %v", comp, err)
	}
	comp, _ = bob.Complete(ctx, &sdk.CompleteParams{
		Ref:      &sdk.CompleteReference{Type: "ref/resource", URI: mcp.MemoryTemplate},
		Argument: sdk.CompleteParamsArgument{Name: "memory_id", Value: ""},
	})
	if slices.Contains(comp.Completion.Values, private.ID) {
		t.Fatal("completion reveals another user's memory id")
	}
}

// TestSubscriptions runs a stateful server: a subscriber to a memory is
// notified when it changes, and cannot subscribe to one it may not see.
func TestSubscriptions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	srv := e.reg.NewServer(mcp.ServerOptions{Stateful: true})
	connect := func(id *auth.Identity, onUpdate func(string)) *sdk.ClientSession {
		st, ct := sdk.NewInMemoryTransports()
		ss, err := srv.Connect(auth.WithIdentity(ctx, id), st, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ss.Close() })
		cl := sdk.NewClient(&sdk.Implementation{Name: "sub", Version: "1"}, &sdk.ClientOptions{
			ResourceUpdatedHandler: func(_ context.Context, r *sdk.ResourceUpdatedNotificationRequest) { onUpdate(r.Params.URI) },
		})
		cs, err := cl.Connect(ctx, ct, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}
	updates := make(chan string, 10)
	alice := connect(identity(e.alice), func(string) {})
	bob := connect(identity(e.bob), func(u string) { updates <- u })

	pub := call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": "watched", "permission": "public"})
	priv := call[shared.Memory](t, alice, shared.ToolSubmitMemory, map[string]any{"text": "hidden"})
	// Under the 2026 protocol Subscribe returns before the server decides;
	// a refused subscription shows as the absence of notifications.
	for _, id := range []string{pub.ID, priv.ID} {
		if err := bob.Subscribe(ctx, &sdk.SubscribeParams{URI: "memories://" + id}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	call[shared.Memory](t, alice, shared.ToolUpdateMemory, map[string]any{"memory_id": priv.ID, "text": "still hidden"})
	select {
	case u := <-updates:
		t.Fatalf("notified of %s, which bob may not see", u)
	case <-time.After(300 * time.Millisecond):
	}
	call[shared.Memory](t, alice, shared.ToolUpdateMemory, map[string]any{"memory_id": pub.ID, "text": "changed"})
	select {
	case u := <-updates:
		if u != "memories://"+pub.ID {
			t.Fatalf("update for %s", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no resource updated notification")
	}
}
