package hub

import (
	"os"
	"path/filepath"
)

// CacheRoot is the root of downloaded hub files: $MDLM_CACHE, else
// ~/.cache/mdlm/hub. It is the one place that reads $MDLM_CACHE (the
// --cache-dir flags name it as their env default).
func CacheRoot() string {
	if c := os.Getenv("MDLM_CACHE"); c != "" {
		return c
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "mdlm", "hub")
}
