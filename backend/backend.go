// Package backend chooses the GoMLX compute backend: the pure-Go backend on CPU by
// default, or whatever $GOMLX_BACKEND names (e.g. "xla:cuda" in a binary built with
// the xla tag). Automatic downloads of PJRT plugins are always disabled: the plugin
// comes from $PJRT_PLUGIN_LIBRARY_PATH.
package backend

import (
	"fmt"
	"os"
	"sync"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend" // the pure-Go backend, registered as "go"
)

// EnvVar is the variable GoMLX reads the backend configuration from.
const EnvVar = compute.ConfigEnvVar

var (
	once    sync.Once
	shared  compute.Backend
	initErr error
)

// Shared returns the process-wide backend, created on first use.
func Shared() (compute.Backend, error) {
	once.Do(func() { shared, initErr = New() })
	return shared, initErr
}

// DefaultConfig is the pure-Go backend with an unbounded worker pool.
//
// compute v0.1.2's default pool (one worker per core) deadlocks: when as many
// large matmuls run at once as there are workers, each holds a worker and waits in
// workerspool.Pool.Saturate for a free one (seen in a train step on 2 cores within
// a few steps). "go:ops_sequential" avoids it but made a tiny-model train step
// 1.8x slower (5.86 s vs 3.2 s); parallelism=-1 lets op tasks run as goroutines,
// keeps the default's speed and did not hang in 15 repeated benchmark runs (see README).
const DefaultConfig = "go:parallelism=-1"

// New creates a backend from $GOMLX_BACKEND, defaulting to DefaultConfig.
func New() (b compute.Backend, err error) {
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	config := os.Getenv(EnvVar)
	if config == "" {
		config = DefaultConfig
	}
	restore := quietStdout() // the Go backend prints its parallelism setting to stdout
	defer restore()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("compute backend %q (from $%s): %v; available: %v", config, EnvVar, r, compute.List())
		}
	}()
	b, err = compute.NewWithConfig(config)
	if err != nil {
		return nil, fmt.Errorf("compute backend %q (from $%s): %w; available: %v", config, EnvVar, err, compute.List())
	}
	return b, nil
}

// Describe is a one-line description for logs and manifests.
func Describe(b compute.Backend) string {
	return fmt.Sprintf("%s (%s)", b.Name(), b.Description())
}

// quietStdout sends os.Stdout to /dev/null until the returned func is called, so
// library chatter at backend creation never mixes into a command's output.
func quietStdout() func() {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return func() {}
	}
	saved := os.Stdout
	os.Stdout = devnull
	return func() {
		os.Stdout = saved
		devnull.Close()
	}
}
