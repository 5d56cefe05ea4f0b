package checkpoint

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParseConfig feeds config.json readers arbitrary bytes: parsing, the model
// sizes' check and building the diffusion model never panic, and a config that
// parses writes back to JSON that parses to the same config.
func FuzzParseConfig(f *testing.F) {
	seeds := []string{
		`{"model":{"arch":"dit","vocab_size":4096,"hidden_size":128,"n_heads":4,"n_blocks":2,"cond_dim":64,"length":64,"dropout":0,"mask_index":1},"method":{"parameterization":"subs","T":0,"time_conditioning":false,"noise":"loglinear"},"tokenizer":"tokenizer.json"}`,
		`{"model":{"arch":"dit","vocab_size":50258,"hidden_size":768,"n_heads":12,"n_blocks":12,"cond_dim":128,"length":1024,"mask_index":50257},"method":{"parameterization":"d3pm","T":1000,"noise":"cosine"},"objective":{"subs_masking":true}}`,
		`{"method":{"parameterization":"subs"},"objective":{"importance_sampling":true,"change_of_variables":true}}`,
		`{"objective":{"unknown_switch":1}}`,
		`{"objective":null}`, `{"model":{"vocab_size":-1}}`, `[]`, `{"model":{"n_heads":0,"hidden_size":7}}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := parseConfig(raw)
		if err != nil {
			return
		}
		if cfg.Model.Validate() == nil {
			_, _ = cfg.Diffusion()
		}
		again, err := json.Marshal(cfg)
		if err != nil {
			t.Fatalf("a parsed config does not marshal: %v", err)
		}
		back, err := parseConfig(again)
		if err != nil {
			t.Fatalf("config written back does not parse: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(cfg, back) {
			t.Fatalf("config changed through JSON:\n%+v\n%+v", cfg, back)
		}
	})
}
