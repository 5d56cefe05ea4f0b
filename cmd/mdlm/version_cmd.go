package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/alecthomas/kong"
)

// version is set at link time (-ldflags "-X main.version=v0.1.0"); otherwise the
// module version or VCS revision from the build info is used.
var version = ""

// VersionCmd prints versions.
type VersionCmd struct{}

// Run prints the tool version and the versions of its compute dependencies.
func (VersionCmd) Run(kctx *kong.Context) error {
	fmt.Fprintf(kctx.Stdout, "mdlm %s (%s, %s/%s)\n", toolVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			switch dep.Path {
			case "github.com/gomlx/gomlx", "github.com/gomlx/compute", "github.com/gomlx/go-xla":
				fmt.Fprintf(kctx.Stdout, "  %s %s\n", dep.Path, dep.Version)
			}
		}
	}
	return nil
}

func toolVersion() string {
	if version != "" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}
