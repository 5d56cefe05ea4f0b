package diffusion

import (
	"encoding/json"
	"testing"
)

// FuzzObjectiveFromParams: a checkpoint manifest's params (untrusted JSON)
// never panic the reader, and what it accepts validates and reads back the
// same after being written as train writes it.
func FuzzObjectiveFromParams(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"step": 3}`, `{"objective": {"importance_sampling": true}}`,
		`{"objective": {"antithetic": false, "sampling_eps": 0.01, "random_crop": true}}`,
		`{"objective": {"sampling_eps": 1e400}}`, `{"objective": {"x": 1}}`, `{"objective": [1, 2]}`,
		`{"objective": null}`, `{"objective": {"subs_masking": "yes"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var params map[string]any
		if json.Unmarshal(raw, &params) != nil {
			return
		}
		o, err := ObjectiveFromParams(params)
		if err != nil {
			return
		}
		if err := o.Validate(); err != nil {
			t.Fatalf("accepted %+v from %s, which does not validate: %v", o, raw, err)
		}
		back, err := ObjectiveFromParams(map[string]any{ObjectiveParam: o})
		if err != nil || back != o {
			t.Fatalf("%+v read back as %+v (err %v)", o, back, err)
		}
	})
}
