package datasets

import (
	"testing"
)

// BenchmarkPackedWriter: 1100 blocks of 1024 GPT-2-range ids (about 1.1M tokens)
// through PackedWriter into Arrow IPC + Parquet, fsync and hashing included.
func BenchmarkPackedWriter(b *testing.B) {
	rows := make([]PackedRow, 1100)
	for i := range rows {
		ids := make([]int32, 1024)
		for j := range ids {
			ids[j] = int32((i*1024 + j) % 50257)
		}
		rows[i] = PackedRow{InputIDs: ids, AttentionMask: ones(1024)}
	}
	b.SetBytes(1100 * 1024 * 4)
	for i := 0; i < b.N; i++ {
		dir := b.TempDir()
		w, err := NewPackedWriter(dir, "train", 1024)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			w.Write(r)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
