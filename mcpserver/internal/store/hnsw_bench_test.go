package store

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"picard.dev/mcpserver/internal/embed"
	"picard.dev/shared/pgtest"
)

// BenchmarkHNSWParameters sweeps HNSW build parameters and ef_search for
// the filtered kNN of query_memory, on a bare table shaped like
// memory_embeddings (the same partial expression index), so that one graph
// build per configuration is all it costs: 100k texts of made-up words
// (Zipf-distributed; PICARD_BENCH_WORDS=uniform for the worst case)
// embedded by the hashing embedder, 10 owners, 20% public, the caller's
// filter "own or public". Per configuration it reports the build time and,
// per ef_search, recall@10 against exact similarities (a result as similar
// as the exact 10th counts) and the statement's latency; the exact
// sequential scan is the baseline. PICARD_HNSW_CONFIGS lists the
// configurations, ";"-separated WITH clauses (default: pgvector's defaults
// and the store's). It asserts nothing; docs/performance.md has its figures.
//
//	PICARD_BENCH_LARGE=1 go test -run '^$' -bench HNSWParameters -benchtime 1x -timeout 60m ./mcpserver/internal/store/
func BenchmarkHNSWParameters(b *testing.B) {
	n := 20_000
	if os.Getenv("PICARD_BENCH_LARGE") == "1" {
		n = 100_000
	}
	configs := strings.Split(os.Getenv("PICARD_HNSW_CONFIGS"), ";")
	if configs[0] == "" {
		configs = []string{"m=16,ef_construction=64", fmt.Sprintf("m=%d,ef_construction=%d", hnswM, hnswEfConstruction)}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, pgtest.NewDatabase(b))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	exec := func(q string) {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(q, ": ", err)
		}
	}
	exec("CREATE EXTENSION IF NOT EXISTS vector")
	exec("CREATE TABLE e (id int PRIMARY KEY, owner int NOT NULL, public bool NOT NULL, dim int NOT NULL, embedding vector NOT NULL)")

	rng := rand.New(rand.NewPCG(3, 4))
	sentence := sweepWords(rng)
	h := embed.NewHash(0)
	vecs := make([][]float32, n)
	visible := make([]bool, n)
	var rows bytes.Buffer
	for i := range vecs {
		v, _ := h.Embed(ctx, []string{sentence(8 + rng.IntN(24))})
		vecs[i] = v[0]
		public := rng.Float64() < 0.2
		visible[i] = i < n/10 || public // the caller is owner 0
		fmt.Fprintf(&rows, "%d\t%d\t%t\t%d\t%s\n", i, i/(n/10), public, len(v[0]), pgVector(v[0]).String())
	}
	if _, err := conn.PgConn().CopyFrom(ctx, &rows, "COPY e FROM STDIN"); err != nil {
		b.Fatal(err)
	}
	exec("ANALYZE e")
	queries := make([][]float32, 64)
	floors := make([]float64, len(queries))
	for i := range queries {
		v, _ := h.Embed(ctx, []string{sentence(4)})
		queries[i] = v[0]
		var sims []float64
		for j, d := range vecs {
			if visible[j] {
				sims = append(sims, cosine(v[0], d))
			}
		}
		slices.Sort(sims)
		floors[i] = sims[len(sims)-10] - 1e-6
	}

	d := strconv.Itoa(h.Dim())
	dist := "(embedding::vector(" + d + ")) <=> $1::vector(" + d + ")"
	knn := "SELECT * FROM (SELECT " + dist + " FROM e WHERE dim = " + d + " AND (owner = 0 OR public) ORDER BY " + dist + " LIMIT 10) x ORDER BY 1"
	measure := func(b *testing.B) {
		var found, want int
		var took time.Duration
		for b.Loop() {
			for i, q := range queries {
				t0 := time.Now()
				rs, err := conn.Query(ctx, knn, pgVector(q).String())
				if err != nil {
					b.Fatal(err)
				}
				for rs.Next() {
					var dd float64
					if err := rs.Scan(&dd); err != nil {
						b.Fatal(err)
					}
					if 1-dd >= floors[i] {
						found++
					}
				}
				rs.Close()
				took += time.Since(t0)
				want += 10
			}
		}
		b.ReportMetric(float64(found)/float64(want), "recall@10")
		b.ReportMetric(float64(took.Microseconds())/1000/float64(want/10), "ms/query")
	}
	b.Run("exact", func(b *testing.B) {
		exec("SET enable_indexscan = off")
		defer exec("RESET enable_indexscan")
		measure(b)
	})
	exec("SET hnsw.iterative_scan = relaxed_order")
	for _, cfg := range configs {
		exec("DROP INDEX IF EXISTS e_hnsw")
		exec("SET maintenance_work_mem = '" + hnswBuildMemory + "'")
		t0 := time.Now()
		exec("CREATE INDEX e_hnsw ON e USING hnsw ((embedding::vector(" + d + ")) vector_cosine_ops) WITH (" + cfg + ") WHERE dim = " + d)
		build := time.Since(t0)
		for _, ef := range []int{200, 400, 800} {
			b.Run(fmt.Sprintf("%s/ef_search=%d", strings.ReplaceAll(cfg, ",", "_"), ef), func(b *testing.B) {
				exec("SET hnsw.ef_search = " + strconv.Itoa(ef))
				measure(b)
				b.ReportMetric(build.Seconds(), "build-s")
			})
		}
	}
}

// sweepWords returns a maker of texts of n made-up words, drawn as the
// query_memory benchmarks draw them (internal/mcp).
func sweepWords(rng *rand.Rand) func(n int) string {
	syll := []string{"ka", "lo", "mi", "ru", "se", "ta", "vo", "ne", "pi", "da", "zu", "ge", "ho", "an", "el", "or"}
	vocab := make([]string, 20_000)
	if os.Getenv("PICARD_BENCH_WORDS") == "uniform" {
		vocab = vocab[:5000]
	}
	for i := range vocab {
		var w strings.Builder
		for range 2 + rng.IntN(3) {
			w.WriteString(syll[rng.IntN(len(syll))])
		}
		vocab[i] = w.String()
	}
	pick := func() int { return rng.IntN(len(vocab)) }
	if len(vocab) == 20_000 {
		z := rand.NewZipf(rng, 1.07, 2, uint64(len(vocab)-1))
		pick = func() int { return int(z.Uint64()) }
	}
	return func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = vocab[pick()]
		}
		return strings.Join(w, " ")
	}
}

// cosine is the cosine similarity of a and b.
func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
