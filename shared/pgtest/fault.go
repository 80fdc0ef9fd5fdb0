package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Cluster is a private PostgreSQL cluster that belongs to one test, which
// may stop and start it to see how code copes with a database that goes
// away and comes back: fault injection. Unlike the binary's shared
// cluster, it keeps synchronous_commit on, so a transaction the server
// acknowledged survives Stop and Kill.
type Cluster struct {
	srv *server
	dsn *url.URL

	mu      sync.Mutex
	running bool
}

// StartCluster starts a new private cluster for tb alone (the binary's
// shared cluster is not touched), creates a database with the vector
// extension in it, and stops and removes the cluster when tb ends. It needs
// the PostgreSQL binaries on this machine even when PICARD_TEST_POSTGRES_URL
// is set, since a server elsewhere cannot be stopped; without them it skips
// tb, or fails it when CI=true, as NewDatabase does.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	srv, err := startClusterWith(true)
	if err != nil {
		report(tb, err, inCI())
		return nil
	}
	c := &Cluster{srv: srv, dsn: srv.dsn("picard"), running: true}
	tb.Cleanup(func() {
		if err := srv.cluster.stop(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), psqlTimeout)
	defer cancel()
	if _, err := srv.psql(ctx, srv.admin, "CREATE DATABASE picard TEMPLATE template0 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'"); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	if _, err := srv.psql(ctx, c.dsn, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		tb.Fatalf("pgtest: create extension vector: %v", err)
	}
	return c
}

// DSN is the URL of the cluster's database; it stays the same across Stop
// and Start.
func (c *Cluster) DSN() string { return c.dsn.String() }

// Stop shuts the server down as an operator would (pg_ctl stop -m fast):
// open sessions are ended with an error, in-flight transactions roll back,
// and from then on connections to its port are refused. It returns when
// the server is gone.
func (c *Cluster) Stop(tb testing.TB) {
	tb.Helper()
	c.halt(tb, "fast")
}

// Kill stops the server as a crash would (pg_ctl stop -m immediate): no
// shutdown checkpoint; recovery replays the WAL at the next Start.
func (c *Cluster) Kill(tb testing.TB) {
	tb.Helper()
	c.halt(tb, "immediate")
}

func (c *Cluster) halt(tb testing.TB, mode string) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		tb.Fatal("pgtest: Cluster is not running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cl := c.srv.cluster
	if out, err := cl.command(ctx, "pg_ctl", "-D", cl.dataDir(), "-m", mode, "-w", "stop").CombinedOutput(); err != nil {
		tb.Fatalf("pgtest: pg_ctl stop -m %s: %v\n%s", mode, err, strings.TrimSpace(string(out)))
	}
	c.running = false
}

// Start starts the stopped server again on the same port with the same
// data and returns when it accepts connections.
func (c *Cluster) Start(tb testing.TB) {
	tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		tb.Fatal("pgtest: Cluster is already running")
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cl := c.srv.cluster
	if err := cl.pgCtlStart(ctx); err != nil {
		tb.Fatalf("pgtest: restart on port %d: %v", cl.port, err)
	}
	if err := cl.waitReady(ctx); err != nil {
		tb.Fatal(err)
	}
	c.running = true
}

// String describes the cluster, for test logs.
func (c *Cluster) String() string {
	return fmt.Sprintf("private cluster %s", c.srv.describe)
}
