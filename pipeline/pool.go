package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Task is one process of a stage: the whole stage, or shard Shard of Shards.
type Task struct {
	Stage         string
	Shard, Shards int // Shards 0: not split
}

func (t Task) String() string {
	if t.Shards == 0 {
		return t.Stage
	}
	return fmt.Sprintf("%s[%d/%d]", t.Stage, t.Shard, t.Shards)
}

// RunPool runs f's stages on up to jobs tasks at once: a stage starts when every
// stage it reads from has finished, and a stage with shards runs as that many
// tasks. spawn runs one task to completion (the CLI starts `mdlm run FILE
// --stage NAME`, which skips a cached stage, computes the stage's key once its
// inputs exist and updates the lock file under its file lock). After a failure
// nothing new starts; running tasks finish, and the error names every failed
// stage and those left out because of it.
func RunPool(ctx context.Context, f *File, jobs int, spawn func(context.Context, Task) error) error {
	if jobs < 1 {
		jobs = 1
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		done    = map[string]bool{}
		started = map[string]bool{}
		left    = map[string]int{} // tasks of a stage still running
		failed  = map[string]error{}
		wake    = make(chan struct{}, 1)
		slots   = make(chan struct{}, jobs)
	)
	ready := func(name string) bool {
		for _, from := range f.Stages[name].Inputs {
			if !done[from] {
				return false
			}
		}
		return true
	}
	for {
		mu.Lock()
		var launch []Task
		for _, name := range f.Order {
			if started[name] || len(failed) > 0 || !ready(name) {
				continue
			}
			started[name] = true
			st := f.Stages[name]
			if st.Shards > 1 {
				for i := 0; i < st.Shards; i++ {
					launch = append(launch, Task{Stage: name, Shard: i, Shards: st.Shards})
				}
			} else {
				launch = append(launch, Task{Stage: name})
			}
			left[name] = max(1, st.Shards)
		}
		finished := len(done)+len(failed) == len(f.Order) || (len(launch) == 0 && running(left) == 0)
		mu.Unlock()
		if finished {
			break
		}
		for _, t := range launch {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
			wg.Add(1)
			go func(t Task) {
				defer wg.Done()
				err := spawn(ctx, t)
				<-slots
				mu.Lock()
				if err != nil && failed[t.Stage] == nil {
					failed[t.Stage] = fmt.Errorf("%s: %w", t, err)
				}
				if left[t.Stage]--; left[t.Stage] == 0 && failed[t.Stage] == nil {
					done[t.Stage] = true
				}
				mu.Unlock()
				select {
				case wake <- struct{}{}:
				default:
				}
			}(t)
		}
		if len(launch) == 0 {
			select {
			case <-wake:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
		}
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	var msgs, skipped []string
	for _, name := range f.Order {
		if err := failed[name]; err != nil {
			msgs = append(msgs, err.Error())
		} else if !started[name] {
			skipped = append(skipped, name)
		}
	}
	sort.Strings(skipped)
	msg := "pipeline " + f.Name + ": " + strings.Join(msgs, "; ")
	if len(skipped) > 0 {
		msg += "; not run: " + strings.Join(skipped, ", ")
	}
	return fmt.Errorf("%s", msg)
}

func running(left map[string]int) int {
	n := 0
	for _, k := range left {
		n += k
	}
	return n
}
