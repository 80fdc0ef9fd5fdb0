package app

import (
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
)

// progress reports how far a long-running command has got: a progress bar
// with counts, rate and ETA on stderr when it is a terminal, otherwise a log
// line at every further 10%.
type progress struct {
	label  string
	log    *slog.Logger
	bar    *progressbar.ProgressBar
	out    io.Writer
	tenths int
	start  time.Time
}

func newProgress(label string, stderr io.Writer, log *slog.Logger) *progress {
	return &progress{label: label, log: log, out: stderr, tenths: -1, start: time.Now()}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Report is the progress callback handed to store maintenance methods.
func (p *progress) Report(done, total int) {
	if total <= 0 {
		return
	}
	if isTerminal(p.out) {
		if p.bar == nil {
			p.bar = progressbar.NewOptions(total,
				progressbar.OptionSetWriter(p.out),
				progressbar.OptionSetDescription(p.label),
				progressbar.OptionShowCount(),
				progressbar.OptionShowIts(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { _, _ = io.WriteString(p.out, "\n") }),
			)
		}
		_ = p.bar.Set(done)
		return
	}
	if t := done * 10 / total; t > p.tenths {
		p.tenths = t
		elapsed := time.Since(p.start)
		rate := float64(done) / max(elapsed.Seconds(), 1e-9)
		attrs := []any{"done", done, "total", total, "percent", t * 10, "per_second", int(rate)}
		if rate > 0 && done < total {
			attrs = append(attrs, "eta", (time.Duration(float64(total-done)/rate) * time.Second).Round(time.Second))
		}
		p.log.Info(p.label, attrs...)
	}
}
