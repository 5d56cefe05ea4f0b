package pipeline

import (
	"context"
	"errors"
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
	p := &pool{f: f, spawn: spawn, done: map[string]bool{}, started: map[string]bool{}, left: map[string]int{},
		failed: map[string]error{}, wake: make(chan struct{}, 1), slots: make(chan struct{}, max(jobs, 1))}
	for {
		launch, finished := p.next()
		if finished {
			break
		}
		if err := p.launch(ctx, launch); err != nil {
			p.wg.Wait()
			return err
		}
		if len(launch) == 0 {
			select {
			case <-p.wake:
			case <-ctx.Done():
				p.wg.Wait()
				return ctx.Err()
			}
		}
	}
	p.wg.Wait()
	return p.err()
}

// pool is the state of one RunPool.
type pool struct {
	f       *File
	spawn   func(context.Context, Task) error
	mu      sync.Mutex // guards the maps
	wg      sync.WaitGroup
	done    map[string]bool
	started map[string]bool
	left    map[string]int // tasks of a stage still running
	failed  map[string]error
	wake    chan struct{} // a task ended
	slots   chan struct{} // one per running task
}

// next marks the stages whose inputs have all finished as started and
// returns their tasks; finished is true when nothing is left to wait for.
func (p *pool) next() (launch []Task, finished bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, name := range p.f.Order {
		if p.started[name] || len(p.failed) > 0 || !p.ready(name) {
			continue
		}
		p.started[name] = true
		st := p.f.Stages[name]
		if st.Shards > 1 {
			for i := 0; i < st.Shards; i++ {
				launch = append(launch, Task{Stage: name, Shard: i, Shards: st.Shards})
			}
		} else {
			launch = append(launch, Task{Stage: name})
		}
		p.left[name] = max(1, st.Shards)
	}
	finished = len(p.done)+len(p.failed) == len(p.f.Order) || (len(launch) == 0 && running(p.left) == 0)
	return launch, finished
}

func (p *pool) ready(name string) bool {
	for _, from := range p.f.Stages[name].Inputs {
		if !p.done[from] {
			return false
		}
	}
	return true
}

// launch starts each task once a slot is free.
func (p *pool) launch(ctx context.Context, tasks []Task) error {
	for _, t := range tasks {
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		p.wg.Add(1)
		go p.run(ctx, t)
	}
	return nil
}

// run runs one task, records how it ended and wakes the scheduler.
func (p *pool) run(ctx context.Context, t Task) {
	defer p.wg.Done()
	err := p.spawn(ctx, t)
	<-p.slots
	p.mu.Lock()
	if err != nil && p.failed[t.Stage] == nil {
		p.failed[t.Stage] = fmt.Errorf("%s: %w", t, err)
	}
	if p.left[t.Stage]--; p.left[t.Stage] == 0 && p.failed[t.Stage] == nil {
		p.done[t.Stage] = true
	}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// err names every failed stage and the stages not run because of them.
func (p *pool) err() error {
	if len(p.failed) == 0 {
		return nil
	}
	var msgs, skipped []string
	for _, name := range p.f.Order {
		if err := p.failed[name]; err != nil {
			msgs = append(msgs, err.Error())
		} else if !p.started[name] {
			skipped = append(skipped, name)
		}
	}
	sort.Strings(skipped)
	msg := "pipeline " + p.f.Name + ": " + strings.Join(msgs, "; ")
	if len(skipped) > 0 {
		msg += "; not run: " + strings.Join(skipped, ", ")
	}
	return errors.New(msg)
}

func running(left map[string]int) int {
	n := 0
	for _, k := range left {
		n += k
	}
	return n
}
