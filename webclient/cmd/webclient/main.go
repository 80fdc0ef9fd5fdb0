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
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

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
		return healthcheck(ctx, cfg.Host, cfg.Port)
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

// healthcheck asks the local server's /healthz and fails unless it answers
// 200. Container images have no shell or curl, so health checks run the
// binary itself.
func healthcheck(ctx context.Context, host string, port int) error {
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/healthz"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, res.Status)
	}
	fmt.Println("ready")
	return nil
}
