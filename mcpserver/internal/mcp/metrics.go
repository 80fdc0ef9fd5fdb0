package mcp

import (
	"maps"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the Prometheus metrics of tool calls, on both transports.
type Metrics struct {
	calls    *prometheus.CounterVec
	errors   *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the tool metrics with reg (a fresh
// prometheus.NewRegistry() in tests, so runs do not collide).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "picard", Name: "tool_calls_total",
			Help: "Tool calls by tool and outcome (ok or an error code), over MCP and /api/tools.",
		}, []string{"tool", "outcome"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "picard", Name: "tool_errors_total",
			Help: "Tool calls that failed, by tool and error code.",
		}, []string{"tool", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "picard", Name: "tool_duration_seconds",
			Help:    "Duration of tool calls by tool.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"tool"}),
	}
	reg.MustRegister(m.calls, m.errors, m.duration)
	return m
}

func (m *Metrics) observe(tool, outcome string, d time.Duration) {
	m.calls.WithLabelValues(tool, outcome).Inc()
	if outcome != "ok" {
		m.errors.WithLabelValues(tool, outcome).Inc()
	}
	m.duration.WithLabelValues(tool).Observe(d.Seconds())
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
