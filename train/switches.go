package train

import (
	"fmt"

	"github.com/mdlm-go/mdlm/diffusion"
	"github.com/mdlm-go/mdlm/optim"
)

// validateSwitches checks the reference's training switches and the AdamW
// hyperparameters before anything is opened, naming the flags
// (diffusion.py: _validate_configuration; torch.optim.AdamW's checks).
func validateSwitches(cfg Config) error {
	if !(cfg.SamplingEps > 0 && cfg.SamplingEps < 1) {
		return fmt.Errorf("--sampling-eps %g: want 0 < eps < 1 (t = (1 - eps)u + eps must stay above 0, where the loss weight 1/t is infinite)", cfg.SamplingEps)
	}
	if cfg.ImportanceSampling && cfg.ChangeOfVariables {
		return fmt.Errorf("--importance-sampling and --change-of-variables cannot both be set (diffusion.py: _validate_configuration)")
	}
	if (cfg.ImportanceSampling || cfg.ChangeOfVariables) && cfg.Parameterization == "sedd" {
		return fmt.Errorf("--parameterization sedd allows neither --importance-sampling nor --change-of-variables (diffusion.py: _validate_configuration)")
	}
	if cfg.ImportanceSampling || cfg.ChangeOfVariables {
		if cfg.Noise != "loglinear" && cfg.Noise != "linear" {
			return fmt.Errorf("--noise %s: --importance-sampling and --change-of-variables need the loglinear or linear schedule (the reference's only schedules with sigma_min and sigma_max)", cfg.Noise)
		}
	}
	if cfg.SubsMasking && cfg.Parameterization != string(diffusion.D3PM) {
		return fmt.Errorf("--subs-masking applies to --parameterization d3pm only, not %s (diffusion.py: _validate_configuration)", cfg.Parameterization)
	}
	if cfg.InitOptimizer && cfg.Init == "" {
		return fmt.Errorf("--init-optimizer continues the optimizer of the --init checkpoint: give --init")
	}
	adam := optim.AdamW{LR: cfg.LR, Beta1: cfg.Beta1, Beta2: cfg.Beta2, Eps: cfg.AdamEps, WeightDecay: cfg.WeightDecay}
	if err := adam.Validate(); err != nil {
		return fmt.Errorf("--lr, --beta1, --beta2, --adam-eps, --weight-decay: %w", err)
	}
	return nil
}
