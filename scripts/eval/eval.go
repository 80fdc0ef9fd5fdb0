package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"picard.dev/scripts/eval/dataset"
	"picard.dev/shared"
)

// cutoffs are the k of recall@k; the deepest is also how many results each
// query asks for.
var cutoffs = []int{1, 5, 10, 25, 50}

// baselineName is the row of the harness's own BM25.
const baselineName = "bm25 (baseline)"

// scores accumulates the metrics of one ranking method over questions.
type scores struct {
	n      int
	recall [5]float64 // per cutoff, summed over questions
	rr     float64    // reciprocal ranks, summed
}

// add records one question: ranked are the ids returned (best first),
// evidence the ids that answer it. Recall@k is the fraction of the evidence
// in the first k; the reciprocal rank is that of the first evidence found.
func (s *scores) add(ranked, evidence []string) {
	s.n++
	for i, k := range cutoffs {
		found := 0
		for _, e := range evidence {
			if slices.Contains(ranked[:min(k, len(ranked))], e) {
				found++
			}
		}
		s.recall[i] += float64(found) / float64(len(evidence))
	}
	for i, id := range ranked {
		if slices.Contains(evidence, id) {
			s.rr += 1 / float64(i+1)
			break
		}
	}
}

func (s *scores) Recall(k int) float64 {
	i := slices.Index(cutoffs, k)
	if s.n == 0 || i < 0 {
		return 0
	}
	return s.recall[i] / float64(s.n)
}

func (s *scores) MRR() float64 {
	if s.n == 0 {
		return 0
	}
	return s.rr / float64(s.n)
}

// report is the outcome of one data set: rows by method, overall and by
// question category.
type report struct {
	set                     string
	convs, turns, questions int
	methods                 []string
	overall                 map[string]*scores
	byCategory              map[string]map[string]*scores
}

func newReport(set string, methods []string) *report {
	r := &report{set: set, methods: methods, overall: map[string]*scores{}, byCategory: map[string]map[string]*scores{}}
	for _, m := range methods {
		r.overall[m] = &scores{}
	}
	return r
}

func (r *report) add(method, category string, ranked, evidence []string) {
	r.overall[method].add(ranked, evidence)
	if r.byCategory[category] == nil {
		r.byCategory[category] = map[string]*scores{}
	}
	if r.byCategory[category][method] == nil {
		r.byCategory[category][method] = &scores{}
	}
	r.byCategory[category][method].add(ranked, evidence)
}

// write prints the report as Markdown tables.
func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "### %s\n\n%d conversations, %d turns stored as memories, %d questions.\n\n", r.set, r.convs, r.turns, r.questions)
	table := func(rows map[string]*scores) {
		fmt.Fprintln(w, "| method | R@1 | R@5 | R@10 | R@25 | R@50 | MRR |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|")
		for _, m := range r.methods {
			s := rows[m]
			if s == nil {
				continue
			}
			fmt.Fprintf(w, "| %s |", m)
			for _, k := range cutoffs {
				fmt.Fprintf(w, " %.3f |", s.Recall(k))
			}
			fmt.Fprintf(w, " %.3f |\n", s.MRR())
		}
		fmt.Fprintln(w)
	}
	table(r.overall)
	cats := make([]string, 0, len(r.byCategory))
	for c := range r.byCategory {
		cats = append(cats, c)
	}
	slices.Sort(cats)
	if len(cats) > 1 {
		for _, c := range cats {
			fmt.Fprintf(w, "%s (%d questions):\n\n", c, r.byCategory[c][r.methods[0]].n)
			table(r.byCategory[c])
		}
	}
}

// client calls the tools of a Picard server over POST /api/tools.
type client struct {
	url   string
	token string
	http  *http.Client
}

func (c *client) call(ctx context.Context, tool string, args, result any) error {
	data, err := json.Marshal(args)
	if err != nil {
		return err
	}
	body, err := json.Marshal(shared.ToolRequest{Tool: tool, Data: data})
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url+"/api/tools", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+c.token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
		// A server with a rate limit answers 429; wait and try again.
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 20 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s: %s", tool, resp.Status, strings.TrimSpace(string(b)))
		}
		var out shared.ToolResponse
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("%s: %w", tool, err)
		}
		return json.Unmarshal(out.Result, result)
	}
}

// evaluate stores the conversations of set through c (each under its own
// tag, so that a question searches its own conversation only), asks every
// question in each mode, and scores the results next to the harness's BM25.
func evaluate(ctx context.Context, c *client, set *dataset.Set, modes []string, workers int, progress io.Writer) (*report, error) {
	methods := append([]string{baselineName}, modes...)
	for i, m := range modes {
		methods[i+1] = "picard " + m
	}
	rep := newReport(set.Name, methods)
	rep.convs, rep.turns, rep.questions = set.Counts()
	run := fmt.Sprintf("%x", time.Now().UnixNano())[:10]
	depth := cutoffs[len(cutoffs)-1]
	for ci, conv := range set.Conversations {
		tag := "eval-" + run + "-" + conv.ID
		turnOf, err := store(ctx, c, conv, tag)
		if err != nil {
			return nil, err
		}
		var ids, texts []string
		for _, s := range conv.Sessions {
			for _, t := range s.Turns {
				ids = append(ids, t.ID)
				texts = append(texts, dataset.MemoryText(t))
			}
		}
		bm := newOkapi(ids, texts)
		type job struct {
			q    dataset.Question
			mode string
		}
		type done struct {
			q      dataset.Question
			method string
			ranked []string
			err    error
		}
		jobs := make(chan job)
		results := make(chan done)
		var wg sync.WaitGroup
		for range max(1, workers) {
			wg.Go(func() {
				for j := range jobs {
					var res shared.QueryMemoryResult
					err := c.call(ctx, shared.ToolQueryMemory, shared.QueryMemoryArgs{
						Query: j.q.Question, Mode: j.mode, Limit: depth, Tags: []string{tag},
					}, &res)
					var ranked []string
					for _, r := range res.Results {
						ranked = append(ranked, turnOf[r.Memory.ID])
					}
					results <- done{q: j.q, method: "picard " + j.mode, ranked: ranked, err: err}
				}
			})
		}
		go func() {
			for _, q := range conv.Questions {
				for _, m := range modes {
					jobs <- job{q, m}
				}
			}
			close(jobs)
			wg.Wait()
			close(results)
		}()
		var firstErr error
		for d := range results {
			if d.err != nil {
				if firstErr == nil {
					firstErr = d.err
				}
				continue
			}
			rep.add(d.method, d.q.Category, d.ranked, d.q.Evidence)
		}
		if firstErr != nil {
			return nil, firstErr
		}
		for _, q := range conv.Questions {
			rep.add(baselineName, q.Category, bm.rank(q.Question, depth), q.Evidence)
		}
		if progress != nil {
			fmt.Fprintf(progress, "eval: %s: conversation %d/%d (%s) done\n", set.Name, ci+1, len(set.Conversations), conv.ID)
		}
	}
	return rep, nil
}

// store submits the turns of conv as memories tagged tag and returns the
// turn id of each memory id.
func store(ctx context.Context, c *client, conv dataset.Conversation, tag string) (map[string]string, error) {
	var (
		batch []shared.NewMemory
		ids   []string
	)
	turnOf := map[string]string{}
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		var res shared.MemoriesResult
		if err := c.call(ctx, shared.ToolSubmitMemories, shared.SubmitMemoriesArgs{Memories: batch}, &res); err != nil {
			return err
		}
		if len(res.Memories) != len(batch) {
			return fmt.Errorf("submit_memories stored %d of %d", len(res.Memories), len(batch))
		}
		for i, m := range res.Memories {
			turnOf[m.ID] = ids[i]
		}
		batch, ids = batch[:0], ids[:0]
		return nil
	}
	for _, s := range conv.Sessions {
		for _, t := range s.Turns {
			batch = append(batch, shared.NewMemory{
				Text: dataset.MemoryText(t), Tags: []string{tag},
				Metadata: map[string]any{"turn": t.ID, "date": s.Date},
			})
			ids = append(ids, t.ID)
			if len(batch) == 500 {
				if err := flush(); err != nil {
					return nil, err
				}
			}
		}
	}
	return turnOf, flush()
}
