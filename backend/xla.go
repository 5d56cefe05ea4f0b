//go:build xla

package backend

// The XLA (PJRT) backend, for GPUs: build with -tags xla (needs cgo) and run with
// GOMLX_BACKEND=xla:cuda and PJRT_PLUGIN_LIBRARY_PATH pointing at the folder that
// holds pjrt_c_api_cuda_plugin.so. Plugins are never downloaded at run time.
import _ "github.com/gomlx/go-xla/compute/xla"
