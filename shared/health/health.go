// Package health checks a service's own health endpoint from the command
// line. The container images have no shell or curl, so each binary's
// `healthcheck` subcommand asks its local server instead.
package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// Check asks http://host:port/path and fails unless the answer is 200
// within five seconds. A wildcard listen host (empty, 0.0.0.0, ::) is asked
// on the loopback address.
func Check(ctx context.Context, host string, port int, path string) error {
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + path
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
	return nil
}
