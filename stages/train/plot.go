package train

import "github.com/mdlm-go/mdlm/internal/lossplot"

// writePlot draws a run's metrics as a PNG: training loss (blue, left panel) and
// validation perplexity (right panel) against the step, each auto-scaled.
func writePlot(pngPath string, ms []Metrics) error {
	run := lossplot.Run{Color: lossplot.Palette[0]}
	for _, m := range ms {
		if m.Loss != 0 {
			run.Loss = append(run.Loss, lossplot.Point{Step: float64(m.Step), Value: m.Loss})
		}
		if m.ValPPL != 0 {
			run.PPL = append(run.PPL, lossplot.Point{Step: float64(m.Step), Value: m.ValPPL})
		}
	}
	return lossplot.Write(pngPath, []lossplot.Run{run})
}
