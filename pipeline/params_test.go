package pipeline

import (
	"context"
	"io"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/artifact"
	"github.com/mdlm-go/mdlm/stage"
)

// resolveParams fills every keyed flag with its default and writes each value
// as the flag's type decodes it, so spellings of one value are one key.
func TestResolveParams(t *testing.T) {
	cases := []struct {
		name, kind string
		with       map[string]any
		want       map[string]any // a subset of the resolved params
	}{
		{"int default", "train", nil, map[string]any{"batch": "16", "steps": "1000", "seed": "1"}},
		{"int as float", "train", map[string]any{"batch": 16.0}, map[string]any{"batch": "16"}},
		{"int as text", "train", map[string]any{"batch": "0x10"}, map[string]any{"batch": "16"}},
		{"float spellings", "train", map[string]any{"lr": "0.0003", "clip": 1}, map[string]any{"lr": "0.0003", "clip": "1"}},
		{"float default 3e-4", "train", nil, map[string]any{"lr": "0.0003", "dropout": "0.1"}},
		{"negatable bool default", "train", nil, map[string]any{"antithetic": "true"}},
		{"bool spellings", "train", map[string]any{"antithetic": "no"}, map[string]any{"antithetic": "false"}},
		{"bool value", "train", map[string]any{"antithetic": false}, map[string]any{"antithetic": "false"}},
		{"string default", "download", nil, map[string]any{"revision": "main", "text-split": "line", "dataset": ""}},
		{"int with no default", "download", nil, map[string]any{"hold-out": "0"}},
		{"positional list default", "download", nil, map[string]any{"sources": []string{}}},
		{"positional list kept whole", "download", map[string]any{"sources": []any{"a,b.txt", "c.txt"}},
			map[string]any{"sources": []string{"a,b.txt", "c.txt"}}},
		{"path as written", "download", map[string]any{"sources": []any{"./x/../c.txt"}}, map[string]any{"sources": []string{"./x/../c.txt"}}},
	}
	for _, c := range cases {
		got, err := resolveParams(reg[c.kind], c.with)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		for k, want := range c.want {
			if !reflect.DeepEqual(got[k], want) {
				t.Errorf("%s: %s = %#v, want %#v", c.name, k, got[k], want)
			}
		}
	}
}

// Keys left out: cosmetic flags, executor flags, the output, and an input's
// flag unless `with:` gives it.
func TestResolveParamsLeavesOut(t *testing.T) {
	got, err := resolveParams(reg["tokenize"], map[string]any{"workers": 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"workers", "shard-index", "num-shards", "out", "text"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s is keyed: %v", k, got)
		}
	}
	if _, ok := got["tokenizer"]; !ok {
		t.Errorf("tokenizer (no default) is not keyed: %v", got)
	}
	got, _ = resolveParams(reg["eval"], map[string]any{"checkpoint": "ck"})
	if got["checkpoint"] != "ck" {
		t.Errorf("an input's flag given a path under with: is not keyed as written: %v", got)
	}
}

// A value the flag's type cannot decode is an error naming the with: key,
// as the stage's command line would refuse it.
func TestResolveParamsRefuses(t *testing.T) {
	cases := []struct {
		kind string
		with map[string]any
		want string
	}{
		{"train", map[string]any{"batch": "sixteen"}, `with.batch: "sixteen": want a whole number`},
		{"train", map[string]any{"batch": 16.5}, `with.batch: "16.5"`},
		{"train", map[string]any{"batch": []any{1, 2}}, "with.batch: a list of 2 values"},
		{"train", map[string]any{"lr": "fast"}, `with.lr: "fast": want a number`},
		{"train", map[string]any{"antithetic": "maybe"}, `with.antithetic: "maybe": want true or false`},
		{"train", map[string]any{"seed": "99999999999999999999"}, "with.seed"},
	}
	for _, c := range cases {
		_, err := resolveParams(reg[c.kind], c.with)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.with, err, c.want)
		}
	}
}

// The key covers resolved values: an explicit default is the omitted flag,
// and another value is another key (issue 21).
func TestCacheKeyResolved(t *testing.T) {
	in := map[string]string{"data": "sha256:aaaa"}
	key := func(kind string, with map[string]any) string { k, _ := CacheKey(reg[kind], with, in); return k }
	cases := []struct {
		kind       string
		a, b       map[string]any
		equal      bool
		whatDiffer string
	}{
		{"train", nil, map[string]any{"batch": 16}, true, "explicit default batch 16"},
		{"train", nil, map[string]any{"batch": "16", "lr": 3e-4, "antithetic": true, "ema": 0.9999}, true, "explicit defaults, other spellings"},
		{"train", map[string]any{"batch": 16.0}, map[string]any{"batch": 16}, true, "16.0 and 16"},
		{"download", nil, map[string]any{"revision": "main", "hold-out": 0}, true, "explicit string and int defaults"},
		{"train", nil, map[string]any{"batch": 32}, false, "batch 32"},
		{"train", nil, map[string]any{"antithetic": false}, false, "antithetic false"},
		{"download", nil, map[string]any{"hold-out": 60}, false, "hold-out 60"},
		{"train", nil, map[string]any{"log-every": 1}, true, "a cosmetic flag"},
	}
	for _, c := range cases {
		if got := key(c.kind, c.a) == key(c.kind, c.b); got != c.equal {
			t.Errorf("%s %s: keys equal %v, want %v", c.kind, c.whatDiffer, got, c.equal)
		}
	}
}

// kindsOptions are a test stage's flags of every type resolveParams
// normalises, and of types it keeps as written.
type kindsOptions struct {
	Count   int           `default:"16"`
	Small   int8          ``
	Big     uint64        ``
	Rate    float32       `default:"3e-4"`
	Wait    time.Duration `default:"90s"`
	On      bool          `default:"true" negatable:""`
	Off     bool          ``
	Sizes   []int         `default:"1,2"`
	Names   []string      `sep:"none"`
	Dir     string        `type:"path"`
	Level   level         `default:"low"`
	Workers int           `cosmetic:""`
	Paths   []string      `arg:"" optional:""`
	Out     string        `short:"o" required:"" output:""`
}

func (*kindsOptions) Build(context.Context, *stage.Env, stage.Dirs) (artifact.Manifest, error) {
	return artifact.Manifest{}, nil
}

// level is decoded by its own UnmarshalText: its text is kept as written.
type level int

func (l *level) UnmarshalText(b []byte) error {
	*l = map[string]level{"low": 0, "high": 1}[string(b)]
	return nil
}

// kindsSpec is the test stage's Spec.
func kindsSpec(t testing.TB) stage.Spec {
	sp, err := stage.SpecOf(stage.Def{Kind: "kinds", Version: 1, Output: "text/v1",
		New: func() stage.Options { return &kindsOptions{} }})
	if err != nil {
		t.Fatal(err)
	}
	return sp
}

func TestResolveParamsTypes(t *testing.T) {
	sp := kindsSpec(t)
	defaults := map[string]any{"count": "16", "small": "0", "big": "0", "rate": "0.0003", "wait": "1m30s", "on": "true",
		"off": "false", "sizes": []string{"1", "2"}, "names": []string{}, "dir": "", "level": "low", "paths": []string{}}
	got, err := resolveParams(sp, nil)
	if err != nil || !reflect.DeepEqual(got, defaults) {
		t.Errorf("defaults: %v, %v\nwant %v", got, err, defaults)
	}
	cases := []struct {
		with map[string]any
		want map[string]any
	}{
		{map[string]any{"count": "0x10", "small": -8, "big": "0o17"}, map[string]any{"count": "16", "small": "-8", "big": "15"}},
		{map[string]any{"rate": 0.0003, "wait": "1m30s"}, map[string]any{"rate": "0.0003", "wait": "1m30s"}},
		{map[string]any{"wait": "90000ms", "on": "YES", "off": 1}, map[string]any{"wait": "1m30s", "on": "true", "off": "true"}},
		{map[string]any{"sizes": "3,4"}, map[string]any{"sizes": []string{"3", "4"}}},
		{map[string]any{"sizes": []any{3, "4,5"}}, map[string]any{"sizes": []string{"3", "4", "5"}}},
		{map[string]any{"names": "a,b"}, map[string]any{"names": []string{"a,b"}}},
		{map[string]any{"dir": "./x/../y", "level": "high"}, map[string]any{"dir": "./x/../y", "level": "high"}},
	}
	for _, c := range cases {
		got, err := resolveParams(sp, c.with)
		if err != nil {
			t.Errorf("%v: %v", c.with, err)
			continue
		}
		for k, want := range c.want {
			if !reflect.DeepEqual(got[k], want) {
				t.Errorf("%v: %s = %#v, want %#v", c.with, k, got[k], want)
			}
		}
	}
	for _, with := range []map[string]any{{"small": 200}, {"big": -1}, {"wait": 5}, {"sizes": "1,x"}} {
		if _, err := resolveParams(sp, with); err == nil {
			t.Errorf("%v accepted", with)
		}
	}
}

// resolveParams agrees with kong: the values it resolves are the values the
// stage's command line parses from the same with: (see kongValues).
func TestResolveParamsAgreesWithKong(t *testing.T) {
	sp := kindsSpec(t)
	for _, with := range []map[string]any{
		nil,
		{"count": 7, "rate": 1e-5, "wait": "2h", "on": false, "sizes": []any{1, "2,3"}, "names": []any{"x,y", "z"}},
		{"small": "-0x7f", "big": "1_000", "off": "yes", "paths": []any{"a", "b,c"}},
	} {
		if !checkAgainstKong(t, sp, with) {
			t.Errorf("kong refused %#v", with)
		}
	}
}

// checkAgainstKong parses the command line Args renders for with through
// kong and compares what it parsed with resolveParams; it reports whether
// kong parsed it. A list given to a one-value flag is refused by
// resolveParams although kong takes its last value; what kong refuses (a
// positional that looks like a flag) the stage itself would refuse.
func checkAgainstKong(t *testing.T, sp stage.Spec, with map[string]any) bool {
	t.Helper()
	params, rerr := resolveParams(sp, with)
	opts := &kindsOptions{}
	k, err := kong.New(opts, kong.Name("kinds"), kong.Exit(func(int) {}), kong.Writers(io.Discard, io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Parse(Args(sp, nil, with, "out")[1:]); err != nil {
		return false
	}
	if rerr != nil {
		if !strings.Contains(rerr.Error(), "a list of") {
			t.Fatalf("%#v: kong parses it, resolveParams says %v", with, rerr)
		}
		return true
	}
	for name, want := range kongValues(opts) {
		if !reflect.DeepEqual(params[name], want) {
			t.Errorf("%#v: %s resolved %#v, kong parsed %#v", with, name, params[name], want)
		}
	}
	return true
}

// kongValues writes what kong parsed into opts as resolveParams writes
// values (dir and level, kept as written, are left out).
func kongValues(o *kindsOptions) map[string]any {
	ints := func(xs []int) []string {
		out := []string{}
		for _, x := range xs {
			out = append(out, strconv.Itoa(x))
		}
		return out
	}
	strs := func(xs []string) []string { return append([]string{}, xs...) }
	return map[string]any{"count": strconv.Itoa(o.Count), "small": strconv.Itoa(int(o.Small)),
		"big": strconv.FormatUint(o.Big, 10), "rate": strconv.FormatFloat(float64(o.Rate), 'g', -1, 32),
		"wait": o.Wait.String(), "on": strconv.FormatBool(o.On), "off": strconv.FormatBool(o.Off),
		"sizes": ints(o.Sizes), "names": strs(o.Names), "paths": strs(o.Paths)}
}

// splitEscaped splits as kong splits a list flag's value.
func TestSplitEscaped(t *testing.T) {
	cases := []struct {
		in   string
		sep  rune
		want []string
	}{
		{"a,b", ',', []string{"a", "b"}},
		{"", ',', nil},
		{",a,,b,", ',', []string{"", "a", "", "b"}},
		{`a\,b,c`, ',', []string{"a,b", "c"}},
		{`a\b\`, ',', []string{`a\b\`}},
		{"a,b", -1, []string{"a,b"}},
	}
	for _, c := range cases {
		got := splitEscaped(c.in, c.sep)
		if !reflect.DeepEqual(got, c.want) || !reflect.DeepEqual(got, kong.SplitEscaped(c.in, c.sep)) {
			t.Errorf("splitEscaped(%q) = %q, want %q (kong: %q)", c.in, got, c.want, kong.SplitEscaped(c.in, c.sep))
		}
	}
	long := strings.Repeat("ab,", 1<<20)
	start := time.Now()
	if n := len(splitEscaped(long, ',')); n != 1<<20 {
		t.Errorf("%d elements", n)
	}
	if d := time.Since(start); d > 20*time.Second { // linear: well under a second; quadratic: hours
		t.Errorf("splitting 3 MiB took %s", d)
	}
}
