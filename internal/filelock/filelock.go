// Package filelock holds advisory, exclusive, process-wide locks on files
// (flock(2)): one writer per output directory, per work directory, per lock
// file. A lock is released when its holder calls Unlock or exits, however it
// exits, so a killed process never leaves a stale lock behind. The lock file
// itself is left in place: removing it would let two processes hold locks on
// two different inodes of the same name.
//
// flock works across processes on one machine and on NFSv4 and Lustre mounts
// that forward it; it does not coordinate machines on a file system that
// ignores it, which is why publication stays atomic by rename besides.
package filelock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// Lock is one held lock.
type Lock struct {
	f    *os.File
	path string
}

// poll is how often Acquire retries a lock another process holds.
const poll = 200 * time.Millisecond

// ErrLocked is returned by TryAcquire when another process holds the lock.
var ErrLocked = errors.New("locked by another process")

// TryAcquire takes the exclusive lock on path (creating the file) without
// waiting; it returns ErrLocked when another holder has it.
func TryAcquire(path string) (*Lock, error) { return try(path, syscall.LOCK_EX) }

// TryAcquireShared takes a shared lock on path without waiting: any number of
// shared holders, no exclusive one. It returns ErrLocked while an exclusive
// holder has it.
func TryAcquireShared(path string) (*Lock, error) { return try(path, syscall.LOCK_SH) }

func try(path string, how int) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	switch err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); {
	case err == nil:
		return &Lock{f: f, path: path}, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, ErrLocked)
	default:
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
}

// Acquire takes the exclusive lock on path, waiting while another process
// holds it. waiting, if not nil, is called once when the first try finds the
// lock held (to say who waits for what). It returns ctx's error if ctx ends
// first.
func Acquire(ctx context.Context, path string, waiting func()) (*Lock, error) {
	return acquire(ctx, path, syscall.LOCK_EX, waiting)
}

// AcquireShared takes a shared lock on path, waiting while an exclusive
// holder has it; waiting and ctx as for Acquire.
func AcquireShared(ctx context.Context, path string, waiting func()) (*Lock, error) {
	return acquire(ctx, path, syscall.LOCK_SH, waiting)
}

func acquire(ctx context.Context, path string, how int, waiting func()) (*Lock, error) {
	for first := true; ; first = false {
		l, err := try(path, how)
		if !errors.Is(err, ErrLocked) {
			return l, err
		}
		if first && waiting != nil {
			waiting()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("lock %s: %w", path, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Path is the locked file's name.
func (l *Lock) Path() string { return l.path }

// Unlock releases the lock. It is safe to call on a nil Lock and more than once.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}
