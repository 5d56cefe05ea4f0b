package train

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadInitRecord: the work directory's init.json, however damaged, never
// panics a resumed run; what is accepted names the run's --init and a valid
// model.
func FuzzReadInitRecord(f *testing.F) {
	for _, s := range []string{
		`{"ref": "ck", "digest": "sha256:00", "model": {"arch": "dit", "vocab_size": 40, "hidden_size": 16, "n_heads": 2, "n_blocks": 1, "cond_dim": 8, "length": 8, "mask_index": 39}}`,
		`{"ref": "ck"}`, `{"ref": "other", "model": {}}`, `[]`, `{"ref": "ck", "model": {"arch": "dit", "vocab_size": -1}}`,
		`{"ref": "ck", "model": {"arch": "dimamba", "vocab_size": 40, "hidden_size": 16, "n_blocks": 1, "cond_dim": 8, "length": 8, "mask_index": 39, "d_state": 1e9}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		work := t.TempDir()
		if err := os.WriteFile(filepath.Join(work, initRecordFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := readInitRecord(work, "ck")
		if err != nil {
			return
		}
		if err := src.model.Validate(); err != nil {
			t.Fatalf("accepted a model that does not validate: %v", err)
		}
	})
}
