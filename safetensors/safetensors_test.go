package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func image(t testing.TB, ts []Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, ts, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawImage builds a file from a literal header and data section.
func rawImage(header string, data []byte) []byte {
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(header)))
	buf.WriteString(header)
	buf.Write(data)
	return buf.Bytes()
}

func sampleTensors() []Tensor {
	return []Tensor{
		FromFloat32("w", []int{2, 3}, []float32{1, -2, 3.5, 0, 1e-30, -7}),
		FromInt64("ids", []int{4}, []int64{0, 50257, -1, 1 << 40}),
		{Name: "h", DType: BF16, Shape: []int{2}, Data: []byte{0x80, 0x3f, 0x00, 0xc0}}, // 1, -2
		{Name: "f16", DType: F16, Shape: []int{1}, Data: []byte{0x00, 0x3c}},            // 1
		{Name: "i32", DType: I32, Shape: []int{}, Data: []byte{0xff, 0xff, 0xff, 0xff}}, // -1 scalar
	}
}

func TestRoundTrip(t *testing.T) {
	ts := sampleTensors()
	img := image(t, ts, map[string]string{"format": "pt"})
	f, err := FromBytes(img, "mem")
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	for _, want := range ts {
		got, err := f.Bytes(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want.Data) {
			t.Errorf("%s: bytes differ", want.Name)
		}
	}
	w, shape, _ := f.Float32("w")
	if !reflect.DeepEqual(shape, []int{2, 3}) || w[2] != 3.5 || w[5] != -7 {
		t.Errorf("w = %v %v", w, shape)
	}
	h, _, _ := f.Float32("h")
	if h[0] != 1 || h[1] != -2 {
		t.Errorf("bf16 = %v", h)
	}
	f16, _, _ := f.Float32("f16")
	if f16[0] != 1 {
		t.Errorf("f16 = %v", f16)
	}
	ids, _, _ := f.Int64("ids")
	if !reflect.DeepEqual(ids, []int64{0, 50257, -1, 1 << 40}) {
		t.Errorf("ids = %v", ids)
	}
	s, shape, _ := f.Int64("i32")
	if s[0] != -1 || len(shape) != 0 {
		t.Errorf("i32 scalar = %v %v", s, shape)
	}
	if _, _, err := f.Float32("ids"); !errors.Is(err, ErrDType) {
		t.Errorf("Float32 of I64: err = %v", err)
	}
	if _, err := f.Bytes("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing tensor: err = %v", err)
	}
}

func TestWriteFileAtomicAndMmap(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	ts := sampleTensors()
	if err := WriteFile(path, ts, nil); err != nil {
		t.Fatal(err)
	}
	// A failing write must leave the published file alone.
	bad := []Tensor{{Name: "x", DType: F32, Shape: []int{3}, Data: []byte{1}}}
	if err := WriteFile(path, bad, nil); err == nil {
		t.Fatal("writing a tensor with the wrong byte count succeeded")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	for _, open := range []func(string) (*File, error){Open, OpenMmap} {
		f, err := open(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range ts {
			got, err := f.Bytes(want.Name)
			if err != nil || !bytes.Equal(got, want.Data) {
				t.Errorf("%s: %v", want.Name, err)
			}
		}
		if err := f.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestBadFiles(t *testing.T) {
	good := image(t, sampleTensors(), nil)
	cases := []struct {
		name    string
		data    []byte
		want    error
		mention string
	}{
		{"empty", nil, ErrFormat, "shorter than"},
		{"truncated data", good[:len(good)-3], ErrFormat, "truncated"},
		{"truncated header", good[:20], ErrFormat, "runs past the end"},
		{"huge header length", append([]byte{0, 0, 0, 0, 0, 0, 0, 0x7f}, good[8:]...), ErrFormat, "exceeds"},
		{"not json", rawImage("[1,2]   ", nil), ErrFormat, "does not start with '{'"},
		{"unknown dtype", rawImage(`{"x":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), ErrUnknownDType, `"x"`},
		{"size lies", rawImage(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrFormat, `tensor "x"`},
		{"offset past end", rawImage(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 4)), ErrFormat, "outside"},
		{"negative offset", rawImage(`{"x":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, make([]byte, 4)), ErrFormat, "non-negative integer"},
		{"overlap", rawImage(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}`, make([]byte, 3)), ErrFormat, "overlaps"},
		{"hole", rawImage(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2)), ErrFormat, "hole"},
		{"trailing data", rawImage(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, make([]byte, 2)), ErrFormat, "cover"},
		{"duplicate", rawImage(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, make([]byte, 2)), ErrFormat, `duplicate tensor name "a"`},
		{"negative dim", rawImage(`{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}`, nil), ErrFormat, "negative"},
		{"overflow", rawImage(`{"a":{"dtype":"F64","shape":[4611686018427387904,4],"data_offsets":[0,0]}}`, nil), ErrFormat, "overflows"},
		{"bad offsets arity", rawImage(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0]}}`, []byte{0}), ErrFormat, "data_offsets"},
		{"junk after object", rawImage(`{}x`, nil), ErrFormat, "trailing"},
	}
	for _, c := range cases {
		_, err := FromBytes(c.data, "bad.safetensors")
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
			continue
		}
		if !strings.Contains(err.Error(), "bad.safetensors") || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: error %q should name the file and mention %q", c.name, err, c.mention)
		}
	}
}

func TestReadsReferenceFixture(t *testing.T) {
	path := filepath.Join("..", "..", "shared", "fixtures", "reference", "public", "dit.safetensors")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("fixture not present: %v", err)
	}
	f, err := OpenMmap(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, ok := f.Info("vocab_embed.embedding")
	if !ok || info.DType != F32 || len(info.Shape) != 2 {
		t.Fatalf("vocab_embed.embedding: %+v", info)
	}
}

// FuzzReader asks that no input makes the reader panic, and that whatever it
// accepts can be read back tensor by tensor, written by the writer and read
// again to the same tensors (issue 19, defect 15).
func FuzzReader(f *testing.F) {
	f.Add(image(f, sampleTensors(), map[string]string{"k": "v"}))
	f.Add(rawImage(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{7}))
	f.Add([]byte{})
	if entries, err := os.ReadDir("testdata"); err == nil {
		for _, e := range entries {
			if data, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil && !e.IsDir() {
				f.Add(data)
			}
		}
	}
	f.Add(rawImage(`{"a":{"dtYpe":"U8","shApe":[1],"dAtA_offsets":[0,1]}}`, []byte{7}))
	f.Add(rawImage(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{7}))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := FromBytes(data, "fuzz")
		if err != nil {
			return
		}
		roundTrip(t, file)
	})
}

// TestHostileSafetensorsHeader guards issue 19, defect 15: the header is read as
// strictly as the format's own reader (safetensors/src/tensor.rs) reads it, so
// nothing is accepted that the writer cannot write back.
func TestHostileSafetensorsHeader(t *testing.T) {
	one := []byte{7}
	u8 := func(fields string) []byte { return rawImage(`{"a":{`+fields+`}}`, one) }
	cases := []struct {
		name    string
		data    []byte
		mention string
	}{
		{"case-folded keys", u8(`"dtYpe":"U8","shApe":[1],"dAtA_offsets":[0,1]`), `unknown field "dtYpe"`},
		{"case-folded shape", u8(`"dtype":"U8","Shape":[1],"data_offsets":[0,1]`), `unknown field "Shape"`},
		{"empty name", rawImage(`{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, one), "empty tensor name"},
		{"unknown field", u8(`"dtype":"U8","shape":[1],"data_offsets":[0,1],"offsets":[0,1]`), `unknown field "offsets"`},
		{"missing shape", u8(`"dtype":"U8","data_offsets":[0,1]`), `missing field "shape"`},
		{"missing dtype", u8(`"shape":[1],"data_offsets":[0,1]`), `missing field "dtype"`},
		{"null shape", u8(`"dtype":"U8","shape":null,"data_offsets":[0,1]`), "null"},
		{"null dtype", u8(`"dtype":null,"shape":[1],"data_offsets":[0,1]`), "null"},
		{"duplicate field", u8(`"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]`), `duplicate field "dtype"`},
		{"fractional dim", u8(`"dtype":"U8","shape":[1.0],"data_offsets":[0,1]`), "not a non-negative integer"},
		{"exponent offset", u8(`"dtype":"U8","shape":[1],"data_offsets":[0,1e0]`), "not a non-negative integer"},
		{"huge offset", u8(`"dtype":"U8","shape":[1],"data_offsets":[0,99999999999999999999]`), "out of range"},
		{"three offsets", u8(`"dtype":"U8","shape":[1],"data_offsets":[0,1,1]`), "want 2"},
		{"rank beyond limit", u8(`"dtype":"U8","shape":[` + strings.Repeat("1,", MaxRank) + `1],"data_offsets":[0,1]`), "more than 64"},
		{"metadata not strings", rawImage(`{"__metadata__":{"k":1},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, one), "want a string"},
		{"metadata duplicate key", rawImage(`{"__metadata__":{"k":"1","k":"2"}}`, nil), `duplicate metadata key "k"`},
		{"metadata array", rawImage(`{"__metadata__":["k"]}`, nil), "want an object of strings"},
		{"duplicate metadata", rawImage(`{"__metadata__":{},"__metadata__":{}}`, nil), "duplicate"},
		{"lone surrogate name", rawImage(`{"\ud800":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, one), "lone surrogate"},
		{"lone low surrogate", rawImage(`{"__metadata__":{"k":"\udc00"}}`, nil), "lone surrogate"},
		{"leading space", rawImage(` {}`, nil), "does not start with '{'"},
		{"empty header", rawImage(``, nil), "does not start with '{'"},
		{"nul padding", rawImage("{}\x00\x00", nil), "trailing"},
		{"invalid utf-8", rawImage("{\"\xff\":{}}", nil), "UTF-8"},
		{"header beyond the format's limit", append(binaryLen(MaxHeaderSize+1), "{}"...), "exceeds"},
	}
	for _, c := range cases {
		_, err := FromBytes(c.data, "bad.safetensors")
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", c.name, err)
			continue
		}
		if !strings.Contains(err.Error(), "bad.safetensors") || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: error %q should name the file and mention %q", c.name, err, c.mention)
		}
	}
}

func binaryLen(n uint64) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, n)
	return b
}

// TestHostileSafetensorsAccepted: what the format's reader accepts, this one does
// too, and the writer writes it back to an equal file (issue 19, defect 15).
func TestHostileSafetensorsAccepted(t *testing.T) {
	cases := []struct {
		name string
		data []byte
	}{
		{"null metadata", rawImage(`{"__metadata__":null}`, nil)},
		{"escaped names", rawImage(`{"\u00e9\ud83d\ude00\\":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, []byte{1})},
		{"empty tensors sharing an offset", rawImage(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},"c":{"dtype":"U8","shape":[2,0],"data_offsets":[4,4]}}`, make([]byte, 4))},
		{"padding whitespace", rawImage("{} \t\r\n", nil)},
		{"fields in any order", rawImage(`{"a":{"data_offsets":[0,2],"shape":[],"dtype":"F16"}}`, []byte{0, 0x3c})},
	}
	for _, c := range cases {
		f, err := FromBytes(c.data, "ok.safetensors")
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		roundTrip(t, f)
	}
}

// roundTrip re-encodes an accepted file and requires the same tensors and metadata.
func roundTrip(t *testing.T, file *File) {
	t.Helper()
	var ts []Tensor
	for _, info := range file.Tensors() {
		b, err := file.Bytes(info.Name)
		if err != nil {
			t.Fatalf("accepted file, but tensor %q unreadable: %v", info.Name, err)
		}
		ts = append(ts, Tensor{Name: info.Name, DType: info.DType, Shape: info.Shape, Data: b})
		file.Float32(info.Name)
		file.Int64(info.Name)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, ts, file.Metadata); err != nil {
		t.Fatalf("accepted file, but the writer refuses it: %v", err)
	}
	again, err := FromBytes(buf.Bytes(), "again")
	if err != nil {
		t.Fatalf("re-encoded image rejected: %v", err)
	}
	if !reflect.DeepEqual(again.Tensors(), file.Tensors()) {
		t.Fatalf("re-encoded tensors %+v, want %+v", again.Tensors(), file.Tensors())
	}
	if len(file.Metadata) > 0 && !reflect.DeepEqual(again.Metadata, file.Metadata) {
		t.Fatalf("re-encoded metadata %v, want %v", again.Metadata, file.Metadata)
	}
	for _, tt := range ts {
		b, _ := again.Bytes(tt.Name)
		if !bytes.Equal(b, tt.Data) {
			t.Fatalf("tensor %q: bytes differ after re-encoding", tt.Name)
		}
	}
}
