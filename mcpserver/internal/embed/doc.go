// Package embed turns text into unit-length vectors for semantic search.
//
// Two embedders are provided, each with the same method set, so that the
// memory domain can declare the interface it consumes:
//
//	Embed(ctx context.Context, texts []string) ([][]float32, error)
//	Name() string
//	Dim() int
//
// [Hash] runs locally with no network and no model files; [OpenAI] calls any
// server that speaks the OpenAI embeddings API. Name identifies both the model
// and the dimension so that vectors produced by different embedders are never
// compared with each other.
package embed
