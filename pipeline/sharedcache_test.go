package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
)

// testArtifact publishes a small text/v1 artifact at dir.
func testArtifact(t *testing.T, dir, body string) {
	t.Helper()
	_, err := artifact.Publish(dir, artifact.Manifest{Type: "text/v1"}, func(tmp string) error {
		return os.WriteFile(filepath.Join(tmp, "train.txt"), []byte(body), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestHostileSharedPushRace: several processes pushing the same output all
// succeed and leave one verified copy and no temporaries; a damaged copy is
// set aside, never deleted in place (issue 19, defect 6).
func TestHostileSharedPushRace(t *testing.T) {
	sp := reg["download"]
	dir := t.TempDir()
	out := filepath.Join(dir, "local", "text-0123456789abcdef")
	testArtifact(t, out, "some text\n")
	shared := filepath.Join(dir, "shared")
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = (&Engine{Shared: shared}).push(context.Background(), sp, out)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("pusher %d: %v", i, err)
		}
	}
	dst := filepath.Join(shared, filepath.Base(out))
	if outputDigest(sp, dst) == "" {
		t.Fatal("no verified copy in the shared cache")
	}
	entries, _ := os.ReadDir(shared)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary left: %s", e.Name())
		}
	}

	// A damaged copy is moved aside: a reader holding its files keeps them.
	if err := os.WriteFile(filepath.Join(dst, "train.txt"), []byte("damaged\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reader, err := os.Open(filepath.Join(dst, "train.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := (&Engine{Shared: shared}).push(context.Background(), sp, out); err != nil {
		t.Fatal(err)
	}
	if outputDigest(sp, dst) == "" {
		t.Error("the damaged copy was not replaced")
	}
	var aside []string
	entries, _ = os.ReadDir(shared)
	for _, e := range entries {
		if isSharedTemp(e.Name(), dst) {
			aside = append(aside, e.Name())
		}
	}
	if len(aside) != 1 || !strings.Contains(aside[0], asideInfix) {
		t.Fatalf("set aside: %v", aside)
	}
	if b, err := os.ReadFile(filepath.Join(shared, aside[0], "train.txt")); err != nil || string(b) != "damaged\n" {
		t.Errorf("the set-aside copy: %q %v", b, err)
	}

	// Later pushes remove temporaries and set-aside copies once stale, and
	// nothing else.
	old := time.Now().Add(-2 * StaleAfter)
	stale := filepath.Join(shared, "."+filepath.Base(dst)+".tmp-123")
	foreign := filepath.Join(shared, "."+filepath.Base(dst)+".tmp-notmine")
	for _, p := range []string{stale, foreign} {
		os.Mkdir(p, 0o755)
		os.Chtimes(p, old, old)
	}
	os.Chtimes(filepath.Join(shared, aside[0]), old, old)
	removeStaleShared(dst, time.Now())
	for p, want := range map[string]bool{stale: false, filepath.Join(shared, aside[0]): false, foreign: true, dst: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s: exists %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}

// TestHostileSharedPull: a pull into the local cache goes through a temporary
// and verifies; a verified local copy is never replaced.
func TestHostileSharedPull(t *testing.T) {
	sp := reg["download"]
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	name := "text-0123456789abcdef"
	testArtifact(t, filepath.Join(shared, name), "shared text\n")
	out := filepath.Join(dir, "local", name)
	e := &Engine{Shared: shared}
	var wg sync.WaitGroup
	digs := make([]string, 4)
	errs := make([]error, 4)
	for i := range digs {
		wg.Add(1)
		go func() { defer wg.Done(); digs[i], errs[i] = e.pull(context.Background(), sp, out, true) }()
	}
	wg.Wait()
	for i := range digs {
		if errs[i] != nil || digs[i] == "" || digs[i] != digs[0] {
			t.Errorf("puller %d: %q %v", i, digs[i], errs[i])
		}
	}
	if outputDigest(sp, out) != digs[0] {
		t.Error("the pulled copy does not verify")
	}
}
