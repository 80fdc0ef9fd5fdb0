// Command test_mcp_server checks a running mcpserver from outside, as MCP
// clients and users see it: OAuth metadata, registration, the code flow with
// PKCE through the login and consent pages, tokens, every tool over MCP and
// /api/tools, resources, permissions between users, and bad inputs.
//
//	go run ./scripts/test_mcp_server -url http://localhost:8001
//
// It prints PASS/FAIL per check and "N passed, M failed" last, and exits 0
// only when every check passed. It signs up its own users (or uses -users)
// and deletes the memories it creates.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"picard.dev/scripts/stackcheck"
)

func main() {
	base := flag.String("url", "http://localhost:8001", "mcpserver base URL")
	issuer := flag.String("issuer", "", "expected OAuth issuer (default: -url)")
	users := flag.String("users", "", "three existing accounts, email:password,email:password,email:password, instead of signing up new ones")
	admin := flag.String("admin-token", os.Getenv("PICARD_ADMIN_TOKEN"), "access token of an admin account with memories:admin, to check the admin tools (default $PICARD_ADMIN_TOKEN)")
	timeout := flag.Duration("timeout", 5*time.Minute, "give up after this long")
	flag.Parse()

	o := stackcheck.MCPOptions{BaseURL: *base, Issuer: *issuer, AdminToken: *admin}
	if *users != "" {
		for _, u := range strings.Split(*users, ",") {
			email, pw, ok := strings.Cut(u, ":")
			if !ok {
				fmt.Fprintln(os.Stderr, "test_mcp_server: -users wants email:password,email:password,email:password")
				os.Exit(2)
			}
			o.Users = append(o.Users, stackcheck.Credentials{Email: email, Password: pw})
		}
		if len(o.Users) != 3 {
			fmt.Fprintln(os.Stderr, "test_mcp_server: -users needs exactly three accounts")
			os.Exit(2)
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	r := stackcheck.NewReport(os.Stdout)
	stackcheck.MCPServer(ctx, r, o)
	if ctx.Err() != nil {
		r.Fail("run finished in time", ctx.Err())
	}
	r.Summary()
	if r.Failed() > 0 || r.Passed() == 0 {
		os.Exit(1)
	}
}
