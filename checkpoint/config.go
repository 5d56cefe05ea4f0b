package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/mdlm-go/mdlm/diffusion"
)

// The training objective in config.json: the reference's switches
// (configs/config.yaml's training.* and subs_masking, read in diffusion.py:
// Diffusion.__init__), so that eval and sample do what training did. A
// config.json without "objective" means diffusion.DefaultObjective, which is
// what every checkpoint written before the field existed was trained with,
// unless its manifest's params.objective says otherwise.

// configObjectiveField is the config.json key of Config.Objective.
const configObjectiveField = "objective"

// RecordedObjective is what Config.Objective holds for a run trained with o:
// nil for the reference's defaults (config.json stays as it was), else o.
func RecordedObjective(o diffusion.Objective) *diffusion.Objective {
	if o.IsDefault() {
		return nil
	}
	return &o
}

// TrainedObjective is the objective the config records: Objective, or
// diffusion.DefaultObjective when it records none.
func (c Config) TrainedObjective() diffusion.Objective {
	if c.Objective == nil {
		return diffusion.DefaultObjective()
	}
	return *c.Objective
}

// parseConfig reads a config.json. Unknown top-level keys are ignored as
// before; the objective is read strictly (an unknown switch is refused, since
// ignoring it would sample or evaluate another model than the one trained),
// fields it leaves out keep their defaults, and the switches are validated
// against the method.
func parseConfig(raw []byte) (Config, error) {
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return cfg, err
	}
	var keys struct {
		Objective json.RawMessage `json:"objective"`
	}
	if err := json.Unmarshal(raw, &keys); err != nil {
		return cfg, err
	}
	obj, err := decodeObjective(keys.Objective)
	if err != nil {
		return cfg, fmt.Errorf("%s: %w", configObjectiveField, err)
	}
	cfg.Objective = obj
	if err := cfg.validateObjective(); err != nil {
		return cfg, fmt.Errorf("%s: %w", configObjectiveField, err)
	}
	return cfg, nil
}

// decodeObjective decodes the raw "objective" value over the defaults; absent
// or null is nil.
func decodeObjective(raw json.RawMessage) (*diffusion.Objective, error) {
	if len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	o := diffusion.DefaultObjective()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("trailing data after the object")
	}
	return &o, nil
}

// validateObjective checks the recorded switches on their own and against the
// parameterization (diffusion.py: _validate_configuration); the noise schedule
// is checked when the model is built (Config.Diffusion).
func (c Config) validateObjective() error {
	if c.Objective == nil {
		return nil
	}
	if err := c.Objective.Validate(); err != nil {
		return err
	}
	if c.Objective.SubsMasking && c.Method.Parameterization != string(diffusion.D3PM) {
		return fmt.Errorf("subs_masking applies to parameterization d3pm only, not %q (diffusion.py: _validate_configuration)", c.Method.Parameterization)
	}
	return nil
}

// Objective is the objective a loaded checkpoint was trained with:
// config.json's, else its manifest's params.objective (checkpoints written
// before config.json recorded it), else the reference's defaults. A
// checkpoint whose two records disagree is refused.
func (c *Checkpoint) Objective() (diffusion.Objective, error) {
	fromManifest, err := diffusion.ObjectiveFromParams(c.Manifest.Params)
	if err != nil {
		return fromManifest, fmt.Errorf("checkpoint %s: manifest: %w", c.Dir, err)
	}
	if c.Config.Objective == nil {
		return fromManifest, nil
	}
	_, inManifest := c.Manifest.Params[diffusion.ObjectiveParam]
	if inManifest && fromManifest != *c.Config.Objective {
		return fromManifest, fmt.Errorf("checkpoint %s: %s records objective %+v, its manifest's params.%s %+v",
			c.Dir, ConfigFile, *c.Config.Objective, diffusion.ObjectiveParam, fromManifest)
	}
	return *c.Config.Objective, nil
}

// Model is the diffusion model a loaded checkpoint was trained as: its
// config's method with the objective of Objective applied.
func (c *Checkpoint) Model() (diffusion.Model, error) {
	obj, err := c.Objective()
	if err != nil {
		return diffusion.Model{}, err
	}
	cfg := c.Config
	cfg.Objective = &obj
	m, err := cfg.Diffusion()
	if err != nil {
		return m, fmt.Errorf("checkpoint %s: %w", c.Dir, err)
	}
	return m, nil
}
