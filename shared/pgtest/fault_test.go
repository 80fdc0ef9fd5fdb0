package pgtest

import (
	"context"
	"testing"
	"time"
)

// TestClusterStopStart stops and kills a test's own cluster and starts it
// again: committed rows survive both, and while it is down nothing answers.
func TestClusterStopStart(t *testing.T) {
	c := StartCluster(t)
	run := func(sql string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return c.srv.psql(ctx, c.dsn, sql)
	}
	must := func(sql string) string {
		t.Helper()
		out, err := run(sql)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := must("SELECT extname FROM pg_extension WHERE extname = 'vector'"); got != "vector" {
		t.Fatalf("vector extension: %q", got)
	}
	must("CREATE TABLE kept (n int)")
	must("INSERT INTO kept VALUES (1)")
	c.Stop(t)
	if _, err := run("SELECT 1"); err == nil {
		t.Fatal("the stopped cluster answered a query")
	}
	c.Start(t)
	must("INSERT INTO kept VALUES (2)")
	c.Kill(t)
	c.Start(t)
	if got := must("SELECT string_agg(n::text, ',' ORDER BY n) FROM kept"); got != "1,2" {
		t.Fatalf("rows after stop and kill = %q, want 1,2", got)
	}
	if c.DSN() == "" || c.String() == "" {
		t.Fatal("empty DSN or description")
	}
}
