package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"picard.dev/mcpserver/internal/memory"
	"picard.dev/shared"
	"picard.dev/shared/pgtest"
)

// failFastBound is the longest a request may take to fail while the
// database is down. Not a performance assertion: without the
// classification a request hangs in connection attempts or the pool until
// its 60 s deadline.
const failFastBound = 5 * time.Second

// loadResult collects what a load of writes saw.
type loadResult struct {
	mu         sync.Mutex
	acked      map[uuid.UUID]string // acknowledged writes: id → text
	lastAck    time.Time
	unexpected []string // answers that are neither success nor 503 unavailable

	unavailable atomic.Int64
	slowestFail atomic.Int64 // nanoseconds
}

// writeLoad submits memories from workers until stop is closed (or a bound
// on the count is reached), recording every outcome.
func writeLoad(base, token string, workers int, stop <-chan struct{}) (*loadResult, *sync.WaitGroup) {
	res := &loadResult{acked: map[uuid.UUID]string{}}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range 20000 {
				select {
				case <-stop:
					return
				default:
				}
				text := fmt.Sprintf("worker %d, write %d: the tide tables for harbour %d", w, i, w*100000+i)
				begin := time.Now()
				r := callTool(base, token, shared.ToolSubmitMemory, map[string]any{"text": text})
				took := time.Since(begin)
				if r.err == nil && r.status == http.StatusOK {
					var out struct {
						Result struct {
							ID uuid.UUID `json:"id"`
						} `json:"result"`
					}
					if err := json.Unmarshal(r.body, &out); err != nil || out.Result.ID == uuid.Nil {
						res.fail(fmt.Sprintf("200 without a memory id: %.200s", r.body))
						continue
					}
					res.mu.Lock()
					res.acked[out.Result.ID] = text
					res.lastAck = time.Now()
					res.mu.Unlock()
					continue
				}
				if r.err == nil && r.status == http.StatusServiceUnavailable && r.apiError().Code == shared.CodeUnavailable {
					res.unavailable.Add(1)
				} else {
					res.fail(fmt.Sprintf("status %d, error %v: %.200s", r.status, r.err, r.body))
				}
				for {
					old := res.slowestFail.Load()
					if int64(took) <= old || res.slowestFail.CompareAndSwap(old, int64(took)) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond) // a client backing off
			}
		})
	}
	return res, &wg
}

func (l *loadResult) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unexpected = append(l.unexpected, msg)
}

func (l *loadResult) ackedSince(t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastAck.After(t)
}

// TestDatabaseOutage stops Postgres in the middle of a load of writes and
// starts it again: while it is down, /api/tools and /mcp fail fast with
// 503 unavailable and /readyz says not ready; afterwards the server serves
// again by itself, and every write it acknowledged — before, during or
// after the outage — is in the database.
func TestDatabaseOutage(t *testing.T) {
	pg := pgtest.StartCluster(t)
	a := start(t, t.TempDir(), map[string]string{"MCP_DATABASE_URL": pg.DSN(), "MCP_RATE_LIMIT": "0"})
	owner, token := a.account(t, "load@example.com", false)
	base := a.URL()
	// One search first, so that nothing checked once per process is left
	// for the outage.
	if r := callTool(base, token, shared.ToolQueryMemory, map[string]any{"query": "warm up"}); r.status != http.StatusOK {
		t.Fatalf("query_memory: %d %s", r.status, r.body)
	}

	stop := make(chan struct{})
	load, wg := writeLoad(base, token, 4, stop)
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()
	eventually(t, 10*time.Second, "the load has written something", func() bool { return load.ackedSince(time.Time{}) })
	time.Sleep(500 * time.Millisecond)

	pg.Stop(t)
	stopped := time.Now()
	eventually(t, failFastBound, "/readyz reports not ready", func() bool {
		r := get(base + "/readyz")
		return r.status == http.StatusServiceUnavailable && r.apiError().Code == shared.CodeUnavailable
	})
	eventually(t, failFastBound, "writes fail with 503 unavailable", func() bool { return load.unavailable.Load() > 0 })
	for _, tool := range []string{shared.ToolSubmitMemory, shared.ToolGetMemories} {
		args := map[string]any{}
		if tool == shared.ToolSubmitMemory {
			args["text"] = "over MCP while the database is down"
		}
		begin := time.Now()
		r := callMCP(base, token, tool, args)
		took := time.Since(begin)
		apiUnavailable := r.status == http.StatusServiceUnavailable && r.apiError().Code == shared.CodeUnavailable
		toolUnavailable := r.status == http.StatusOK && strings.HasPrefix(mcpToolError(r.body), shared.CodeUnavailable+":")
		if r.err != nil || !(apiUnavailable || toolUnavailable) {
			t.Errorf("%s over /mcp while the database is down: status %d, %v: %.300s", tool, r.status, r.err, r.body)
		}
		if took > failFastBound {
			t.Errorf("%s over /mcp took %s to fail", tool, took)
		}
	}
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{shared.ToolQueryMemory, map[string]any{"query": "tide tables"}},
		{shared.ToolGetMemories, map[string]any{}},
		{shared.ToolRetrieveMemories, map[string]any{}},
	} {
		begin := time.Now()
		r := callTool(base, token, c.tool, c.args)
		if r.err != nil || r.status != http.StatusServiceUnavailable || r.apiError().Code != shared.CodeUnavailable {
			t.Errorf("%s over /api/tools while the database is down: %d %v: %.300s", c.tool, r.status, r.err, r.body)
		}
		if took := time.Since(begin); took > failFastBound {
			t.Errorf("%s over /api/tools took %s to fail", c.tool, took)
		}
	}
	time.Sleep(time.Second) // the load keeps hitting the outage

	pg.Start(t)
	restarted := time.Now()
	eventually(t, 15*time.Second, "/readyz reports ready again", func() bool { return get(base+"/readyz").status == http.StatusOK })
	eventually(t, 15*time.Second, "writes are acknowledged again", func() bool { return load.ackedSince(restarted) })
	t.Logf("database down for %s; serving again %s after it returned", restarted.Sub(stopped).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	time.Sleep(500 * time.Millisecond)
	stopLoad()

	for i, u := range load.unexpected {
		if i == 5 {
			t.Errorf("… and %d more unexpected answers", len(load.unexpected)-i)
			break
		}
		t.Errorf("unexpected answer to a write: %s", u)
	}
	if d := time.Duration(load.slowestFail.Load()); d > failFastBound {
		t.Errorf("the slowest failed write took %s; failures must be fast", d)
	}
	t.Logf("%d writes acknowledged, %d refused with 503 unavailable", len(load.acked), load.unavailable.Load())

	stored := map[uuid.UUID]string{}
	q := memory.ListQuery{Viewer: owner, Limit: memory.MaxListLimit}
	for range 1000 {
		page, err := a.core.memories.List(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Memories {
			stored[m.ID] = m.Text
		}
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	lost := 0
	for id, text := range load.acked {
		if stored[id] != text {
			lost++
			if lost <= 5 {
				t.Errorf("acknowledged memory %s (%q) is missing or changed: %q", id, text, stored[id])
			}
		}
	}
	if lost > 0 {
		t.Errorf("%d of %d acknowledged writes are lost", lost, len(load.acked))
	}
}
