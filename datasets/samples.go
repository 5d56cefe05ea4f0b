package datasets

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/parquet-go/parquet-go"

	"github.com/mdlm-go/mdlm/internal/filehash"
)

// File names of a samples/v1 artifact.
const (
	SamplesParquet = "samples.parquet"
	SamplesJSONL   = "samples.jsonl"
)

// Sample is one row of a samples/v1 artifact.
type Sample struct {
	Index  int64   `parquet:"index" json:"index"`
	Tokens []int32 `parquet:"tokens,list" json:"tokens"`
	NFE    int32   `parquet:"nfe" json:"nfe"`
	// Text is the decoded sample (special tokens rendered, e.g. <|endoftext|>);
	// empty when the checkpoint names no tokenizer.
	Text string `parquet:"text" json:"text,omitempty"`
}

// WriteSamples writes the samples/v1 files into dir.
func WriteSamples(dir string, rows []Sample) error {
	if err := parquet.WriteFile(filepath.Join(dir, SamplesParquet), rows); err != nil {
		return fmt.Errorf("write %s: %w", SamplesParquet, err)
	}
	return filehash.WriteFile(filepath.Join(dir, SamplesJSONL), func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, r := range rows {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	})
}

// ReadSamples reads the Parquet table of a samples/v1 artifact directory (open
// and verify the artifact first: artifact.Open).
// A corrupt file is an error naming it, never a panic of the Parquet reader.
func ReadSamples(dir string) (rows []Sample, err error) {
	path := filepath.Join(dir, SamplesParquet)
	defer recoverCorrupt(path, &err)
	rows, err = parquet.ReadFile[Sample](path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return rows, nil
}
