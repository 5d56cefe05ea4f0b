package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
)

// FuzzFileReadAt drives File's block arithmetic with arbitrary sizes, block
// sizes, cache limits and ReadAt patterns: every read returns the file's
// bytes, the cache never holds more than its limit, and Verify hashes each
// byte exactly once, in order (the digest matches).
func FuzzFileReadAt(f *testing.F) {
	f.Add(uint16(165), uint8(16), uint8(4), []byte{0, 157, 8, 0, 0, 40})
	f.Add(uint16(0), uint8(1), uint8(1), []byte{})
	f.Add(uint16(1000), uint8(7), uint8(1), []byte{3, 200, 50, 0, 1, 255})
	f.Fuzz(func(t *testing.T, size uint16, bs, maxBlocks uint8, ops []byte) {
		blockSize := int64(bs%64) + 1
		data := testData(int(size))
		src := &memBlocks{data: data, perOff: map[int64]int{}, failOff: -1}
		file := newFile(context.Background(), src, "b", "k", artifact.File{Path: "k", Size: int64(size), SHA256: sum(data)}, blockSize, int(maxBlocks%8))
		ch := &countingHash{Hash: sha256.New()}
		file.h = ch
		for len(ops) >= 4 && src.gets < 10000 {
			off := int64(binary.LittleEndian.Uint16(ops)) % (int64(size) + 2)
			n := int64(binary.LittleEndian.Uint16(ops[2:])) % 300
			ops = ops[4:]
			p := make([]byte, n)
			got, err := file.ReadAt(p, off)
			want := max(0, min(n, int64(size)-off))
			if int64(got) != want || (err != nil && err != io.EOF) || (int64(got) < n) != (err == io.EOF) {
				t.Fatalf("ReadAt(%d bytes, at %d) of %d = %d, %v; want %d", n, off, size, got, err, want)
			}
			if got > 0 && !bytes.Equal(p[:got], data[off:off+int64(got)]) {
				t.Fatalf("ReadAt(%d bytes, at %d): wrong bytes", n, off)
			}
			if len(file.blocks) > file.maxBlocks || len(file.used) != len(file.blocks) {
				t.Fatalf("holds %d blocks (%d in LRU), limit %d", len(file.blocks), len(file.used), file.maxBlocks)
			}
		}
		if err := file.Verify(); err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if ch.n != int64(size) {
			t.Fatalf("hashed %d bytes of %d", ch.n, size)
		}
	})
}
