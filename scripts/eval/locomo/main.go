// Command locomo converts LoCoMo, the public long-term conversational
// memory benchmark (Maharana et al., "Evaluating Very Long-Term
// Conversational Memory of LLM Agents", ACL 2024,
// https://github.com/snap-research/locomo), into the data set format of the
// retrieval evaluation (scripts/eval/dataset), so that it runs through the
// same harness as the checked-in sets. LoCoMo is licensed CC BY-NC 4.0, so
// neither it nor the conversion is checked in: make eval-locomo converts
// into a temporary file.
//
//	go run ./scripts/eval/locomo -in locomo/data/locomo10.json -out locomo10.json
//	go run ./scripts/eval -data locomo10.json
//
// -in is the single-file release (data/locomo10.json, an array of samples),
// one conversation file, or a directory of them (data/locomo10.zip unpacks
// to data/multimodal_dialog/locomo10_v2/26.json …, one conversation per
// file with its fields at the top level).
//
// The conversion:
//   - A conversation's id is its sample_id (conv-26), or "conv-" and the
//     file's base name; turn ids are the conversation id, a slash and
//     LoCoMo's dia_id (conv-26/D1:3), so they are unique in the whole set.
//   - Sessions are ordered by number; a session's date is the day of its
//     session_N_date_time ("1:56 pm on 8 May, 2023" → 2023-05-08). Empty
//     sessions, and dates of sessions that have no turns, are skipped.
//   - A turn's text is the utterance; a turn that shares a photo also
//     carries the photo's BLIP caption as " [shares a photo of …]", as the
//     LoCoMo authors' own retrieval baselines embed it (their code,
//     task_eval/dpr_qa.py): questions about a shared photo are answered by
//     the caption only.
//   - Categories are those of the release: 1 multi-hop, 2 temporal, 3
//     open-domain, 4 single-hop. Category 5, adversarial (unanswerable by
//     design), is left out, as in mem0's LoCoMo evaluation.
//   - Evidence ids are normalised where that is unambiguous: an entry
//     holding several ids ("D8:6; D9:17", "D9:1 D4:4") is split, "D:11:26"
//     is read as D11:26 and "D30:05" as D30:5. An id that names no turn of
//     the conversation is dropped, as is a repeated one; a question left
//     without evidence is dropped.
//   - Answers, strings or numbers in LoCoMo, become strings.
//
// A summary of what was kept, normalised and dropped goes to standard
// error.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

func main() {
	in := flag.String("in", "", "LoCoMo: data/locomo10.json, a conversation file, or a directory of them")
	out := flag.String("out", "", "output file (default standard output)")
	flag.Parse()
	if *in == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: go run ./scripts/eval/locomo -in locomo/data/locomo10.json [-out FILE.json]")
		os.Exit(2)
	}
	if err := run(*in, *out, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "locomo:", err)
		os.Exit(1)
	}
}

// run converts the LoCoMo data at in and writes the data set to out, or to
// stdout when out is empty, and the summary to stderr.
func run(in, out string, stdout, stderr io.Writer) error {
	samples, err := load(in)
	if err != nil {
		return err
	}
	set, sum, err := convert(samples, filepath.Base(in))
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(set, "", " ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if out == "" {
		if _, err := stdout.Write(b); err != nil {
			return err
		}
	} else if err := os.WriteFile(out, b, 0o600); err != nil {
		return err
	}
	return sum.write(stderr)
}
