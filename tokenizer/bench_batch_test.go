package tokenizer

import (
	"os"
	"testing"
)

// BenchmarkBatchEncodeFile runs BatchEncode over $MDLM_TOKENIZER_CORPUS with
// the tokenizer.json at $MDLM_TOKENIZER_JSON on 1 and 2 workers, a cold
// cache each pass (a fresh clone), for allocation profiles of one family:
// go test -run '^$' -bench BatchEncodeFile -memprofile m.out -memprofilerate 1
func BenchmarkBatchEncodeFile(b *testing.B) {
	path := os.Getenv("MDLM_TOKENIZER_JSON")
	if path == "" {
		b.Skip("set MDLM_TOKENIZER_JSON to a tokenizer.json")
	}
	tok, err := LoadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	docs, size := benchCorpus(b)
	for _, workers := range []int{1, 2} {
		b.Run(map[int]string{1: "1worker", 2: "2workers"}[workers], func(b *testing.B) {
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				BatchEncode(tok.Clone(), docs, workers)
			}
		})
	}
}
