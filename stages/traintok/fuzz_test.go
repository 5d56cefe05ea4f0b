package traintok

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadCorpus feeds arbitrary bytes to the corpus reader as JSON Lines and
// as plain text: an error or documents, never a panic; plain text comes back
// byte for byte.
func FuzzReadCorpus(f *testing.F) {
	f.Add([]byte("{\"text\": \"a\"}\n{\"text\": \"b\\u0000\"}\n"))
	f.Add([]byte("plain\nlines\r\nno newline"))
	f.Add([]byte("{\"text\": null}\n[1,2]\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		for _, name := range []string{"c.jsonl", "c.txt"} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			var docs []string
			err := ReadCorpus(context.Background(), p, func(b []string) { docs = append(docs, b...) })
			if name == "c.txt" {
				if err != nil || strings.Join(docs, "") != string(data) {
					t.Fatalf("plain text: %v, %d docs", err, len(docs))
				}
			}
			if err != nil && !strings.Contains(err.Error(), name) {
				t.Fatalf("error %v does not name %s", err, name)
			}
		}
	})
}
