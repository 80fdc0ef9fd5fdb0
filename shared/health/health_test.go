package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	host, portStr, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	port, _ := strconv.Atoi(portStr)
	ctx := context.Background()
	if err := Check(ctx, host, port, "/readyz"); err != nil {
		t.Fatalf("healthy server: %v", err)
	}
	if err := Check(ctx, "0.0.0.0", port, "/readyz"); err != nil {
		t.Fatalf("wildcard host is not asked on loopback: %v", err)
	}
	if err := Check(ctx, host, port, "/healthz"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("unhealthy answer: %v", err)
	}
	srv.Close()
	if err := Check(ctx, host, port, "/readyz"); err == nil {
		t.Fatal("a stopped server passed the check")
	}
}
