package sample

import (
	"fmt"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/mdlm-go/mdlm/sampler"
)

// NoiseRemoval is the --noise-removal flag: the reference's boolean
// (sampling.noise_removal: --noise-removal, --no-noise-removal,
// --noise-removal=false, a pipeline's `noise-removal: false` all parse as
// before) that also names DUO's modes: --noise-removal=greedy (or
// `--noise-removal greedy`) and --noise-removal=ancestral.
type NoiseRemoval string

// The values of NoiseRemoval, as stored after parsing.
const (
	NoiseRemovalOn        NoiseRemoval = "true"  // the reference's final step
	NoiseRemovalOff       NoiseRemoval = "false" // none
	NoiseRemovalGreedy    NoiseRemoval = "greedy"
	NoiseRemovalAncestral NoiseRemoval = "ancestral"
)

// ParseNoiseRemoval reads a flag or pipeline value: a boolean as kong reads
// one (true, 1, yes, false, 0, no), none (DUO's name for off), greedy or
// ancestral.
func ParseNoiseRemoval(v string) (NoiseRemoval, error) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes":
		return NoiseRemovalOn, nil
	case "false", "0", "no", "none":
		return NoiseRemovalOff, nil
	case "greedy":
		return NoiseRemovalGreedy, nil
	case "ancestral":
		return NoiseRemovalAncestral, nil
	}
	return "", fmt.Errorf("--noise-removal %q: want true, false, greedy or ancestral", v)
}

// IsBool makes the flag take no value (--noise-removal) and accept
// --no-noise-removal, as the boolean it replaces.
func (n *NoiseRemoval) IsBool() bool { return true }

// Decode implements kong.MapperValue: a value after = (or kong's false for
// --no-noise-removal), a mode name as the next argument, or nothing (on).
func (n *NoiseRemoval) Decode(ctx *kong.DecodeContext) error {
	tok := ctx.Scan.Peek()
	switch {
	case tok.Type == kong.FlagValueToken:
		tok = ctx.Scan.Pop()
	case (tok.Type == kong.UntypedToken || tok.Type == kong.PositionalArgumentToken) && isMode(tok.Value):
		// `--noise-removal greedy`: the stage takes no positional argument,
		// so a mode name after the flag can only be its value.
		tok = ctx.Scan.Pop()
	default:
		*n = NoiseRemovalOn
		return nil
	}
	switch v := tok.Value.(type) {
	case bool:
		*n = NoiseRemovalOff
		if v {
			*n = NoiseRemovalOn
		}
		return nil
	case string:
		mode, err := ParseNoiseRemoval(v)
		if err != nil {
			return err
		}
		*n = mode
		return nil
	}
	return fmt.Errorf("--noise-removal: unexpected value %v", tok.Value)
}

func isMode(v any) bool {
	s, ok := v.(string)
	return ok && (s == string(NoiseRemovalGreedy) || s == string(NoiseRemovalAncestral))
}

// samplerFinal maps the flag to the sampler's options.
func (n NoiseRemoval) samplerFinal() (on bool, final sampler.FinalStep, err error) {
	switch n {
	case NoiseRemovalOn:
		return true, sampler.FinalReference, nil
	case NoiseRemovalOff, "": // "" as the boolean's zero value
		return false, sampler.FinalReference, nil
	case NoiseRemovalGreedy:
		return true, sampler.FinalGreedy, nil
	case NoiseRemovalAncestral:
		return true, sampler.FinalAncestral, nil
	}
	_, err = ParseNoiseRemoval(string(n))
	return false, "", err
}
