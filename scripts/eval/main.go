// Command eval measures how well query_memory finds what a conversation
// said. It stores every turn of a conversational data set (see
// scripts/eval/dataset) as a memory through the public API, asks the data
// set's questions with query_memory in each mode, and reports recall@1, 5,
// 10, 25 and 50 and the mean reciprocal rank of the evidence turns, next to
// an Okapi BM25 baseline computed by the harness over the same texts.
//
// By default it starts a real mcpserver in-process (SQLite in a temporary
// directory, the local hashing embedder, or the database of -database-url)
// and creates an account and a token with the server's own admin commands;
// with -url and -token it evaluates a running server instead.
//
//	go run ./scripts/eval                                   # make eval
//	go run ./scripts/eval -data path/to/converted-benchmark.json
//	go run ./scripts/eval -url https://picard.example.com -token "$TOKEN"
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"picard.dev/scripts/eval/dataset"
)

func main() {
	data := flag.String("data", "scripts/eval/testdata/dev.json,scripts/eval/testdata/heldout.json", "comma-separated data set files")
	url := flag.String("url", "", "a running mcpserver (default: start one in-process)")
	token := flag.String("token", "", "access token with memories:read and memories:write, for -url")
	dbURL := flag.String("database-url", "", "postgres:// database for the in-process server (default SQLite in a temporary directory)")
	modes := flag.String("modes", "hybrid,vector,lexical", "query_memory modes to evaluate")
	convs := flag.Int("conversations", 0, "evaluate only the first n conversations of each set (0: all)")
	workers := flag.Int("workers", 2, "concurrent queries")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *data, *url, *token, *dbURL, strings.Split(*modes, ","), *convs, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "eval:", err)
		os.Exit(1)
	}
}

func httpClient() *http.Client { return &http.Client{Timeout: 2 * time.Minute} }

func run(ctx context.Context, data, url, token, dbURL string, modes []string, convs, workers int) error {
	var sets []*dataset.Set
	for _, p := range strings.Split(data, ",") {
		s, err := dataset.Load(strings.TrimSpace(p))
		if err != nil {
			return err
		}
		if convs > 0 && convs < len(s.Conversations) {
			s.Conversations = s.Conversations[:convs]
		}
		sets = append(sets, s)
	}
	c := &client{url: strings.TrimRight(url, "/"), token: token, http: httpClient()}
	if url == "" {
		srv, err := startServer(ctx, dbURL, os.Stderr)
		if err != nil {
			return err
		}
		defer srv.stop()
		c.url, c.token = srv.url, srv.token
	} else if token == "" {
		return fmt.Errorf("-url needs -token")
	}
	for _, s := range sets {
		rep, err := evaluate(ctx, c, s, modes, workers, os.Stderr)
		if err != nil {
			return err
		}
		rep.write(os.Stdout)
	}
	return nil
}
