package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/alecthomas/kong"
	"github.com/gomlx/compute"

	"github.com/mdlm-go/mdlm/backend"
)

// DoctorCmd is `mdlm doctor`.
type DoctorCmd struct{}

// Run reports the compute setup and how to enable a GPU.
func (DoctorCmd) Run(kctx *kong.Context) error {
	out := kctx.Stdout
	fmt.Fprintf(out, "mdlm %s, %s %s/%s, %d CPUs\n", toolVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	simd := false
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "GOEXPERIMENT" && strings.Contains(s.Value, "simd") {
				simd = true
			}
		}
	}
	fmt.Fprintf(out, "built with GOEXPERIMENT=simd: %v", simd)
	if !simd {
		fmt.Fprint(out, "  (rebuild with GOEXPERIMENT=simd: the CPU backend's fast matmul kernels need it)")
	}
	fmt.Fprintln(out)
	fmt.Fprintf(out, "backends compiled in: %v\n", compute.List())
	fmt.Fprintf(out, "$%s=%q  $PJRT_PLUGIN_LIBRARY_PATH=%q\n", backend.EnvVar, os.Getenv(backend.EnvVar), os.Getenv("PJRT_PLUGIN_LIBRARY_PATH"))
	b, err := backend.Shared()
	if err != nil {
		fmt.Fprintf(out, "backend: ERROR %v\n", err)
	} else {
		fmt.Fprintf(out, "backend in use: %s\n", backend.Describe(b))
		for i := 0; i < b.NumDevices(); i++ {
			fmt.Fprintf(out, "  device %d: %s\n", i, b.DeviceDescription(compute.DeviceNum(i)))
		}
	}
	fmt.Fprintln(out, "GPU: build with `GOEXPERIMENT=simd go build -tags xla ./cmd/mdlm` (cgo), then run with")
	fmt.Fprintln(out, "  GOMLX_BACKEND=xla:cuda PJRT_PLUGIN_LIBRARY_PATH=<dir with pjrt_c_api_cuda_plugin.so>")
	fmt.Fprintln(out, "  (nothing is downloaded at run time; GOMLX_NO_AUTO_INSTALL is always set).")
	return nil
}
