package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/train"
)

// TestTrainSurvivesSIGKILL builds the binary, kills a training run with SIGKILL
// right after it logged a step (between checkpoints), resumes it, and requires
// exactly the losses and the published checkpoint of an uninterrupted run;
// then the same with SIGTERM, which must write a checkpoint at the step it
// stopped (in <out>.work) and exit non-zero without publishing.
func TestTrainSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the SIGKILL test (builds the binary)")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	src := filepath.Join(dir, "corpus.txt")
	os.WriteFile(src, []byte(strings.Repeat("In the beginning God created the heaven and the earth.\n", 60)), 0o644)
	run := func(args ...string) string {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("mdlm %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("download", src, "--hold-out", "10", "-o", filepath.Join(dir, "text"))
	run("tokenize", filepath.Join(dir, "text"), "-o", filepath.Join(dir, "tokens"), "--tokenizer", "bytes")
	run("pack", filepath.Join(dir, "tokens"), "-o", filepath.Join(dir, "packed"), "--length", "32")
	train := func(out string, extra ...string) *exec.Cmd {
		args := append([]string{"train", "--data", filepath.Join(dir, "packed"), "-o", out, "--steps", "12", "--batch", "4",
			"--hidden", "16", "--heads", "2", "--blocks", "1", "--cond", "8", "--warmup", "2", "--log-every", "1",
			"--eval-every", "6", "--eval-blocks", "4", "--checkpoint-every", "4", "--seed", "3"}, extra...)
		return exec.Command(bin, args...)
	}
	full := filepath.Join(dir, "full")
	if out, err := train(full).CombinedOutput(); err != nil {
		t.Fatalf("uninterrupted run: %v\n%s", err, out)
	}

	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		killed := filepath.Join(dir, "killed-"+sig.String())
		cmd := train(killed)
		stderr, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "msg=step step=6 ") { // after checkpoint 4, before checkpoint 8
				cmd.Process.Signal(sig)
				break
			}
		}
		go func() {
			for sc.Scan() {
			}
		}()
		err := cmd.Wait()
		time.Sleep(50 * time.Millisecond)
		if _, err := os.Stat(killed); !os.IsNotExist(err) {
			t.Errorf("%s: the interrupted run published its output", sig)
		}
		if sig == syscall.SIGTERM {
			last, _ := os.ReadFile(filepath.Join(killed+".work", "checkpoints", "last"))
			if err == nil || !strings.HasPrefix(string(last), "step-0000000") || strings.TrimSpace(string(last)) == "step-00000004" {
				t.Errorf("SIGTERM: exit %v, last checkpoint %q: want a failed exit with a checkpoint past step 4", err, last)
			}
		}
		if out, err := train(killed).CombinedOutput(); err != nil {
			t.Fatalf("resume after %s: %v\n%s", sig, err, out)
		}
		if a, b := stepLosses(t, full), stepLosses(t, killed); len(a) != 12 || !reflect.DeepEqual(a, b) {
			t.Errorf("losses differ after %s + resume:\nuninterrupted %v\nresumed       %v", sig, a, b)
		}
		ma, _ := artifact.Read(full, artifact.CheckpointType)
		mb, _ := artifact.Read(killed, artifact.CheckpointType)
		if ma.Digest() != mb.Digest() {
			t.Errorf("after %s + resume the checkpoint differs from an uninterrupted run's", sig)
		}
	}
}

func stepLosses(t *testing.T, run string) map[int]float64 {
	t.Helper()
	ms, err := train.ReadMetrics(run)
	if err != nil {
		t.Fatal(err)
	}
	return train.Losses(ms)
}
