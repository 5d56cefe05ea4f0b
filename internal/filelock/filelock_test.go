package filelock

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryAcquire(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryAcquire(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second TryAcquire: got %v, want ErrLocked", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := Acquire(ctx, path, func() { waited = true }); !errors.Is(err, context.DeadlineExceeded) || !waited {
		t.Fatalf("Acquire while held: err %v, waited %v", err, waited)
	}
	done := make(chan error, 1)
	go func() {
		l, err := Acquire(context.Background(), path, nil)
		if err == nil {
			err = l.Unlock()
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := a.Unlock(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	if err := a.Unlock(); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
}

// Shared holders coexist and keep an exclusive one out until all have gone.
func TestShared(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	a, err := TryAcquireShared(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := TryAcquireShared(path)
	if err != nil {
		t.Fatalf("second shared holder: %v", err)
	}
	if _, err := TryAcquire(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive while shared held: %v", err)
	}
	a.Unlock()
	if _, err := TryAcquire(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("exclusive while one shared held: %v", err)
	}
	b.Unlock()
	x, err := TryAcquire(path)
	if err != nil {
		t.Fatalf("exclusive after shared released: %v", err)
	}
	if _, err := TryAcquireShared(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("shared while exclusive held: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := AcquireShared(ctx, path, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AcquireShared while exclusive held: %v", err)
	}
	x.Unlock()
}
