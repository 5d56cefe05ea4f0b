// Package accel chooses the GoMLX compute backend: the pure-Go backend on CPU by
// default, or whatever $GOMLX_BACKEND names (e.g. "xla:cuda" in a binary built with
// the xla tag). Automatic downloads of PJRT plugins are always disabled: the plugin
// comes from $PJRT_PLUGIN_LIBRARY_PATH.
package accel

import (
	"fmt"
	"os"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // the pure-Go backend, registered as "go"
)

// EnvBackend is the variable GoMLX reads the backend configuration from.
const EnvBackend = compute.ConfigEnvVar

var (
	once    sync.Once
	shared  compute.Backend
	initErr error
)

// Backend returns the process-wide backend, created on first use.
func Backend() (compute.Backend, error) {
	once.Do(func() { shared, initErr = New() })
	return shared, initErr
}

// New creates a backend from $GOMLX_BACKEND, defaulting to "go".
func New() (b compute.Backend, err error) {
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	config := os.Getenv(EnvBackend)
	if config == "" {
		config = "go"
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compute backend %q (from $%s): %v; available: %v", config, EnvBackend, r, compute.List())
		}
	}()
	b, err = compute.NewWithConfig(config)
	if err != nil {
		return nil, fmt.Errorf("compute backend %q (from $%s): %w; available: %v", config, EnvBackend, err, compute.List())
	}
	return b, nil
}

// Describe is a one-line description for logs and manifests.
func Describe(b compute.Backend) string {
	return fmt.Sprintf("%s (%s)", b.Name(), b.Description())
}
