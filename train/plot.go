package train

import (
	"image/color"

	"github.com/mdlm-go/mdlm/internal/lossplot"
)

// writePlot draws a run's metrics as a PNG: training loss (left panel) and
// validation perplexity (right panel) against the step, each auto-scaled.
func writePlot(pngPath string, ms []Metrics) error {
	return lossplot.Write(pngPath, []lossplot.Run{PlotRun(ms, "", lossplot.Palette[0])})
}

// PlotRun turns a run's metrics into its curves for lossplot (bench/plotruns
// draws several runs together).
func PlotRun(ms []Metrics, name string, c color.RGBA) lossplot.Run {
	run := lossplot.Run{Name: name, Color: c}
	for _, m := range ms {
		if m.Loss != 0 {
			run.Loss = append(run.Loss, lossplot.Point{Step: float64(m.Step), Value: m.Loss})
		}
		if m.ValPPL != 0 {
			run.PPL = append(run.PPL, lossplot.Point{Step: float64(m.Step), Value: m.ValPPL})
		}
	}
	return run
}
