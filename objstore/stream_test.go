package objstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/mdlm-go/mdlm/artifact"
)

// memBlocks serves ranges of data and counts what it served.
type memBlocks struct {
	data    []byte
	gets    int
	served  int64
	perOff  map[int64]int
	failOff int64 // a get at this offset fails (-1: none)
}

func (m *memBlocks) getBlock(_ context.Context, off, n int64) ([]byte, error) {
	if off == m.failOff {
		return nil, errors.New("injected failure")
	}
	m.gets++
	m.served += n
	m.perOff[off]++
	return append([]byte(nil), m.data[off:off+n]...), nil
}

// countingHash counts the bytes hashed.
type countingHash struct {
	hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) { c.n += int64(len(p)); return c.Hash.Write(p) }

func testData(n int) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(1, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func TestFileReadAtPatterns(t *testing.T) {
	const bs = 16
	data := testData(10*bs + 5) // 11 blocks, the last short
	size := int64(len(data))
	type read struct{ off, n int64 }
	tests := []struct {
		name      string
		reads     []read
		maxBlocks int
		maxGets   int // upper bound on GETs including Verify
	}{
		{"none", nil, 4, 11},
		{"sequential", []read{{0, size}}, 2, 11},
		{"footer first then forward", []read{{size - 8, 8}, {size - 30, 22}, {0, 40}, {40, 60}, {100, size - 100}}, 4, 12},
		{"footer first, tiny cache", []read{{size - 8, 8}, {0, size - 8}}, 1, 13},
		{"backwards", []read{{size - 5, 5}, {8 * bs, bs}, {4 * bs, bs}, {0, 3}}, 2, 13},
		{"straddling re-read", []read{{bs - 1, 2}, {2*bs - 1, bs + 2}, {5, 100}}, 3, 15},
		{"read past end", []read{{size - 3, 10}}, 4, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &memBlocks{data: data, perOff: map[int64]int{}, failOff: -1}
			f := newFile(context.Background(), src, "b", "k/x.parquet", artifact.File{Path: "x.parquet", Size: size, SHA256: sum(data)}, bs, tt.maxBlocks)
			ch := &countingHash{Hash: sha256.New()}
			f.h = ch
			for _, rd := range tt.reads {
				p := make([]byte, rd.n)
				n, err := f.ReadAt(p, rd.off)
				want := min(rd.n, size-rd.off)
				if int64(n) != want || (int64(n) < rd.n) != (err == io.EOF) || (err != nil && err != io.EOF) {
					t.Fatalf("ReadAt(%d, %d) = %d, %v; want %d", rd.n, rd.off, n, err, want)
				}
				if !bytes.Equal(p[:n], data[rd.off:rd.off+int64(n)]) {
					t.Fatalf("ReadAt(%d, %d): wrong bytes", rd.n, rd.off)
				}
				if len(f.blocks) > tt.maxBlocks || len(f.used) != len(f.blocks) {
					t.Fatalf("holds %d blocks (%d in LRU), limit %d", len(f.blocks), len(f.used), tt.maxBlocks)
				}
			}
			if err := f.Verify(); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if ch.n != size {
				t.Errorf("hashed %d bytes, want each of %d exactly once", ch.n, size)
			}
			if src.gets > tt.maxGets {
				t.Logf("per offset: %v", src.perOff)
				t.Errorf("%d GETs, want at most %d", src.gets, tt.maxGets)
			}
			for off := int64(0); off < size; off += bs {
				if src.perOff[off] == 0 {
					t.Errorf("block at %d never fetched, yet verified", off)
				}
			}
		})
	}
}

func TestFileSequentialRead(t *testing.T) {
	data := testData(1000)
	src := &memBlocks{data: data, perOff: map[int64]int{}, failOff: -1}
	f := newFile(context.Background(), src, "b", "k", artifact.File{Path: "k", Size: 1000, SHA256: sum(data)}, 64, 2)
	got, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAll = %d bytes, %v", len(got), err)
	}
	if err := f.Verify(); err != nil {
		t.Fatal(err)
	}
	if src.served != 1000 || f.Fetched() != 1000 {
		t.Errorf("downloaded %d (Fetched %d), want exactly the file's 1000 bytes", src.served, f.Fetched())
	}
}

func TestFileVerifyDamaged(t *testing.T) {
	data := testData(100)
	rotten := append([]byte(nil), data...)
	rotten[77] ^= 1
	src := &memBlocks{data: rotten, perOff: map[int64]int{}, failOff: -1}
	f := newFile(context.Background(), src, "bkt", "pre/train-0.parquet", artifact.File{Path: "train-0.parquet", Size: 100, SHA256: sum(data)}, 32, 2)
	if _, err := f.ReadAt(make([]byte, 10), 90); err != nil {
		t.Fatal(err)
	}
	err := f.Verify()
	var d *DamagedError
	if !errors.As(err, &d) {
		t.Fatalf("Verify = %v, want *DamagedError", err)
	}
	for _, want := range []string{"s3://bkt/pre/train-0.parquet", sum(data), sum(rotten)} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if got := DamagedFiles(err); len(got) != 1 || got[0] != "train-0.parquet" {
		t.Errorf("DamagedFiles = %v", got)
	}
	if err2 := f.Verify(); err2 != err {
		t.Errorf("second Verify = %v, want the same error", err2)
	}
}

func TestFileTransientErrorRetried(t *testing.T) {
	data := testData(100)
	src := &memBlocks{data: data, perOff: map[int64]int{}, failOff: 32}
	f := newFile(context.Background(), src, "b", "k", artifact.File{Path: "k", Size: 100, SHA256: sum(data)}, 32, 2)
	if err := f.Verify(); err == nil || errors.As(err, new(*DamagedError)) {
		t.Fatalf("Verify = %v, want the transient failure", err)
	}
	src.failOff = -1
	if err := f.Verify(); err != nil {
		t.Fatalf("Verify after recovery = %v", err)
	}
}

func TestParseContentRange(t *testing.T) {
	tests := []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-99/200", 0, 99, 200, true},
		{"bytes 5-5/6", 5, 5, 6, true},
		{"bytes 0-9/*", 0, 9, -1, true},
		{"bytes 0-200/200", 0, 0, 0, false},
		{"bytes 9-0/200", 0, 0, 0, false},
		{"bytes -1-5/10", 0, 0, 0, false},
		{"bytes +1-5/10", 0, 0, 0, false},
		{"bytes 0-5", 0, 0, 0, false},
		{"items 0-5/10", 0, 0, 0, false},
		{"bytes 0-99999999999999999999/1", 0, 0, 0, false},
		{"bytes */10", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	}
	for _, tt := range tests {
		f, l, tot, err := parseContentRange(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (f != tt.first || l != tt.last || tot != tt.total)) {
			t.Errorf("parseContentRange(%q) = %d, %d, %d, %v", tt.in, f, l, tot, err)
		}
	}
}

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/200", "bytes 0-9/*", "bytes 9-0/1", "bytes 0-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		first, last, total, err := parseContentRange(h)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes", len(err.Error()))
			}
			return
		}
		if first < 0 || last < first || (total != -1 && last >= total) {
			t.Fatalf("%q: accepted %d-%d/%d", h, first, last, total)
		}
	})
}
