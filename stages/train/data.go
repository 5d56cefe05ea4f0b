package train

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/datasets"
)

// openData opens the train split and, when the run validates (--eval-every),
// the valid split, each checked as it is opened (issue 19, defect 10): at least
// one block, the manifest's block length, every id within vocab_size. An empty
// train split used to divide by zero, an id beyond the vocabulary to panic in
// the backend's scatter.
func openData(opts Options, meta datasets.PackedMeta, log *slog.Logger) (trainData, validData *datasets.PackedArrow, err error) {
	trainData, err = datasets.OpenPackedSplit(opts.Data, "train", meta)
	if err != nil {
		return nil, nil, fmt.Errorf("--data: %w", err)
	}
	validPath := filepath.Join(opts.Data, "valid.arrow")
	if _, serr := os.Stat(validPath); errors.Is(serr, os.ErrNotExist) {
		return trainData, nil, nil
	}
	if opts.EvalEvery <= 0 {
		log.Info("validation off (--eval-every 0): the valid split is not read", "file", validPath)
		return trainData, nil, nil
	}
	validData, err = datasets.OpenPackedSplit(opts.Data, "valid", meta)
	if err != nil {
		trainData.Close()
		return nil, nil, fmt.Errorf("--data: %w (validation needs it; --eval-every 0 trains without)", err)
	}
	return trainData, validData, nil
}

// checkFinite refuses validation metrics that JSON cannot carry (they would be
// dropped from metrics.jsonl): a NaN or infinite value stops the run like a
// non-finite loss, the last good checkpoint kept.
func checkFinite(m Metrics) error {
	for _, f := range []struct {
		name string
		v    float64
	}{{"val_nll", m.ValNLL}, {"val_ppl", m.ValPPL}, {"val_gen_ppl", m.ValGenPPL}, {"val_entropy", m.ValEntropy}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return fmt.Errorf("%w: validation at step %d: %s is %v (val_nll %v)", ErrNonFinite, m.Step, f.name, f.v, m.ValNLL)
		}
	}
	return nil
}
