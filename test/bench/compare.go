package main

import (
	"fmt"
	"io"
	"strings"
)

// The implementations the comparison table sets side by side.
const (
	leaderName   = "canoe-leader"
	followerName = "canoe-follower"
	dbName       = "dragonboat"
)

// trialRatio is the median over the trials in which both cells succeeded
// of f(a's result) / f(b's result); ok is false when there is no such trial.
func trialRatio(m matrix, a, b cellKey, f func(result) float64) (ratio float64, ok bool) {
	var rs []float64
	for _, x := range m.results[a] {
		for _, y := range m.results[b] {
			if x.Trial == y.Trial && x.Err == "" && y.Err == "" && f(y) != 0 {
				rs = append(rs, f(x)/f(y))
			}
		}
	}
	return median(rs), len(rs) > 0
}

func opsOf(r result) float64    { return r.OpsPerSec }
func p99Of(r result) float64    { return r.P99us }
func allocsOf(r result) float64 { return r.AllocsPerOp }

// printComparisons prints, per cell, the ratios the aims are
// stated in: canoe on a follower against canoe on the leader, and canoe on
// the leader against raw raft and dragonboat. Each is the median of
// per-trial ratios.
func printComparisons(w io.Writer, o options, m matrix) {
	fmt.Fprintln(w, "Ratios per cell, each the median of per-trial ratios (n/a: an implementation was not run or failed):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| op | clients | payload | follower/leader ops/s | follower/leader p99 | follower/leader allocs/op | leader/raw ops/s | leader/raw p99 | leader/dragonboat ops/s |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	ops, payloads := cellOps(o)
	for _, op := range ops {
		for _, clients := range o.clients {
			for _, payload := range payloads[op] {
				key := func(impl string) cellKey { return cellKey{op, impl, clients, payload} }
				cell := func(a, b string, f func(result) float64) string {
					r, ok := trialRatio(m, key(a), key(b), f)
					if !ok {
						return "n/a"
					}
					return fmt.Sprintf("%.2f", r)
				}
				fmt.Fprintf(w, "| %s | %d | %d | %s | %s | %s | %s | %s | %s |\n", op, clients, payload,
					cell(followerName, leaderName, opsOf), cell(followerName, leaderName, p99Of), cell(followerName, leaderName, allocsOf),
					cell(leaderName, rawName, opsOf), cell(leaderName, rawName, p99Of), cell(leaderName, dbName, opsOf))
			}
		}
	}
}

// printReadsWrites prints each implementation's median writes/s and reads/s
// side by side, per number of clients (for a run with both operations).
func printReadsWrites(w io.Writer, o options, m matrix) {
	_, payloads := cellOps(o)
	type col struct {
		op      string
		payload int
	}
	var cols []col
	head, align := []string{"impl", "clients"}, []string{"---", "---:"}
	for _, op := range []string{opWrite, opRead} {
		for _, p := range payloads[op] {
			cols = append(cols, col{op, p})
			head, align = append(head, fmt.Sprintf("%ss/s (%d B)", op, p)), append(align, "---:")
		}
	}
	sums := map[cellKey]cellSummary{}
	for _, c := range m.cells {
		sums[cellKey{c.Op, c.Impl, c.Clients, c.Payload}] = c
	}
	fmt.Fprintln(w, "Writes and reads per second (medians):")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "| %s |\n|%s|\n", strings.Join(head, " | "), strings.Join(align, "|"))
	for _, impl := range o.impls {
		for _, clients := range o.clients {
			row := []string{impl, fmt.Sprint(clients)}
			for _, c := range cols {
				s, ok := sums[cellKey{c.op, impl, clients, c.payload}]
				switch {
				case !ok:
					row = append(row, "")
				case s.Failed == s.Trials:
					row = append(row, "failed")
				default:
					row = append(row, fmt.Sprintf("%.0f", s.OpsPerSec))
				}
			}
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
}
