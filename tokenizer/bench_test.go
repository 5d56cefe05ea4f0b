package tokenizer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// benchCorpus reads $MDLM_TOKENIZER_CORPUS (bench/tokenizers.sh builds one from
// Debian packages), split into paragraphs the way a dataset row would be.
func benchCorpus(b *testing.B) (docs []string, size int) {
	path := os.Getenv("MDLM_TOKENIZER_CORPUS")
	if path == "" {
		b.Skip("set MDLM_TOKENIZER_CORPUS to a text file (bench/tokenizers.sh builds one)")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	return strings.SplitAfter(string(data), "\n\n"), len(data)
}

func benchEncode(b *testing.B, name string, workers int) {
	docs, size := benchCorpus(b)
	tok, err := Load(name)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if workers == 1 {
			t := tok.(*HF).Clone() // a cold cache each pass: no credit for having seen the corpus
			for _, d := range docs {
				t.Encode(d)
			}
		} else {
			BatchEncode(tok.(*HF).Clone(), docs, workers)
		}
	}
}

func BenchmarkEncodeGPT2(b *testing.B)      { benchEncode(b, "gpt2", 1) }
func BenchmarkEncodeBERT(b *testing.B)      { benchEncode(b, "bert-base-uncased", 1) }
func BenchmarkBatchEncodeGPT2(b *testing.B) { benchEncode(b, "gpt2", 0) }

// BenchmarkLoadGPT2 parses the embedded GPT-2 tokenizer.json, which every
// process that tokenizes or decodes pays once.
func BenchmarkLoadGPT2(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Parse(gpt2JSON, "gpt2"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadFamily loads each family's tokenizer.json found in the oracle
// folder, as `mdlm tokenize --tokenizer file.json` does before its first
// document.
func BenchmarkLoadFamily(b *testing.B) {
	eachFamilyFile(b, func(b *testing.B, path string, size int64) {
		b.SetBytes(size)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := LoadFile(path); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// eachFamilyFile runs fn as a sub-benchmark for each hub family whose
// tokenizer.json is in the oracle folder (tokenizer/testdata/gen_goldens.sh
// installs them), with the file's path and size; absent ones are skipped.
func eachFamilyFile(b *testing.B, fn func(b *testing.B, path string, size int64)) {
	for _, fam := range familyGoldens {
		if fam.npm == "" {
			continue
		}
		b.Run(fam.name, func(b *testing.B) {
			path := familyPath(fam.npm)
			info, err := os.Stat(path)
			if err != nil {
				b.Skipf("%s not present", path)
			}
			fn(b, path, info.Size())
		})
	}
}

// BenchmarkReadCapped reads a 32 MiB file (Gemma 3's tokenizer.json is 33 MB)
// as LoadFile does: one buffer of the file's size, so about 32 MiB allocated
// a read.
func BenchmarkReadCapped(b *testing.B) {
	path := filepath.Join(b.TempDir(), "tokenizer.json")
	if err := os.WriteFile(path, make([]byte, 32<<20), 0o644); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(32 << 20)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := readCapped(path); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeFamily encodes the corpus with each family's tokenizer.json
// found in the oracle folder, one thread, a cold cache each pass.
func BenchmarkEncodeFamily(b *testing.B) {
	eachFamilyFile(b, func(b *testing.B, path string, _ int64) {
		tok, err := LoadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		docs, size := benchCorpus(b)
		b.SetBytes(int64(size))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			t := tok.Clone()
			for _, d := range docs {
				t.Encode(d)
			}
		}
	})
}
