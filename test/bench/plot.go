package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	_ "gonum.org/v1/plot/vg/vgimg" // png
	_ "gonum.org/v1/plot/vg/vgsvg" // svg
)

// plotSoak draws the soak's samples in file (.svg or .png), three panels
// over time: each node's RSS, data directory size and writes/s, with a
// dashed line where the settled part begins.
func plotSoak(file string, o options, samples []soakSample) error {
	panels := []struct {
		title, y string
		v        func(soakSample) float64
	}{
		{"RSS per node process", "MiB", func(s soakSample) float64 { return s.RSSMiB }},
		{"Data directory per node (du)", "MiB", func(s soakSample) float64 { return s.DiskMiB }},
		{"Acknowledged writes per node", "writes/s", func(s soakSample) float64 { return s.WritesSec }},
	}
	settled := o.soak.duration.Minutes() / 3
	var plots [][]*plot.Plot
	for pi, pn := range panels {
		p := plot.New()
		p.Title.Text = pn.title
		if pi == 0 {
			p.Title.Text = fmt.Sprintf("canoe soak: %d nodes, %d clients each, %d keys of %d B, %v — %s",
				o.nodes, o.soak.clients, o.soak.keys, o.soak.payload, o.soak.duration, pn.title)
		}
		p.X.Label.Text = "minutes"
		p.Y.Label.Text = pn.y
		p.Y.Min = 0
		top := 0.0
		for n := range o.nodes {
			var xys plotter.XYs
			for _, s := range samples {
				if s.Node == n {
					xys = append(xys, plotter.XY{X: s.Sec / 60, Y: pn.v(s)})
					top = max(top, pn.v(s))
				}
			}
			if len(xys) == 0 {
				continue
			}
			l, err := plotter.NewLine(xys)
			if err != nil {
				return err
			}
			l.Color = plotutil.Color(n)
			l.Width = vg.Points(1.5)
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("node %d", n), l)
		}
		mark, err := plotter.NewLine(plotter.XYs{{X: settled, Y: 0}, {X: settled, Y: top * 1.05}})
		if err != nil {
			return err
		}
		mark.Dashes = []vg.Length{vg.Points(4), vg.Points(4)}
		mark.Color = color.Gray{Y: 96}
		p.Add(mark)
		p.Legend.Add("settled from here", mark)
		p.Legend.Top, p.Legend.Left = true, true
		p.X.Min, p.X.Max = 0, o.soak.duration.Minutes()
		p.Y.Max = top * 1.3
		p.Add(plotter.NewGrid())
		plots = append(plots, []*plot.Plot{p})
	}
	const w, h = 10 * vg.Inch, 11 * vg.Inch
	format := strings.TrimPrefix(filepath.Ext(file), ".")
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return err
	}
	tiles := draw.Tiles{Rows: len(plots), Cols: 1, PadX: vg.Millimeter, PadY: 4 * vg.Millimeter,
		PadTop: 2 * vg.Millimeter, PadBottom: 2 * vg.Millimeter, PadLeft: 2 * vg.Millimeter, PadRight: 4 * vg.Millimeter}
	canvases := plot.Align(plots, tiles, draw.New(c))
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
