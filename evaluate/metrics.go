package evaluate

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/mdlm-go/mdlm/internal/filehash"
)

// MetricsJSON is the file of a metrics/v1 artifact.
const MetricsJSON = "metrics.json"

// WriteMetricsJSON writes v as dir/metrics.json, indented JSON ending in a
// newline (hashed while written).
func WriteMetricsJSON(dir string, v any) error {
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("%s: %w", MetricsJSON, err)
	}
	return filehash.WriteFile(filepath.Join(dir, MetricsJSON), func(w io.Writer) error {
		_, err := w.Write(append(raw, '\n'))
		return err
	})
}
