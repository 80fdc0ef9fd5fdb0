package store

import (
	"context"
	"fmt"
	"time"
)

// RateLimits keeps request rates per key (an access token) in the database,
// so that every instance serving from it enforces one limit together. It is
// GCRA, the token bucket expressed as one timestamp per key: a request is
// allowed when, after adding its interval, the key's theoretical arrival
// time is at most burst intervals ahead of now. Check and update are one
// atomic upsert, so concurrent instances never both take the last request.
type RateLimits struct{ db *DB }

// RateLimits returns the shared rate limits of db.
func (db *DB) RateLimits() *RateLimits { return &RateLimits{db: db} }

// Take counts one request of key at now against a limit of one request per
// interval with bursts of up to burst. It reports whether the request is
// allowed and, when not, how long until one would be.
func (r *RateLimits) Take(ctx context.Context, key string, now time.Time, interval time.Duration, burst int) (bool, time.Duration, error) {
	if interval <= 0 {
		return true, 0, nil
	}
	t := interval.Microseconds()
	if t == 0 {
		t = 1
	}
	nowUS := now.UnixMicro()
	limit := nowUS + int64(max(burst, 1))*t
	// The new tat is max(tat, now) + interval; the WHERE leaves the row alone
	// (and RETURNING empty) when that is beyond the burst.
	const start = "(CASE WHEN rate_limits.tat > ? THEN rate_limits.tat ELSE ? END)"
	rows, err := r.db.session(ctx).Raw("INSERT INTO rate_limits (bucket, tat) VALUES (?, ?) ON CONFLICT (bucket) DO UPDATE SET tat = "+
		start+" + ? WHERE "+start+" + ? <= ? RETURNING tat",
		key, nowUS+t, nowUS, nowUS, t, nowUS, nowUS, t, limit).Rows()
	if err != nil {
		return false, 0, fmt.Errorf("take rate limit: %w", err)
	}
	allowed := rows.Next()
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, 0, fmt.Errorf("take rate limit: %w", unavailable(err))
	}
	if allowed {
		return true, 0, nil
	}
	var tat int64
	if err := r.db.session(ctx).Raw("SELECT tat FROM rate_limits WHERE bucket = ?", key).Scan(&tat).Error; err != nil {
		return false, 0, fmt.Errorf("read rate limit: %w", err)
	}
	return false, time.Duration(max(tat+t-limit, 1)) * time.Microsecond, nil
}

// Prune removes the state of keys idle since before; such a key starts
// again with a full burst, exactly as it would with its row kept.
func (r *RateLimits) Prune(ctx context.Context, before time.Time) (int64, error) {
	res := r.db.session(ctx).Exec("DELETE FROM rate_limits WHERE tat < ?", before.UnixMicro())
	if res.Error != nil {
		return 0, fmt.Errorf("prune rate limits: %w", res.Error)
	}
	return res.RowsAffected, nil
}
