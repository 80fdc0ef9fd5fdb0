package stackcheck

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// Report collects check results and prints one line per check.
type Report struct {
	mu             sync.Mutex
	w              io.Writer
	passed, failed int
	skipped        int
}

// NewReport prints to w.
func NewReport(w io.Writer) *Report { return &Report{w: w} }

// errSkip marks a check that does not apply; it counts as neither.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return e.reason }

// Skip returns an error that makes Check print "SKIP name: reason".
func Skip(format string, a ...any) error { return errSkip{fmt.Sprintf(format, a...)} }

// Check runs fn and records it as passed when it returns nil. A panic in fn
// is a failure of that check, not of the run.
func (r *Report) Check(name string, fn func() error) (ok bool) {
	err := func() (err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("panic: %v", p)
			}
		}()
		return fn()
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	var skip errSkip
	switch {
	case err == nil:
		r.passed++
		fmt.Fprintf(r.w, "PASS %s\n", name)
		return true
	case errors.As(err, &skip):
		r.skipped++
		fmt.Fprintf(r.w, "SKIP %s: %s\n", name, oneLine(skip.reason))
		return false
	default:
		r.failed++
		fmt.Fprintf(r.w, "FAIL %s: %s\n", name, oneLine(err.Error()))
		return false
	}
}

// Fail records a failure that is not tied to a check function.
func (r *Report) Fail(name string, err error) { r.Check(name, func() error { return err }) }

// Passed and Failed count the checks so far.
func (r *Report) Passed() int { r.mu.Lock(); defer r.mu.Unlock(); return r.passed }

// Failed counts the failed checks so far.
func (r *Report) Failed() int { r.mu.Lock(); defer r.mu.Unlock(); return r.failed }

// Summary prints "N passed, M failed" and returns it.
func (r *Report) Summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := fmt.Sprintf("%d passed, %d failed", r.passed, r.failed)
	fmt.Fprintln(r.w, s)
	return s
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 600 {
		s = s[:600] + "…"
	}
	return s
}
