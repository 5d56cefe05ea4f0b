package artifact

import "golang.org/x/sys/unix"

// exchange swaps two directory entries atomically (renameat2 RENAME_EXCHANGE),
// so the output path always names a complete artifact, old or new.
func exchange(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}
