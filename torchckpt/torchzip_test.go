package torchckpt

// Hostile .ckpt archives (issue 19, defect 3): each is refused with an error
// naming the file and what is wrong, quickly and without allocating what its
// length fields ask for. On the old reader each of these panicked, ran out
// of memory, overflowed the stack, or (deflate) failed to read a valid file.

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// pk builds pickle bytes (protocol 2) for the tests.
type pk struct{ bytes.Buffer }

func (p *pk) op(s string) *pk { p.WriteString(s); return p }

func (p *pk) str(s string) *pk {
	p.WriteByte('X')
	binary.Write(&p.Buffer, binary.LittleEndian, uint32(len(s)))
	p.WriteString(s)
	return p
}

// int writes n as LONG1 (any 64-bit value).
func (p *pk) int(n int64) *pk {
	p.WriteString("\x8a\x08")
	binary.Write(&p.Buffer, binary.LittleEndian, n)
	return p
}

func (p *pk) tuple(ns ...int64) *pk {
	p.WriteByte('(')
	for _, n := range ns {
		p.int(n)
	}
	return p.op("t")
}

// tensor writes _rebuild_tensor_v2 over storage key (numel elements of class).
func (p *pk) tensor(class, key string, numel, offset int64, size, stride []int64) *pk {
	p.op("ctorch._utils\n_rebuild_tensor_v2\n(")
	p.op("(").str("storage").op("ctorch\n" + class + "\n").str(key).str("cpu").int(numel).op("tQ")
	p.int(offset).tuple(size...).tuple(stride...).op("\x89N").op("tR")
	return p
}

// ckpt wraps a state_dict body (key/value pairs) and extra top-level pairs
// into a checkpoint's top-level dict.
func ckptPickle(stateDict, extra func(p *pk)) []byte {
	p := &pk{}
	p.op("\x80\x02}").str("state_dict").op("}")
	if stateDict != nil {
		p.op("(")
		stateDict(p)
		p.op("u")
	}
	p.op("s")
	if extra != nil {
		p.op("(")
		extra(p)
		p.op("u")
	}
	return append(p.Bytes(), '.')
}

// zipEntry is one archive entry; method and a claimed size may lie.
type zipEntry struct {
	name   string
	data   []byte
	method uint16
	claim  uint64 // if non-zero, the uncompressed size written in the headers
}

// hostileZip writes entries to path.
func hostileZip(t testing.TB, path string, entries ...zipEntry) {
	t.Helper()
	if err := os.WriteFile(path, zipBytes(t, entries...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// zipBytes builds an archive, writing an entry raw where its claim must lie.
func zipBytes(t testing.TB, entries ...zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(12, func(w io.Writer) (io.WriteCloser, error) { return nopWriteCloser{w}, nil })
	for _, e := range entries {
		var w io.Writer
		var err error
		if e.claim != 0 {
			w, err = zw.CreateRaw(&zip.FileHeader{Name: e.name, Method: e.method, CompressedSize64: uint64(len(e.data)), UncompressedSize64: e.claim})
		} else {
			w, err = zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: e.method})
		}
		if err != nil {
			t.Fatal(err)
		}
		w.Write(e.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// f32 is n float32 values 0, 1, 2 ... as little-endian bytes.
func f32(n int) []byte {
	b := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(0x3f800000)) // 1.0
	}
	return b
}

// nested is a config value nested depth lists deep.
func nested(depth int) func(p *pk) {
	return func(p *pk) {
		p.str("hyper_parameters").op("}").str("config")
		p.op(strings.Repeat("]", depth) + strings.Repeat("a", depth-1))
		p.op("s")
	}
}

// refuseCkpt asserts ReadLightning refuses path with an error naming it and
// want, allocating at most maxAlloc bytes.
func refuseCkpt(t *testing.T, path, want string, maxAlloc uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Read(path)
	runtime.ReadMemStats(&after)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
		t.Errorf("err = %v, want %q and the file", err, want)
	}
	t.Logf("refused: %v", err)
	if got := after.TotalAlloc - before.TotalAlloc; got > maxAlloc {
		t.Errorf("allocated %d bytes before refusing, want at most %d", got, maxAlloc)
	}
}

const smallAlloc = 16 << 20

// Defect 3's smallest case: a FRAME claiming 2^62 bytes.
func TestHostileCkptFrameLength(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.ckpt")
	pkl := append([]byte("\x80\x04\x95"), binary.LittleEndian.AppendUint64(nil, 1<<62)...)
	hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: append(pkl, "}."...)})
	refuseCkpt(t, path, "archive/data.pkl: pickle at offset 2: FRAME of 2^62 bytes exceeds the 2 bytes left", smallAlloc)
}

// Storage element counts are checked against the record's real size: 2^62
// elements (makeslice: len out of range) and 2^28 (1 GB from a tiny file).
func TestHostileCkptStorageSize(t *testing.T) {
	for _, numel := range []int64{1 << 62, 1 << 28, -1, 5} {
		t.Run(fmt.Sprint(numel), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.ckpt")
			pkl := ckptPickle(func(p *pk) { p.str("w").tensor("FloatStorage", "0", numel, 0, []int64{4}, []int64{1}) }, nil)
			hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: pkl}, zipEntry{name: "archive/data/0", data: f32(4)})
			refuseCkpt(t, path, `storage "0": `, smallAlloc)
		})
	}
}

// Shapes, strides and offsets must lie inside the storage, without
// overflow: a huge shape over 4 elements, stride 0 (a view with more
// elements than its storage), strides that overflow, a negative offset or
// stride, more dimensions than maxDims.
func TestHostileCkptTensorView(t *testing.T) {
	many := make([]int64, maxDims+1)
	for i := range many {
		many[i] = 1
	}
	cases := []struct {
		name         string
		offset       int64
		size, stride []int64
		want         string
	}{
		{"huge shape", 0, []int64{1 << 40}, []int64{1}, "more elements than its storage's 4"},
		{"overflowing shape", 0, []int64{1 << 32, 1 << 32}, []int64{1, 1}, "more elements than its storage's 4"},
		{"stride 0", 0, []int64{1 << 30}, []int64{0}, "more elements than its storage's 4"},
		{"overflowing stride", 0, []int64{2, 2}, []int64{1 << 62, 1 << 62}, "offset overflows"},
		{"past the end", 1, []int64{4}, []int64{1}, "outside its storage of 4"},
		{"negative offset", -1, []int64{1}, []int64{1}, "negative"},
		{"negative stride", 3, []int64{2}, []int64{-1}, "non-negative"},
		{"rank", 0, many, many, "at most 64"},
		{"rank mismatch", 0, []int64{2, 2}, []int64{1}, "2 sizes and 1 strides"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.ckpt")
			pkl := ckptPickle(func(p *pk) { p.str("w").tensor("FloatStorage", "0", 4, c.offset, c.size, c.stride) }, nil)
			hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: pkl}, zipEntry{name: "archive/data/0", data: f32(4)})
			refuseCkpt(t, path, c.want, smallAlloc)
		})
	}
}

// Nested values have a depth limit: lists nested past maxDepth, and a list
// that contains itself (infinite recursion on the old reader).
func TestHostileCkptNesting(t *testing.T) {
	cyclic := func(p *pk) {
		p.str("hyper_parameters").op("}").str("config").op("]q\x00h\x00a").op("s")
	}
	for name, extra := range map[string]func(*pk){"deep": nested(maxDepth + 10), "cyclic": cyclic} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.ckpt")
			hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: ckptPickle(nil, extra)})
			refuseCkpt(t, path, "nested deeper than 1000", smallAlloc)
		})
	}
	// Just within the limit reads.
	path := filepath.Join(t.TempDir(), "ok.ckpt")
	hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: ckptPickle(nil, nested(maxDepth/2-10))})
	if _, err := Read(path); err != nil {
		t.Errorf("nesting of %d: %v", maxDepth/2-10, err)
	}
	// A value shared at every level would be visited 2^depth times.
	p := &pk{}
	p.op("\x80\x02}").str("state_dict").op("}s").str("hyper_parameters").op("}").str("config").op("]")
	for i := 0; i < 60; i++ {
		p.op("q\x000h\x00h\x00\x86") // x = (x, x)
	}
	p.op("ss.")
	path = filepath.Join(t.TempDir(), "shared.ckpt")
	hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: p.Bytes()})
	refuseCkpt(t, path, "values visited", 128<<20)
}

// The pre-scan covers exactly the pickle decoded: archives with two
// data.pkl entries, a duplicated name, entries outside one top folder or with
// ".." are refused.
func TestHostileCkptLayout(t *testing.T) {
	frame := append(append([]byte("\x80\x04\x95"), binary.LittleEndian.AppendUint64(nil, 1<<62)...), "}."...)
	clean := ckptPickle(nil, nil)
	cases := []struct {
		name    string
		entries []zipEntry
		want    string
	}{
		{"second data.pkl", []zipEntry{{name: "archive/data.pkl", data: clean}, {name: "archive/x/data.pkl", data: frame}}, "want exactly one data.pkl"},
		{"other top folder", []zipEntry{{name: "archive/data.pkl", data: clean}, {name: "other/data.pkl", data: frame}}, "outside the archive's single top folder"},
		{"same name twice", []zipEntry{{name: "archive/data.pkl", data: clean}, {name: "archive/data.pkl", data: frame}}, "appears twice"},
		{"dot dot", []zipEntry{{name: "../archive/data.pkl", data: clean}}, "not a clean relative path"},
		{"absolute", []zipEntry{{name: "/archive/data.pkl", data: clean}}, "not a clean relative path"},
		{"at the root", []zipEntry{{name: "data.pkl", data: clean}}, "not inside a top folder"},
		{"torchscript", []zipEntry{{name: "archive/data.pkl", data: clean}, {name: "archive/constants.pkl", data: clean}}, "TorchScript"},
		{"big-endian", []zipEntry{{name: "archive/data.pkl", data: clean}, {name: "archive/byteorder", data: []byte("big")}}, `byte order "big"`},
		{"method", []zipEntry{{name: "archive/data.pkl", data: clean, method: 12}}, "archive/data.pkl: compression method 12 is not supported"},
		{"deflate bomb", []zipEntry{{name: "archive/data.pkl", data: clean, method: zip.Deflate, claim: 1 << 40}}, "more than the"},
		{"stored claim", []zipEntry{{name: "archive/data.pkl", data: clean, method: zip.Store, claim: 1 << 20}}, "claims 1048576 uncompressed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.ckpt")
			hostileZip(t, path, c.entries...)
			refuseCkpt(t, path, c.want, smallAlloc)
		})
	}
}

// A storage record is named by a plain key and holds exactly its elements;
// a deflated record claiming more than DEFLATE can expand to is refused
// before it is read.
func TestHostileCkptStorageRecord(t *testing.T) {
	tensor := func(key string, numel int64) []byte {
		return ckptPickle(func(p *pk) { p.str("w").tensor("FloatStorage", key, numel, 0, []int64{1}, []int64{1}) }, nil)
	}
	cases := []struct {
		name    string
		entries []zipEntry
		want    string
	}{
		{"key with ..", []zipEntry{{name: "archive/data.pkl", data: tensor("../0", 4)}, {name: "archive/data/0", data: f32(4)}}, `storage key "../0" is not a record name`},
		{"missing record", []zipEntry{{name: "archive/data.pkl", data: tensor("1", 4)}, {name: "archive/data/0", data: f32(4)}}, "no record archive/data/1"},
		{"deflate bomb", []zipEntry{{name: "archive/data.pkl", data: tensor("0", 1<<28)}, {name: "archive/data/0", data: []byte{1, 2, 3}, method: zip.Deflate, claim: 1 << 30}},
			"3 deflated bytes cannot hold the 1073741824 claimed"},
		{"unknown class", []zipEntry{{name: "archive/data.pkl", data: bytes.Replace(tensor("0", 4), []byte("FloatStorage"), []byte("EvilStorage"), 1)}, {name: "archive/data/0", data: f32(4)}}, "not a torch storage class"},
		{"byte storage", []zipEntry{{name: "archive/data.pkl", data: bytes.Replace(tensor("0", 16), []byte("FloatStorage"), []byte("ByteStorage"), 1)}, {name: "archive/data/0", data: f32(4)}}, "storage ByteStorage is not supported"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.ckpt")
			hostileZip(t, path, c.entries...)
			refuseCkpt(t, path, c.want, smallAlloc)
		})
	}
}

// Opcodes the decoder would panic on or parse in quadratic time are refused
// or reported as errors: a LONG1 of zero bytes, a DICT with an odd number of
// items, a 100,000-digit LONG, a FRAME inside the pickle's last bytes.
func TestHostileCkptOpcodes(t *testing.T) {
	cases := []struct {
		name, pkl, want string
	}{
		{"empty LONG1", "\x80\x02\x8a\x00.", "integer of 0 bytes"},
		{"odd DICT", "\x80\x02(K\x01d.", "malformed pickle"},
		{"long decimal", "\x80\x02L" + strings.Repeat("9", 100_000) + "\n.", "number of 100000 digits"},
		{"LONG4", "\x80\x02\x8b\x00\x00\x01\x00" + strings.Repeat("\x01", 65536) + ".", "integer of 65536 bytes"},
		{"BINUNICODE8", "\x80\x04\x8d\x00\x00\x00\x00\x00\x00\x00\x40.", "claims 2^62 bytes"},
		{"ops", "\x80\x02" + strings.Repeat("N", maxPickleOps) + ".", "more than 2000000 opcodes"},
		{"no STOP", "\x80\x02}", "no STOP"},
		{"extension", "\x80\x02\x82\x01.", "copyreg extension"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.ckpt")
			hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: []byte(c.pkl)})
			refuseCkpt(t, path, c.want, 64<<20)
		})
	}
}

// A deflate-compressed but otherwise valid archive reads the same as the
// stored one (the old reader failed with "data.pkl: EOF").
func TestHostileCkptDeflate(t *testing.T) {
	src := dimambaCkpt
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var entries []zipEntry
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, zipEntry{name: f.Name, data: b, method: zip.Deflate})
	}
	path := filepath.Join(t.TempDir(), "deflated.ckpt")
	hostileZip(t, path, entries...)
	want, err := Read(src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	got.Path = want.Path
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the deflated archive reads differently from the stored one")
	}
}

// A small valid checkpoint built here reads: views with offsets and strides
// (a transpose), half and double storages, a parameter wrapper, and the
// budget that lets two names share one storage (tied weights).
func TestLightningSyntheticViews(t *testing.T) {
	path := filepath.Join(t.TempDir(), "model.ckpt")
	if err := os.WriteFile(path, syntheticCkpt(t), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Float32Tensor{
		"t":    {Shape: []int{3, 2}, Data: []float32{1, 4, 2, 5, 3, 6}},
		"tied": {Shape: []int{2}, Data: []float32{2, 5}},
		"h":    {Shape: []int{3}, Data: []float32{2, 3, 4}},
		"d":    {Shape: nil, Data: []float32{5}},
	}
	if !reflect.DeepEqual(l.State, want) {
		t.Errorf("state %v, want %v", l.State, want)
	}
	if wantEMA := []Float32Tensor{{Shape: []int{2}, Data: []float32{3, 4}}}; !reflect.DeepEqual(l.EMA, wantEMA) || l.EMADecay < 0.999 || l.EMADecay >= 1 {
		t.Errorf("ema %v decay %v, want %v and 0.9999", l.EMA, l.EMADecay, wantEMA)
	}
	if wantCfg := map[string]any{"T": 0, "model": map[string]any{"hidden_size": 32}}; !reflect.DeepEqual(l.Config, wantCfg) {
		t.Errorf("config %v, want %v", l.Config, wantCfg)
	}
}

// syntheticCkpt is a small valid checkpoint: views with offsets and strides,
// half, double and float storages, a parameter wrapper, an EMA and a config.
func syntheticCkpt(t testing.TB) []byte {
	half := []byte{0x00, 0x3c, 0x00, 0x40, 0x00, 0x42, 0x00, 0x44}   // 1, 2, 3, 4
	dbl := binary.LittleEndian.AppendUint64(nil, 0x4014000000000000) // 5
	f := make([]byte, 0, 24)
	for _, v := range []uint32{0x3f800000, 0x40000000, 0x40400000, 0x40800000, 0x40a00000, 0x40c00000} {
		f = binary.LittleEndian.AppendUint32(f, v)
	}
	pkl := ckptPickle(func(p *pk) {
		p.str("t").tensor("FloatStorage", "0", 6, 0, []int64{3, 2}, []int64{1, 3}) // transpose of [[1 2 3] [4 5 6]]
		p.str("tied").tensor("FloatStorage", "0", 6, 1, []int64{2}, []int64{3})
		p.str("h").tensor("HalfStorage", "1", 4, 1, []int64{3}, []int64{1})
		p.str("d").op("ctorch._utils\n_rebuild_parameter\n(").tensor("DoubleStorage", "2", 1, 0, nil, nil).op("\x88N").op("tR")
	}, func(p *pk) {
		p.str("ema").op("}(").str("decay").op("G?\xef\xff\x7c\xed\x91\x68\x73").str("shadow_params").op("]")
		p.tensor("FloatStorage", "0", 6, 2, []int64{2}, []int64{1}).op("a").op("u")
		p.str("hyper_parameters").op("}").str("config").op("}(").str("T").op("K\x00").str("model").op("}").str("hidden_size").op("K\x20s").op("us")
	})
	return zipBytes(t, zipEntry{name: "m/data.pkl", data: pkl}, zipEntry{name: "m/data/0", data: f},
		zipEntry{name: "m/data/1", data: half}, zipEntry{name: "m/data/2", data: dbl}, zipEntry{name: "m/version", data: []byte("3\n")})
}

// FuzzLightningCkpt: any archive is read or refused with an error, never a
// panic, a stack overflow or an allocation its bytes cannot justify. Seeds:
// the DiMamba fixture, the synthetic checkpoint and defect 3's hostile cases.
func FuzzLightningCkpt(f *testing.F) {
	if b, err := os.ReadFile(dimambaCkpt); err == nil {
		f.Add(b)
	}
	f.Add(syntheticCkpt(f))
	frame := append(append([]byte("\x80\x04\x95"), binary.LittleEndian.AppendUint64(nil, 1<<62)...), "}."...)
	f.Add(zipBytes(f, zipEntry{name: "archive/data.pkl", data: frame}))
	f.Add(zipBytes(f, zipEntry{name: "archive/data.pkl", data: ckptPickle(nil, nil)}, zipEntry{name: "archive/x/data.pkl", data: frame}))
	f.Add(zipBytes(f, zipEntry{name: "archive/data.pkl", data: ckptPickle(nil, nested(20))}))
	f.Add(zipBytes(f, zipEntry{name: "archive/data.pkl", data: ckptPickle(func(p *pk) {
		p.str("w").tensor("FloatStorage", "0", 1<<28, 0, []int64{4}, []int64{1})
	}, nil)}, zipEntry{name: "archive/data/0", data: f32(4), method: zip.Deflate}))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, archive []byte) {
		path := filepath.Join(dir, "f.ckpt")
		if err := os.WriteFile(path, archive, 0o644); err != nil {
			t.Fatal(err)
		}
		if l, err := Read(path); err == nil {
			for name, x := range l.State {
				if n := numel(x.Shape); n != len(x.Data) {
					t.Errorf("%s: shape %v holds %d elements, data %d", name, x.Shape, n, len(x.Data))
				}
			}
		}
	})
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Views of one storage materialise at most twice its elements in all (two
// names may share a tensor, tied weights): a thousand names viewing one large
// storage would otherwise ask for a thousand copies.
func TestHostileCkptViewBudget(t *testing.T) {
	pkl := ckptPickle(func(p *pk) {
		for _, name := range []string{"a", "b", "c"} {
			p.str(name).tensor("FloatStorage", "0", 4, 0, []int64{4}, []int64{1})
		}
	}, nil)
	path := filepath.Join(t.TempDir(), "model.ckpt")
	hostileZip(t, path, zipEntry{name: "archive/data.pkl", data: pkl}, zipEntry{name: "archive/data/0", data: f32(4)})
	refuseCkpt(t, path, `state_dict["c"]: views materialised so far exceed twice the 4 elements`, smallAlloc)
}
