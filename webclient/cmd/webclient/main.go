// Command webclient runs the Picard web client.
//
//	webclient [serve]   start the web server (default)
//	webclient migrate   apply database migrations and exit
//	webclient version   print the version
//	webclient healthcheck  exit 0 when the local server answers /healthz (container health checks)
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"picard.dev/shared/health"
	"picard.dev/webclient/app"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "webclient:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd = args[0]
	}
	switch cmd {
	case "version":
		fmt.Println(app.Version)
		return nil
	case "serve", "migrate", "healthcheck":
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate, version or healthcheck)", cmd)
	}
	cfg, err := app.LoadConfig()
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cmd == "healthcheck" {
		// Container images have no shell or curl, so health checks run
		// the binary itself.
		if err := health.Check(ctx, cfg.Host, cfg.Port, "/healthz"); err != nil {
			return err
		}
		fmt.Println("ready")
		return nil
	}
	if cmd == "migrate" {
		if err := app.Migrate(ctx, cfg); err != nil {
			return err
		}
		logger.Info("migrations applied")
		return nil
	}
	a, err := app.New(cfg, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	return a.Run(ctx)
}
