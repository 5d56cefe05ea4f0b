package train

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mdlm-go/mdlm/datasets"
)

// openData opens the train split and, when the run validates (--eval-every),
// the valid split, each checked as it is opened (issue 19, defect 10): at least
// one block, the manifest's block length, every id within vocab_size. An empty
// train split used to divide by zero, an id beyond the vocabulary to panic in
// the backend's scatter.
func openData(cfg Config, meta datasets.PackedMeta) (trainData, validData *datasets.PackedArrow, err error) {
	trainData, err = datasets.OpenPackedSplit(cfg.Data, "train", meta)
	if err != nil {
		return nil, nil, fmt.Errorf("--data: %w", err)
	}
	validPath := filepath.Join(cfg.Data, "valid.arrow")
	if _, serr := os.Stat(validPath); errors.Is(serr, os.ErrNotExist) {
		return trainData, nil, nil
	}
	if cfg.EvalEvery <= 0 {
		cfg.Log.Info("validation off (--eval-every 0): the valid split is not read", "file", validPath)
		return trainData, nil, nil
	}
	validData, err = datasets.OpenPackedSplit(cfg.Data, "valid", meta)
	if err != nil {
		trainData.Close()
		return nil, nil, fmt.Errorf("--data: %w (validation needs it; --eval-every 0 trains without)", err)
	}
	return trainData, validData, nil
}
