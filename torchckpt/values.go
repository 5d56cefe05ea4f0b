package torchckpt

// Pickled values: the generic objects classes Go does not know become, and
// the bounded walks that read dicts, omegaconf configs and lists out of them.

import (
	"fmt"

	"github.com/nlpodyssey/gopickle/types"
)

// pyClass is a Python class Go does not know; calling it makes a pyObject.
type pyClass struct{ Module, Name string }

func (c *pyClass) String() string                 { return c.Module + "." + c.Name }
func (c *pyClass) Call(args ...any) (any, error)  { return &pyObject{Class: c, Args: args}, nil }
func (c *pyClass) PyNew(args ...any) (any, error) { return &pyObject{Class: c, Args: args}, nil }

// pyObject is an instance of a pyClass: its constructor arguments, the state
// given to __setstate__ or its __dict__, and any dict items or list elements
// the pickle added to it (a dict or list subclass).
type pyObject struct {
	Class *pyClass
	Args  []any
	State any
	Items *types.Dict
	List  []any
}

func (o *pyObject) PySetState(state any) error { o.State = state; return nil }
func (o *pyObject) Set(k, v any) {
	if o.Items == nil {
		o.Items = types.NewDict()
	}
	o.Items.Set(k, v)
}
func (o *pyObject) Append(v any) { o.List = append(o.List, v) }

const (
	// maxDepth bounds the nesting of pickled values the reader walks
	// (itemGet, eachItem, plain): a hostile pickle can nest lists millions
	// deep, or make a value contain itself.
	maxDepth = 1000
	// maxSteps bounds the values one walk visits: a value shared at every
	// level of a nest would otherwise be visited exponentially often. A
	// Hydra config has hundreds of values.
	maxSteps = 1 << 20
)

// walker walks pickled values within maxDepth and maxSteps.
type walker struct{ steps int }

func (w *walker) step(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("values nested deeper than %d", maxDepth)
	}
	if w.steps++; w.steps > maxSteps {
		return fmt.Errorf("more than %d values visited (shared or cyclic references)", maxSteps)
	}
	return nil
}

// itemGet looks a key up in a dict, an ordered dict or a generic object's
// items, state or attributes.
func (w *walker) itemGet(v any, key string, depth int) (any, bool) {
	var found any
	ok := false
	w.eachItem(v, depth, func(k, val any) error {
		if s, _ := k.(string); s == key && !ok {
			found, ok = val, true
		}
		return nil
	})
	return found, ok
}

// eachItem calls fn for every key/value of a pickled mapping.
func (w *walker) eachItem(v any, depth int, fn func(k, v any) error) error {
	if err := w.step(depth); err != nil {
		return err
	}
	switch m := v.(type) {
	case *types.Dict:
		for _, e := range *m {
			if err := fn(e.Key, e.Value); err != nil {
				return err
			}
		}
	case *types.OrderedDict:
		for e := m.List.Front(); e != nil; e = e.Next() {
			entry := e.Value.(*types.OrderedDictEntry)
			if err := fn(entry.Key, entry.Value); err != nil {
				return err
			}
		}
	case *pyObject:
		if m.Items != nil {
			if err := w.eachItem(m.Items, depth+1, fn); err != nil {
				return err
			}
		}
		if m.State != nil {
			return w.eachItem(m.State, depth+1, fn)
		}
	default:
		return fmt.Errorf("%T is not a mapping", v)
	}
	return nil
}

// plain turns pickled values into Go maps, slices and scalars. omegaconf's
// DictConfig and ListConfig keep their values under _content in their state,
// each leaf an AnyNode (or a typed node) whose state holds _val.
func (w *walker) plain(v any, depth int) (any, error) {
	if err := w.step(depth); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case *pyObject:
		if content, ok := w.itemGet(x, "_content", depth+1); ok {
			return w.plain(content, depth+1)
		}
		if val, ok := w.itemGet(x, "_val", depth+1); ok {
			return w.plain(val, depth+1)
		}
		if x.List != nil {
			return w.plainSeq(len(x.List), func(i int) any { return x.List[i] }, depth+1)
		}
		return w.plainMap(x, depth+1)
	case *types.Dict, *types.OrderedDict:
		return w.plainMap(x, depth+1)
	case *types.List:
		return w.plainSeq(x.Len(), x.Get, depth+1)
	case *types.Tuple:
		return w.plainSeq(x.Len(), x.Get, depth+1)
	}
	return v, nil
}

func (w *walker) plainMap(v any, depth int) (map[string]any, error) {
	out := map[string]any{}
	err := w.eachItem(v, depth, func(k, val any) error {
		s, ok := k.(string)
		if !ok {
			return nil
		}
		p, err := w.plain(val, depth+1)
		out[s] = p
		return err
	})
	return out, err
}

func (w *walker) plainSeq(n int, get func(int) any, depth int) ([]any, error) {
	out := make([]any, n)
	for i := range out {
		p, err := w.plain(get(i), depth)
		if err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}
