package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestShortLoad is the CI form of the load test: an in-process server with
// SQLite, 20 clients with their own tokens for a few seconds. It asserts
// correctness only — no unexpected errors, every acknowledged write
// readable, every acknowledged delete gone — never latency; the numbers
// are logged. `make loadtest` runs the full form.
func TestShortLoad(t *testing.T) {
	d := 5 * time.Second
	if testing.Short() {
		d = 2 * time.Second
	}
	o := Options{
		Clients: 20, Duration: d, MaxOps: 100_000, Seed: 5, RandSeed: 1,
		Users: 5, RateLimit: 20, InProcess: true,
	}
	var logs strings.Builder
	setenv := func(k, v string) error { t.Setenv(k, v); return nil }
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, o, setenv, &logs)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, logs.String())
	}
	var out strings.Builder
	rep.Print(&out)
	t.Log("\n" + out.String())
	if rep.Operations == 0 {
		t.Fatal("no operations ran")
	}
	if rep.Unexpected > 0 {
		t.Errorf("%d unexpected errors: %v", rep.Unexpected, rep.Errors)
	}
	if rep.Verification == nil {
		t.Fatal("no verification")
	}
	if rep.Verification.ProblemCount > 0 {
		t.Errorf("verification: %d problems: %v", rep.Verification.ProblemCount, rep.Verification.Problems)
	}
	if rep.Verification.Writes == 0 {
		t.Error("verification checked no writes")
	}
	if !rep.Correct() {
		t.Errorf("report is not correct")
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8001", true},
		{"http://localhost:8001", true},
		{"http://[::1]:8001", true},
		{"http://127.0.0.2:8001", true},
		{"http://10.0.0.1:8001", false},
		{"https://example.com", false},
		{"ftp://127.0.0.1", false},
		{"http://", false},
	} {
		err := loopbackOnly(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("loopbackOnly(%q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

func TestOptionBounds(t *testing.T) {
	base := Options{Clients: 1, Duration: time.Second, MaxOps: 10}
	for name, mod := range map[string]func(*Options){
		"too many clients": func(o *Options) { o.Clients = maxClients + 1 },
		"no clients":       func(o *Options) { o.Clients = 0 },
		"too long":         func(o *Options) { o.Duration = maxDuration + time.Second },
		"too many ops":     func(o *Options) { o.MaxOps = maxOps + 1 },
		"remote url":       func(o *Options) { o.URL = "http://192.0.2.1:8001" },
	} {
		o := base
		mod(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := base.check(); err != nil {
		t.Errorf("base options refused: %v", err)
	}
}

func TestReadTokens(t *testing.T) {
	path := t.TempDir() + "/tokens"
	if err := os.WriteFile(path, []byte("# comment\n\nabc\n def \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readTokens(path)
	if err != nil || len(got) != 2 || got[0] != "abc" || got[1] != "def" {
		t.Fatalf("readTokens = %q, %v", got, err)
	}
}
