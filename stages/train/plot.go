package train

import (
	"image"
	"image/color"
	"image/png"
	"math"

	"io"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// writePlot draws a run's metrics as a PNG: training loss (blue, left panel) and
// validation perplexity (red, right panel) against the step, each auto-scaled.
// Axes only, no text: the numbers live in metrics.jsonl.
func writePlot(pngPath string, ms []Metrics) error {
	var loss, ppl [][2]float64
	for _, m := range ms {
		if m.Loss != 0 {
			loss = append(loss, [2]float64{float64(m.Step), m.Loss})
		}
		if m.ValPPL != 0 {
			ppl = append(ppl, [2]float64{float64(m.Step), m.ValPPL})
		}
	}
	const W, H, pad = 800, 300, 20
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	panel := func(x0 int, pts [][2]float64, c color.RGBA) {
		axis := color.RGBA{80, 80, 80, 255}
		w, h := W/2-2*pad, H-2*pad
		for x := 0; x <= w; x++ {
			img.Set(x0+pad+x, pad+h, axis)
		}
		for y := 0; y <= h; y++ {
			img.Set(x0+pad, pad+y, axis)
		}
		if len(pts) == 0 {
			return
		}
		minX, maxX, minY, maxY := pts[0][0], pts[0][0], pts[0][1], pts[0][1]
		for _, p := range pts {
			minX, maxX = math.Min(minX, p[0]), math.Max(maxX, p[0])
			minY, maxY = math.Min(minY, p[1]), math.Max(maxY, p[1])
		}
		if maxX == minX {
			maxX++
		}
		if maxY == minY {
			maxY++
		}
		px := func(p [2]float64) (int, int) {
			return x0 + pad + int((p[0]-minX)/(maxX-minX)*float64(w)), pad + h - int((p[1]-minY)/(maxY-minY)*float64(h))
		}
		for i := 1; i < len(pts); i++ {
			ax, ay := px(pts[i-1])
			bx, by := px(pts[i])
			steps := max(abs(bx-ax), abs(by-ay), 1)
			for s := 0; s <= steps; s++ {
				img.Set(ax+(bx-ax)*s/steps, ay+(by-ay)*s/steps, c)
			}
		}
		if len(pts) == 1 {
			x, y := px(pts[0])
			img.Set(x, y, c)
		}
	}
	panel(0, loss, color.RGBA{30, 90, 200, 255})
	panel(W/2, ppl, color.RGBA{200, 40, 40, 255})
	return atomicfile.Write(pngPath, func(w io.Writer) error { return png.Encode(w, img) })
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
