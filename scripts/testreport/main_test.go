package main

import (
	"strings"
	"testing"
)

func TestSummarise(t *testing.T) {
	const stream = `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"ok line\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestB","Output":"    b_test.go:9: boom\n"}
{"Action":"fail","Package":"p","Test":"TestB"}
{"Action":"output","Package":"p","Test":"TestC","Output":"    c_test.go:3: no postgres here\n"}
{"Action":"skip","Package":"p","Test":"TestC"}
{"Action":"fail","Package":"p"}
# q [q.test]
{"Action":"fail","Package":"q"}
`
	var out strings.Builder
	r, err := summarise(strings.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	code := r.exitCode(false, &out)
	got := out.String()
	for _, want := range []string{"b_test.go:9: boom", "# q [q.test]", "SKIP p TestC: c_test.go:3: no postgres here", "FAIL package q", "1 passed, 2 failed, 1 skipped\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "ok line") {
		t.Errorf("passing test output was echoed:\n%s", got)
	}
	if code != 1 {
		t.Errorf("exit code = %d, want 1", code)
	}
}

func TestSkipFailsOnlyInCI(t *testing.T) {
	stream := `{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"skip","Package":"p","Test":"TestC"}
`
	for _, ci := range []bool{false, true} {
		var out strings.Builder
		r, _ := summarise(strings.NewReader(stream), &out)
		want := 0
		if ci {
			want = 1
		}
		if code := r.exitCode(ci, &out); code != want {
			t.Errorf("ci=%v: exit code %d, want %d", ci, code, want)
		}
	}
	var out strings.Builder
	r, _ := summarise(strings.NewReader(""), &out)
	if r.exitCode(false, &out) != 1 {
		t.Error("a run with no test passed")
	}
}
