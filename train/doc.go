// Package train trains MDLM (SUBS, continuous or discrete time), D3PM, SEDD
// and the AR baseline with the reference's recipe (configs/config.yaml,
// models/ema.py): AdamW, warmup then a constant or cosine learning rate,
// global-norm clipping, an EMA of the weights, validation with the EMA weights.
// It holds two layers:
//
//   - the compiled training step (Step, State; RunAccum for gradient
//     accumulation): forward pass, loss, gradients, clipping and one AdamW
//     update in one GoMLX graph whose state stays on the device;
//   - the trainer around it (Run with a Config): data order, noise, EMA,
//     validation (and gen-PPL of samples) at a cadence, checkpoint rotation and
//     resume in a work directory, the metrics log (Metrics, ReadMetrics) and the
//     loss plot; Result.WriteCheckpoint writes the finished run as a
//     checkpoint/v1.
//
// It does not hold evaluation (package evaluate: the validation perplexity and
// the gen-PPL scorer it calls), the checkpoint format (package checkpoint), the
// objectives (package diffusion) or the `mdlm train` command (stages/train maps
// its flags to a Config; stage.Execute publishes the output and owns the work
// directory).
//
// Reproducibility: the data order (a permutation per epoch), the noise (t and
// masks) and dropout of step k are functions of (seed, k) alone, so a checkpoint
// needs only the step to resume, and a run killed at any moment and resumed
// produces exactly the losses of an uninterrupted run.
//
// Layout of a work directory:
//
//	<work>/checkpoints/step-NNNNNNNN/   checkpoint/v1 with ema, optimizer, state.json
//	<work>/checkpoints/last             name of the newest complete checkpoint
//	<work>/checkpoints/best/            the checkpoint of the lowest validation NELBO
//	<work>/metrics.jsonl                one line per logged step / validation
package train
