package app

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"picard.dev/shared"
	"picard.dev/shared/pgtest"
)

// propagationBound is how soon a revocation made through one instance must
// be refused by another: the verifier caches a token's state for less than
// a second. A check that it propagates, not a performance assertion.
const propagationBound = time.Second

// twoInstances starts two servers on one Postgres database with the same
// keys, as behind a load balancer.
func twoInstances(t *testing.T, vars map[string]string) (*running, *running) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	dataDir := t.TempDir()
	env := map[string]string{"MCP_DATABASE_URL": dsn}
	for k, v := range vars {
		env[k] = v
	}
	a := start(t, dataDir, env)
	b := start(t, dataDir, env)
	return a, b
}

// TestRevocationReachesTheOtherInstance revokes a token and disables an
// account through instance A while instance B keeps serving them: B refuses
// both within a second.
func TestRevocationReachesTheOtherInstance(t *testing.T) {
	a, b := twoInstances(t, map[string]string{"MCP_RATE_LIMIT": "0"})
	_, adminToken := a.account(t, "admin@example.com", true, shared.ScopeRead, shared.ScopeWrite, shared.ScopeAdmin)
	revokedID, revokedToken := a.account(t, "revoked@example.com", false)
	disabledID, disabledToken := a.account(t, "disabled@example.com", false)

	ok := func(base, token string) int {
		return callTool(base, token, shared.ToolRetrieveMemories, map[string]any{"limit": 1}).status
	}
	for _, tok := range []string{revokedToken, disabledToken} {
		if s := ok(b.URL(), tok); s != http.StatusOK {
			t.Fatalf("B before any revocation: %d", s)
		}
	}

	if _, err := a.oauth.RevokeUserTokens(context.Background(), revokedID); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	if s := ok(a.URL(), revokedToken); s != http.StatusUnauthorized {
		t.Errorf("A right after revoking: %d, want 401", s)
	}
	if d := untilRefused(t, revokedAt, func() int { return ok(b.URL(), revokedToken) }); d > propagationBound {
		t.Errorf("B still accepted the token revoked through A %s later", d)
	}

	// B has just checked this token, so it is in B's cache when A
	// disables the account.
	if s := ok(b.URL(), disabledToken); s != http.StatusOK {
		t.Fatalf("B before disabling: %d", s)
	}
	r := callTool(a.URL(), adminToken, shared.ToolAdminSetUserDisabled, map[string]any{"user_id": disabledID.String(), "disabled": true})
	if r.status != http.StatusOK {
		t.Fatalf("admin_set_user_disabled through A: %d %s", r.status, r.body)
	}
	disabledAt := time.Now()
	if d := untilRefused(t, disabledAt, func() int { return ok(b.URL(), disabledToken) }); d > propagationBound {
		t.Errorf("B still accepted the token of the user disabled through A %s later", d)
	}
	// And it stays refused on both.
	for _, base := range []string{a.URL(), b.URL()} {
		for _, tok := range []string{revokedToken, disabledToken} {
			if s := ok(base, tok); s != http.StatusUnauthorized {
				t.Errorf("%s: %d, want 401", base, s)
			}
		}
	}
	if s := ok(b.URL(), adminToken); s != http.StatusOK {
		t.Errorf("the admin's own token on B: %d", s)
	}
}

// untilRefused calls check (bounded: 10 s, and 1000 calls) until it answers
// 401 and returns how long after since that call was sent. Measuring from
// the sending of each call keeps a slow machine from failing the check.
func untilRefused(t *testing.T, since time.Time, check func() int) time.Duration {
	t.Helper()
	for range 1000 {
		sent := time.Now()
		status := check()
		switch {
		case status == http.StatusUnauthorized:
			d := sent.Sub(since)
			t.Logf("refused by the other instance %s after the change", d.Round(time.Millisecond))
			return d
		case status != http.StatusOK:
			t.Fatalf("unexpected status %d", status)
		case time.Since(since) > 10*time.Second:
			t.Fatal("the other instance still accepts the token after 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the other instance still accepts the token after 1000 checks")
	return 0
}

// TestRateLimitHoldsAcrossInstances sends one token's requests to two
// instances as fast as four clients can: together they are allowed no more
// than the limit allows one instance (the burst plus the rate over the
// time taken), where two separate limits would allow twice that.
func TestRateLimitHoldsAcrossInstances(t *testing.T) {
	const rps, burst = 10, 20 // MCP_RATE_LIMIT=10: burst twice the rate
	a, b := twoInstances(t, map[string]string{"MCP_RATE_LIMIT": "10"})
	_, token := a.account(t, "busy@example.com", false)

	var allowed, limited, other atomic.Int64
	var wg sync.WaitGroup
	begin := time.Now()
	deadline := begin.Add(2 * time.Second)
	for i := range 4 {
		base := a.URL()
		if i%2 == 1 {
			base = b.URL()
		}
		wg.Go(func() {
			for n := 0; n < 10000 && time.Now().Before(deadline); n++ {
				r := callTool(base, token, shared.ToolRetrieveMemories, map[string]any{"limit": 1})
				switch {
				case r.status == http.StatusOK:
					allowed.Add(1)
				case r.status == http.StatusTooManyRequests && r.apiError().Code == shared.CodeRateLimited:
					limited.Add(1)
				default:
					other.Add(1)
					t.Errorf("unexpected answer: %d %v %.200s", r.status, r.err, r.body)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	limit := burst + int64(float64(rps)*elapsed.Seconds()+0.999)
	t.Logf("%s: %d allowed, %d refused with 429; the shared limit allows at most %d", elapsed.Round(time.Millisecond), allowed.Load(), limited.Load(), limit)
	if limited.Load() == 0 {
		t.Fatal("no request was refused: the clients did not exceed the limit, so the test shows nothing")
	}
	if allowed.Load() > limit {
		t.Errorf("%d requests allowed across both instances, more than the %d one limit allows", allowed.Load(), limit)
	}
	if allowed.Load() < burst {
		t.Errorf("only %d requests allowed; the burst alone is %d", allowed.Load(), burst)
	}
}
