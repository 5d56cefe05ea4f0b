// Package evaluate measures trained models, apart from training them:
//
//   - Evaluator: the perplexity of a model on packed/v1 data, as the
//     reference's validation computes it (diffusion.py: Diffusion._loss and
//     _compute_loss, reduced by the NLL/BPD/Perplexity MeanMetrics in float64):
//     the per-token NELBO (an upper bound) for diffusion models, the NLL for AR
//     models, summed over every counted token and exponentiated once;
//   - Scorer: the generative perplexity of samples under a causal scorer
//     (GPT-2 or an mdlm AR model; diffusion.py: compute_generative_perplexity),
//     with the samples' mean unigram entropy (SampleEntropy);
//   - the metrics/v1 artifact those results are published as (artifact.MetricsType,
//     MetricsJSON, WriteMetricsJSON).
//
// The `mdlm eval` and `mdlm genppl` stages (stages/eval, stages/genppl) and the
// trainer's validation (package train) call it. It does not train, hold the
// training metrics log (train.Metrics, metrics.jsonl), parse flags or publish
// artifacts (stage.Execute does); it imports neither train nor any stage.
package evaluate
