package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

// BenchmarkReadToolVsBareSDK measures a read tool (get_memories returning
// one memory, and a page of 20) through our /mcp — Echo, Origin check, bearer authentication,
// rate limiter, deadline, scope check, validation, SQLite, metrics and
// activity — against a no-op tool on a bare go-sdk stateless server over
// the same kind of HTTP connection, in the same run. It reports
// "ratio": bare time per call / our time per call (1 = no overhead; the
// goal is ≥ 0.5). The one-memory case measures the per-call overhead of
// the stack; the page of 20 adds the work of decrypting and encoding 20
// memories (and of the client decoding them), which a no-op tool does not
// have.
func BenchmarkReadToolVsBareSDK(b *testing.B) {
	ctx := context.Background()

	bare := sdk.NewServer(&sdk.Implementation{Name: "bare", Version: "1"}, nil)
	type empty struct{}
	sdk.AddTool(bare, &sdk.Tool{Name: "noop", Description: "does nothing"}, func(context.Context, *sdk.CallToolRequest, empty) (*sdk.CallToolResult, empty, error) {
		return nil, empty{}, nil
	})
	bareSrv := httptest.NewServer(sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return bare }, &sdk.StreamableHTTPOptions{Stateless: true}))
	defer bareSrv.Close()
	bareCS, err := sdk.NewClient(&sdk.Implementation{Name: "b", Version: "1"}, nil).Connect(ctx, &sdk.StreamableClientTransport{Endpoint: bareSrv.URL}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer bareCS.Close()

	s := newServer(b)
	ours := s.mcpClient(b, "alice")
	for i := 0; i < 20; i++ {
		if _, err := ours.CallTool(ctx, &sdk.CallToolParams{Name: shared.ToolSubmitMemory, Arguments: map[string]any{"text": "benchmark memory"}}); err != nil {
			b.Fatal(err)
		}
	}
	call := func(cs *sdk.ClientSession, name string, args any) time.Duration {
		start := time.Now()
		res, err := cs.CallTool(ctx, &sdk.CallToolParams{Name: name, Arguments: args})
		if err != nil || res.IsError {
			b.Fatalf("%s: %v %v", name, err, res)
		}
		return time.Since(start)
	}
	for _, limit := range []int{1, 20} {
		b.Run(fmt.Sprintf("memories=%d", limit), func(b *testing.B) {
			args := map[string]any{"limit": limit}
			// The two are interleaved call by call, so that other load on a
			// shared machine slows both alike instead of whichever ran second.
			var bareTime, ourTime time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				bareTime += call(bareCS, "noop", map[string]any{})
				ourTime += call(ours, shared.ToolGetMemories, args)
			}
			b.StopTimer()
			b.ReportMetric(float64(bareTime.Nanoseconds())/float64(b.N), "bare-ns/call")
			b.ReportMetric(float64(ourTime.Nanoseconds())/float64(b.N), "ours-ns/call")
			b.ReportMetric(float64(bareTime)/float64(ourTime), "ratio")
		})
	}
}
