//go:build !linux

package artifact

import "errors"

func exchange(a, b string) error { return errors.ErrUnsupported }
