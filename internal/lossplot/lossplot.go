// Package lossplot draws training curves as a PNG: two panels, training loss
// (left) and validation perplexity (right) against the step, one coloured line
// per run, both axes auto-scaled over all runs and labelled with their ranges,
// and a legend naming each run in its colour (x/image's fixed 7x13 font).
package lossplot

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/mdlm-go/mdlm/internal/atomicfile"
)

// Point is one (step, value) pair.
type Point struct{ Step, Value float64 }

// Run is one run's curves, the colour they are drawn in and the legend's name
// for them (none: no legend entry).
type Run struct {
	Name      string
	Loss, PPL []Point
	Color     color.RGBA
}

// Palette gives distinct line colours in order (blue, orange, green, red, purple).
var Palette = []color.RGBA{{30, 90, 200, 255}, {230, 120, 20, 255}, {40, 150, 60, 255}, {200, 40, 40, 255}, {120, 60, 170, 255}}

const (
	width, height = 800, 320
	left, right   = 56, 12 // panel margins: room for the y labels
	top, bottom   = 24, 34 // title above, x labels and legend below
)

// Write draws the runs into pngPath (written atomically).
func Write(pngPath string, runs []Run) error {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	loss := make([][]Point, len(runs))
	ppl := make([][]Point, len(runs))
	colors := make([]color.RGBA, len(runs))
	for i, r := range runs {
		loss[i], ppl[i], colors[i] = r.Loss, r.PPL, r.Color
	}
	panel(img, 0, "training loss", loss, colors)
	panel(img, width/2, "validation perplexity", ppl, colors)
	x := left
	for _, r := range runs {
		if r.Name != "" {
			label(img, x, height-4, r.Name, r.Color)
			x += 7*len(r.Name) + 24
		}
	}
	return atomicfile.Write(pngPath, func(w io.Writer) error { return png.Encode(w, img) })
}

// panel draws a titled, labelled panel at x0 and every series scaled to it.
func panel(img *image.RGBA, x0 int, title string, series [][]Point, colors []color.RGBA) {
	axis := color.RGBA{80, 80, 80, 255}
	w, h := width/2-left-right, height-top-bottom
	ox, oy := x0+left, top+h // origin
	for x := 0; x <= w; x++ {
		img.Set(ox+x, oy, axis)
	}
	for y := 0; y <= h; y++ {
		img.Set(ox, top+y, axis)
	}
	label(img, ox+w/2-7*len(title)/2, top-8, title, axis)
	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, pts := range series {
		for _, p := range pts {
			minX, maxX = math.Min(minX, p.Step), math.Max(maxX, p.Step)
			minY, maxY = math.Min(minY, p.Value), math.Max(maxY, p.Value)
		}
	}
	if math.IsInf(minX, 1) {
		return
	}
	if maxX == minX {
		maxX++
	}
	if maxY == minY {
		maxY++
	}
	hi, lo := fmt.Sprintf("%.3g", maxY), fmt.Sprintf("%.3g", minY)
	label(img, ox-4-7*len(hi), top+10, hi, axis)
	label(img, ox-4-7*len(lo), oy, lo, axis)
	label(img, ox, oy+14, fmt.Sprintf("%.0f", minX), axis)
	last := fmt.Sprintf("step %.0f", maxX)
	label(img, ox+w-7*len(last), oy+14, last, axis)
	px := func(p Point) (int, int) {
		return ox + int((p.Step-minX)/(maxX-minX)*float64(w)), oy - int((p.Value-minY)/(maxY-minY)*float64(h))
	}
	for i, pts := range series {
		c := colors[i]
		for j := 1; j < len(pts); j++ {
			ax, ay := px(pts[j-1])
			bx, by := px(pts[j])
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
}

// label writes text with its baseline at (x, y).
func label(img *image.RGBA, x, y int, text string, c color.RGBA) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(text)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
