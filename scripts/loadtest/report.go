package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"picard.dev/shared"
)

// Report is what a run measured and verified.
type Report struct {
	Clients    int                `json:"clients"`
	Duration   time.Duration      `json:"duration_ns"`
	Server     string             `json:"server"`
	Operations int                `json:"operations"`
	Throughput float64            `json:"throughput_per_s"`
	Latency    Latency            `json:"latency"`
	ByTool     map[string]Latency `json:"by_tool"`
	// Errors counts failed calls by "tool: kind"; kind Deliberate is the
	// rate limiter's 429, the only kind that is not a failure.
	Errors       map[string]int `json:"errors"`
	Unexpected   int            `json:"unexpected_errors"`
	ServerRSS    *RSS           `json:"server_rss,omitempty"`
	Verification *Verification  `json:"verification,omitempty"`
}

// Latency summarises successful calls.
type Latency struct {
	N   int           `json:"n"`
	P50 time.Duration `json:"p50_ns"`
	P95 time.Duration `json:"p95_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
}

// RSS is the peak resident memory of the server process.
type RSS struct {
	PID       int   `json:"pid"`
	PeakBytes int64 `json:"peak_bytes"`
	Samples   int   `json:"samples"`
	// IncludesClients is set when the server ran in this process.
	IncludesClients bool `json:"includes_clients"`
	// PeakGoBytes is the Go runtime's mapped memory (in-process only).
	PeakGoBytes int64  `json:"peak_go_bytes,omitempty"`
	Error       string `json:"error,omitempty"`
}

// Verification is the check after the run: every acknowledged write
// readable with its last acknowledged text, every acknowledged delete gone.
type Verification struct {
	Writes   int      `json:"acknowledged_writes_checked"`
	Deletes  int      `json:"acknowledged_deletes_checked"`
	Unsure   int      `json:"unacknowledged_changes_skipped"`
	Problems []string `json:"problems,omitempty"`
	// ProblemCount may exceed len(Problems), which keeps the first few.
	ProblemCount int `json:"problem_count"`
}

// Target thresholds of the performance goals.
const (
	targetTailRatio = 10
	targetRSSBytes  = 256 << 20
)

func newReport(o Options, srv *server, elapsed time.Duration, clients []*client) *Report {
	r := &Report{Clients: o.Clients, Duration: elapsed, Server: srv.kind, ByTool: map[string]Latency{}, Errors: map[string]int{}}
	var all []time.Duration
	byTool := map[string][]time.Duration{}
	for _, c := range clients {
		for _, s := range c.samples {
			all = append(all, s.d)
			byTool[s.op] = append(byTool[s.op], s.d)
		}
		for k, n := range c.errors {
			r.Errors[k] += n
			if !strings.HasSuffix(k, Deliberate) {
				r.Unexpected += n
			}
			r.Operations += n
		}
	}
	r.Operations += len(all)
	r.Throughput = float64(r.Operations) / elapsed.Seconds()
	r.Latency = summarise(all)
	for op, ds := range byTool {
		r.ByTool[op] = summarise(ds)
	}
	return r
}

func summarise(ds []time.Duration) Latency {
	if len(ds) == 0 {
		return Latency{}
	}
	slices.Sort(ds)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(ds))+0.5) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	return Latency{N: len(ds), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: ds[len(ds)-1]}
}

// Correct reports whether no call failed unexpectedly and the verification
// passed.
func (r *Report) Correct() bool {
	return r.Unexpected == 0 && r.Operations > 0 && r.Verification != nil && r.Verification.ProblemCount == 0
}

// TargetsMet reports the performance goals: p99 under 10× p50 and, when
// measured, server RSS under 256 MiB.
func (r *Report) TargetsMet() bool {
	ok := r.Latency.P50 > 0 && r.Latency.P99 < targetTailRatio*r.Latency.P50
	if r.ServerRSS != nil && r.ServerRSS.PeakBytes > 0 {
		ok = ok && r.ServerRSS.PeakBytes < targetRSSBytes
	}
	return ok
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "clients %d, %s, server %s\n", r.Clients, r.Duration.Round(time.Millisecond), r.Server)
	fmt.Fprintf(w, "operations %d, throughput %.1f/s\n", r.Operations, r.Throughput)
	line := func(name string, l Latency) {
		fmt.Fprintf(w, "  %-14s n=%-7d p50 %7s ms  p95 %7s ms  p99 %7s ms  max %7s ms\n", name, l.N, ms(l.P50), ms(l.P95), ms(l.P99), ms(l.Max))
	}
	fmt.Fprintln(w, "latency of successful calls:")
	line("all", r.Latency)
	for _, op := range slices.Sorted(maps.Keys(r.ByTool)) {
		line(op, r.ByTool[op])
	}
	if r.Latency.P50 > 0 {
		fmt.Fprintf(w, "  p99/p50 %.1f\n", float64(r.Latency.P99)/float64(r.Latency.P50))
	}
	if len(r.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
	} else {
		fmt.Fprintf(w, "errors (%d unexpected):\n", r.Unexpected)
		for _, k := range slices.Sorted(maps.Keys(r.Errors)) {
			fmt.Fprintf(w, "  %6d  %s\n", r.Errors[k], k)
		}
	}
	switch s := r.ServerRSS; {
	case s == nil:
		fmt.Fprintln(w, "server RSS: not measured (give -pid with -url)")
	case s.Error != "":
		fmt.Fprintf(w, "server RSS: %s\n", s.Error)
	case s.IncludesClients:
		fmt.Fprintf(w, "server RSS: peak %s of pid %d, which also runs the clients (Go runtime peak %s)\n", mib(s.PeakBytes), s.PID, mib(s.PeakGoBytes))
	default:
		fmt.Fprintf(w, "server RSS: peak %s (VmRSS of pid %d, %d samples)\n", mib(s.PeakBytes), s.PID, s.Samples)
	}
	if v := r.Verification; v != nil {
		status := "ok"
		if v.ProblemCount > 0 {
			status = fmt.Sprintf("%d PROBLEMS", v.ProblemCount)
		}
		fmt.Fprintf(w, "verification: %d acknowledged writes readable, %d acknowledged deletes gone, %d unacknowledged changes skipped: %s\n",
			v.Writes, v.Deletes, v.Unsure, status)
		for _, p := range v.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	tail := r.Latency.P50 > 0 && r.Latency.P99 < targetTailRatio*r.Latency.P50
	fmt.Fprintf(w, "targets: no unexpected errors %s; p99 < %d× p50 %s", met(r.Unexpected == 0), targetTailRatio, met(tail))
	if r.ServerRSS != nil && r.ServerRSS.PeakBytes > 0 {
		fmt.Fprintf(w, "; RSS < 256 MiB %s", met(r.ServerRSS.PeakBytes < targetRSSBytes))
	}
	fmt.Fprintln(w)
}

// verify lists the memories of every owner that acknowledged writes came
// from and compares them with what the clients were told.
func verify(ctx context.Context, clients []*client) *Verification {
	v := &Verification{}
	problem := func(format string, args ...any) {
		v.ProblemCount++
		if len(v.Problems) < 20 {
			v.Problems = append(v.Problems, fmt.Sprintf(format, args...))
		}
	}
	// Each client lists its account's memories (clients sharing an
	// account list the same ones; listing per client keeps no guess about
	// which tokens share an account when the tokens come from a file).
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	listed := make([]map[string]string, len(clients))
	for i, c := range clients {
		if len(c.live)+len(c.gone)+len(c.unsure) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			got, err := listAll(ctx, c.cs)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				problem("client %d: listing its memories: %v", c.n, err)
				return
			}
			listed[i] = got
		}()
	}
	wg.Wait()
	for i, c := range clients {
		got := listed[i]
		if got == nil {
			continue
		}
		for _, id := range slices.Sorted(maps.Keys(c.live)) {
			if c.unsure[id] {
				v.Unsure++
				continue
			}
			v.Writes++
			text, ok := got[id]
			switch {
			case !ok:
				problem("client %d: acknowledged memory %s is missing", c.n, id)
			case text != c.live[id]:
				problem("client %d: memory %s reads %q, want the acknowledged %q", c.n, id, text, c.live[id])
			}
		}
		for id := range c.gone {
			v.Deletes++
			if _, ok := got[id]; ok {
				problem("client %d: memory %s was deleted (acknowledged) but is still listed", c.n, id)
			}
		}
		for id := range c.unsure {
			if _, live := c.live[id]; !live {
				v.Unsure++
			}
		}
	}
	return v
}

// listAll pages through the caller's own memories with get_memories. The
// load may have spent the token's rate-limit allowance, so a page refused
// with 429 is asked again after a pause (the limiter refills at its rate).
func listAll(ctx context.Context, cs *sdk.ClientSession) (map[string]string, error) {
	out := map[string]string{}
	cursor := ""
	limited := 0
	for page := 0; page < 10_000; page++ {
		var status atomic.Int32
		cctx, cancel := context.WithTimeout(context.WithValue(ctx, statusKey{}, &status), time.Minute)
		res, err := cs.CallTool(cctx, &sdk.CallToolParams{Name: shared.ToolGetMemories,
			Arguments: shared.GetMemoriesArgs{Limit: 500, Cursor: cursor}})
		cancel()
		if status.Load() == http.StatusTooManyRequests && limited < 30 {
			limited++
			page--
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if res.IsError {
			return nil, fmt.Errorf("get_memories: %s", toolCode(res))
		}
		var p shared.MemoryPage
		if err := remarshal(res.StructuredContent, &p); err != nil {
			return nil, err
		}
		for _, m := range p.Memories {
			out[m.ID] = m.Text
		}
		if p.NextCursor == "" {
			return out, nil
		}
		cursor = p.NextCursor
	}
	return nil, fmt.Errorf("more than 10000 pages of memories")
}
