// Command testreport reads `go test -json` output on stdin, echoes the
// output of failing and skipped tests, and closes with one summary line,
// "N passed, M failed, K skipped". It exits non-zero when a test or a
// package failed, when no test ran, or when a test skipped while CI=true
// (in CI nothing may skip: every dependency is installed by the scripts).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

type result struct {
	passed, failed, skipped int
	failedPkgs              []string // packages that failed without a failing test: build errors, panics in TestMain
	testFailed              map[string]bool
	skips                   []string
	fails                   []string
}

func main() {
	r, err := summarise(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(2)
	}
	os.Exit(r.exitCode(os.Getenv("CI") == "true", os.Stdout))
}

// summarise streams package output through, keeping each test's lines
// until it ends so only failing and skipped tests are shown in full.
func summarise(in io.Reader, out io.Writer) (*result, error) {
	res := &result{testFailed: map[string]bool{}}
	buf := map[string]*strings.Builder{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil {
			// Build errors and other non-JSON lines are shown as they come.
			fmt.Fprintln(out, string(line))
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				if strings.HasPrefix(e.Output, "ok ") || strings.HasPrefix(e.Output, "FAIL") || strings.HasPrefix(e.Output, "?") || strings.HasPrefix(e.Output, "---") {
					fmt.Fprint(out, e.Output)
				}
				continue
			}
			b := buf[key]
			if b == nil {
				b = &strings.Builder{}
				buf[key] = b
			}
			b.WriteString(e.Output)
		case "pass":
			if e.Test != "" {
				res.passed++
			}
			delete(buf, key)
		case "skip":
			if e.Test != "" {
				res.skipped++
				res.skips = append(res.skips, key+": "+lastLine(buf[key]))
			}
			delete(buf, key)
		case "fail":
			if e.Test == "" {
				if !res.testFailed[e.Package] {
					res.failedPkgs = append(res.failedPkgs, e.Package)
				}
				continue
			}
			res.failed++
			res.testFailed[e.Package] = true
			res.fails = append(res.fails, key)
			if b := buf[key]; b != nil {
				fmt.Fprint(out, b.String())
			}
			delete(buf, key)
		}
	}
	return res, sc.Err()
}

func lastLine(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func (r *result) exitCode(ci bool, out io.Writer) int {
	sort.Strings(r.skips)
	for _, s := range r.skips {
		fmt.Fprintln(out, "SKIP", s)
	}
	for _, f := range r.fails {
		fmt.Fprintln(out, "FAIL", f)
	}
	for _, p := range r.failedPkgs {
		fmt.Fprintln(out, "FAIL package", p)
	}
	fmt.Fprintf(out, "%d passed, %d failed, %d skipped\n", r.passed, r.failed+len(r.failedPkgs), r.skipped)
	switch {
	case r.failed > 0 || len(r.failedPkgs) > 0:
		return 1
	case r.passed == 0:
		fmt.Fprintln(out, "no test ran")
		return 1
	case ci && r.skipped > 0:
		fmt.Fprintln(out, "CI=true: tests may not skip; install what they need (scripts/install-test-deps.sh)")
		return 1
	}
	return 0
}
