package datasets

import (
	"reflect"
	"testing"
)

// The validation split of each registered dataset is the one the reference
// validates on (dataloader.py: get_dataloaders: "test" for text8, lm1b and
// ag_news).
func TestReferenceValidationSplits(t *testing.T) {
	for _, name := range []string{"text8", "text8-crop"} {
		d, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][2]int{"train": {0, 90_000_000}, "valid": {95_000_000, -1}}
		if !reflect.DeepEqual(d.CharSplits, want) {
			t.Errorf("%s character splits %v, want %v (valid = the D3PM test slice)", name, d.CharSplits, want)
		}
	}
	for _, name := range []string{"lm1b", "ag_news"} {
		d, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if d.Splits["valid"] != "test" {
			t.Errorf("%s valid split %q, want test", name, d.Splits["valid"])
		}
	}
}
