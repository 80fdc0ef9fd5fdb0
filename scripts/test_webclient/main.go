// Command test_webclient checks a running web client (and the mcpserver it
// uses) over plain HTTP, as a browser would: sign-up, connecting to the MCP
// server through OAuth (logging in and consenting there, with a separate
// cookie jar), creating a memory through the form, list and search, the
// persona pages, disconnecting and logging out.
//
//	go run ./scripts/test_webclient -url http://localhost:8000 -mcp-url http://localhost:8001
//
// It prints PASS/FAIL per check and "N passed, M failed" last, and exits 0
// only when every check passed.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"time"

	"picard.dev/scripts/stackcheck"
)

func main() {
	base := flag.String("url", "http://localhost:8000", "web client base URL")
	mcpURL := flag.String("mcp-url", "http://localhost:8001", "mcpserver base URL, as a browser reaches it")
	timeout := flag.Duration("timeout", 3*time.Minute, "give up after this long")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	r := stackcheck.NewReport(os.Stdout)
	stackcheck.WebClient(ctx, r, stackcheck.WebOptions{BaseURL: *base, MCPURL: *mcpURL})
	if ctx.Err() != nil {
		r.Fail("run finished in time", ctx.Err())
	}
	r.Summary()
	if r.Failed() > 0 || r.Passed() == 0 {
		os.Exit(1)
	}
}
