package artifact

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// CheckFileOutput refuses a single-file output path (`mdlm checkpoint export
// -o model.safetensors`, `mdlm export kubernetes -o jobs.yaml`) that would
// replace something the user made: a directory or symbolic link, a file that
// ours does not recognise as an earlier output of the same command, any of
// inputs (the pipeline file an export reads), or a file inside an artifact
// (which would no longer verify). A missing path is fine; so is a file ours
// recognises, which is replaced atomically.
func CheckFileOutput(path string, ours func(path string) bool, inputs ...string) error {
	out := resolve(path)
	for _, in := range inputs {
		if in != "" && resolve(in) == out {
			return fmt.Errorf("output %s: is an input of this command; choose another -o", path)
		}
	}
	for dir := filepath.Dir(out); ; dir = filepath.Dir(dir) {
		if _, err := os.Lstat(filepath.Join(dir, ManifestName)); err == nil {
			return fmt.Errorf("output %s: lies inside the artifact %s, which would no longer verify; choose another -o", path, dir)
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("output %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("output %s: exists and is not a regular file; choose another -o or remove it yourself", path)
	case !ours(path):
		return fmt.Errorf("output %s: exists and was not written by this mdlm command; choose another -o or remove it yourself", path)
	}
	return nil
}
