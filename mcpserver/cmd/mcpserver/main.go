// Command mcpserver is Picard's MCP server and OAuth authorization server.
// Run `mcpserver help` for its commands; configuration comes from the
// environment (see README.md).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"picard.dev/mcpserver/app"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := app.Main(ctx, os.Args[1:], app.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
