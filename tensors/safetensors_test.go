package tensors

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
		{"not json", rawImage("[1,2]   ", nil), ErrFormat, "not a JSON object"},
		{"unknown dtype", rawImage(`{"x":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}}`, []byte{0}), ErrUnknownDType, `"x"`},
		{"size lies", rawImage(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, make([]byte, 4)), ErrFormat, `tensor "x"`},
		{"offset past end", rawImage(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 4)), ErrFormat, "outside"},
		{"negative offset", rawImage(`{"x":{"dtype":"U8","shape":[1],"data_offsets":[-1,0]}}`, make([]byte, 4)), ErrFormat, "outside"},
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

// FuzzReader asks only that no input makes the reader panic, and that whatever it
// accepts can be read back tensor by tensor and re-encoded to an equal image.
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
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := FromBytes(data, "fuzz")
		if err != nil {
			return
		}
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
		again, err := FromBytes(image(t, ts, file.Metadata), "again")
		if err != nil {
			t.Fatalf("re-encoded image rejected: %v", err)
		}
		if len(again.Tensors()) != len(ts) {
			t.Fatalf("re-encode lost tensors")
		}
	})
}
