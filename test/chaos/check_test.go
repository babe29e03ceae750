package chaos

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput is a porcupine operation's input: an append or a linearizable read.
type kvInput struct {
	read     bool
	key, val string
}

// appendModel is a map of key -> list of values, partitioned by key. Its
// state is the list joined with ",". A read's output is the list it saw,
// joined the same way.
var appendModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(kvInput).key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
	Step: func(state, input, output any) (bool, any) {
		in, st := input.(kvInput), state.(string)
		if in.read {
			return output.(string) == st, st
		}
		if st == "" {
			return true, in.val
		}
		return true, st + "," + in.val
	},
	DescribeOperation: func(input, output any) string {
		in := input.(kvInput)
		if in.read {
			return fmt.Sprintf("get(%s) -> [%s]", in.key, shorten(output.(string)))
		}
		return fmt.Sprintf("append(%s, %s)", in.key, in.val)
	},
	DescribeState: func(state any) string { return "[" + shorten(state.(string)) + "]" },
}

// shorten keeps the tail of a long list readable in the visualization.
func shorten(s string) string {
	parts := strings.Split(s, ",")
	if len(parts) <= 6 {
		return s
	}
	return fmt.Sprintf("...%d values..., %s", len(parts)-4, strings.Join(parts[len(parts)-4:], ","))
}

// porcupineHistory turns appends (ok and unknown) and successful
// linearizable reads into porcupine operations. An append with an unknown
// outcome may take effect at any time after its call, or never; as in
// etcd's robustness tests its return time is infinite, narrowed here to the
// return of the first linearizable read that saw its value (every
// linearization must place the append before that read, so this excludes
// none). An unknown append no linearizable read saw is left out: it can
// always be linearized after everything else, so it cannot change the
// verdict, but it would make the search blow up.
func porcupineHistory(ops []histOp) []porcupine.Operation {
	seen := map[[2]string]int64{} // key, val -> earliest return of a read that saw it
	for _, op := range ops {
		if op.Kind != opLinGet || op.Out != outOK {
			continue
		}
		for _, v := range op.Values {
			k := [2]string{op.Key, v}
			if r, ok := seen[k]; !ok || op.Ret < r {
				seen[k] = op.Ret
			}
		}
	}
	var out []porcupine.Operation
	for _, op := range ops {
		switch {
		case op.Kind == opAppend && op.Out != outFailed:
			ret := op.Ret
			if op.Out == outUnknown {
				r, ok := seen[[2]string{op.Key, op.Val}]
				if !ok {
					continue
				}
				ret = max(r, op.Call+1)
			}
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: kvInput{key: op.Key, val: op.Val}, Call: op.Call, Output: "", Return: ret})
		case op.Kind == opLinGet && op.Out == outOK:
			out = append(out, porcupine.Operation{ClientId: op.Client, Input: kvInput{read: true, key: op.Key}, Call: op.Call, Output: strings.Join(op.Values, ","), Return: op.Ret})
		}
	}
	return out
}

// report is what one schedule found.
type report struct {
	seed       int64
	nodes      int
	duration   time.Duration
	faults     map[string]int
	ops        map[string][3]int // kind -> ok, failed, unknown
	failKinds  map[string]int
	failSample map[string]string // one error message per kind
	// unknownApplied counts, per error kind, appends with an unknown
	// outcome that took effect after all, and all of them.
	unknownApplied map[string][2]int
	verdict        porcupine.CheckResult
	checkTime      time.Duration
	vizPath        string
	lost           []string // acknowledged appends missing from a final state
	problems       []string // every check that failed
	maxNoLeader    time.Duration
	recovery       time.Duration
	leaderTerms    int
	leaderObs      int
	snapshots      [2]int // taken, restored (summed over live processes)
	proxyStats     map[string]int
	unknownConns   int
	membership     []string // what membership faults did and saw
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "chaos schedule seed=%d nodes=%d ran %v\n", r.seed, r.nodes, r.duration.Round(time.Millisecond))
	fmt.Fprintf(&b, "  faults:")
	for _, k := range sortedKeys(r.faults) {
		fmt.Fprintf(&b, " %s=%d", k, r.faults[k])
	}
	fmt.Fprintf(&b, "\n  ops (ok/failed/unknown):")
	for _, k := range []string{"append", "get", "linget"} {
		v := r.ops[k]
		fmt.Fprintf(&b, " %s=%d/%d/%d", k, v[0], v[1], v[2])
	}
	fmt.Fprintf(&b, "\n  error kinds:")
	for _, k := range sortedKeys(r.failKinds) {
		fmt.Fprintf(&b, " %s=%d", k, r.failKinds[k])
	}
	for _, k := range sortedKeys(r.failSample) {
		if strings.HasSuffix(k, ":error") || strings.HasSuffix(k, ":unknown_outcome") || strings.HasSuffix(k, ":transport") {
			fmt.Fprintf(&b, "\n    e.g. %s: %s", k, r.failSample[k])
		}
	}
	fmt.Fprintf(&b, "\n  unknown-outcome appends that took effect (of all):")
	for _, k := range sortedKeys(r.unknownApplied) {
		fmt.Fprintf(&b, " %s=%d/%d", k, r.unknownApplied[k][0], r.unknownApplied[k][1])
	}
	fmt.Fprintf(&b, "\n  linearizability: %s (checked in %v)", r.verdict, r.checkTime.Round(time.Millisecond))
	if r.vizPath != "" {
		fmt.Fprintf(&b, ", visualization: %s", r.vizPath)
	}
	fmt.Fprintf(&b, "\n  lost acknowledged writes: %d", len(r.lost))
	if len(r.lost) > 0 {
		fmt.Fprintf(&b, " %v", r.lost[:min(len(r.lost), 10)])
	}
	fmt.Fprintf(&b, "\n  max time without a leader: %v; serving again %v after the last fault", r.maxNoLeader.Round(time.Millisecond), r.recovery.Round(time.Millisecond))
	fmt.Fprintf(&b, "\n  terms with a leader seen: %d; leader changes printed by nodes: %d; snapshots taken/restored: %d/%d", r.leaderTerms, r.leaderObs, r.snapshots[0], r.snapshots[1])
	fmt.Fprintf(&b, "\n  proxy:")
	for _, k := range sortedKeys(r.proxyStats) {
		fmt.Fprintf(&b, " %s=%d", k, r.proxyStats[k])
	}
	fmt.Fprintf(&b, " unidentified_conns=%d", r.unknownConns)
	for _, m := range r.membership {
		fmt.Fprintf(&b, "\n  membership: %s", m)
	}
	if len(r.problems) == 0 {
		fmt.Fprintf(&b, "\n  all checks passed")
	}
	for _, p := range r.problems {
		fmt.Fprintf(&b, "\n  FAIL: %s", p)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkHistory runs porcupine on the history and the checks that need no
// model: reads only show values that were appended, never values whose
// append certainly failed, never a value twice, and every read (plain
// ones included) is a prefix of the key's final list, since every node's
// state is the result of applying a prefix of the one committed log.
// final holds the agreed final list of every key.
func (r *report) checkHistory(ops []histOp, final map[string][]string, outDir string) {
	r.ops, r.failKinds, r.failSample = map[string][3]int{}, map[string]int{}, map[string]string{}
	appended := map[string]map[string]outcome{} // key -> val -> outcome
	for _, op := range ops {
		v := r.ops[op.Kind.String()]
		v[op.Out]++
		r.ops[op.Kind.String()] = v
		if op.Out != outOK {
			k := op.Kind.String() + ":" + op.ErrKind
			r.failKinds[k]++
			if _, ok := r.failSample[k]; !ok {
				r.failSample[k] = op.ErrMsg
			}
		}
		if op.Kind == opAppend {
			if appended[op.Key] == nil {
				appended[op.Key] = map[string]outcome{}
			}
			appended[op.Key][op.Val] = op.Out
		}
	}
	bad := 0
	fail := func(format string, args ...any) {
		if bad < 20 {
			r.problems = append(r.problems, fmt.Sprintf(format, args...))
		}
		bad++
	}
	checkList := func(what, key string, vals []string) {
		seen := map[string]bool{}
		for _, v := range vals {
			out, ok := appended[key][v]
			switch {
			case !ok:
				fail("%s of %s shows %q, which was never appended to it", what, key, v)
			case out == outFailed:
				fail("%s of %s shows %q, whose append certainly failed", what, key, v)
			case seen[v]:
				fail("%s of %s shows %q twice", what, key, v)
			}
			seen[v] = true
		}
	}
	for key, vals := range final {
		checkList("final state", key, vals)
		for v, out := range appended[key] {
			if out == outOK && !slices.Contains(vals, v) {
				r.lost = append(r.lost, key+"="+v)
			}
		}
	}
	for key, vals := range appended {
		if _, ok := final[key]; !ok {
			for v, out := range vals {
				if out == outOK {
					r.lost = append(r.lost, key+"="+v)
				}
			}
		}
	}
	sort.Strings(r.lost)
	if len(r.lost) > 0 {
		fail("%d acknowledged appends are missing from the final state: %v", len(r.lost), r.lost[:min(10, len(r.lost))])
	}
	for _, op := range ops {
		if op.Kind == opAppend || op.Out != outOK {
			continue
		}
		checkList(op.Kind.String()+" at node "+fmt.Sprint(op.Node), op.Key, op.Values)
		if f := final[op.Key]; len(op.Values) > len(f) || !slices.Equal(op.Values, f[:len(op.Values)]) {
			fail("%s of %s at node %d (+%v) is not a prefix of the final list: got %d values, ending %v", op.Kind, op.Key, op.Node,
				time.Duration(op.Call).Round(time.Millisecond), len(op.Values), op.Values[max(0, len(op.Values)-3):])
		}
	}
	// Quick real-time checks of the linearizable reads, which name the
	// culprit where porcupine can only say "not linearizable" (or time out).
	for _, rd := range ops {
		if rd.Kind != opLinGet || rd.Out != outOK {
			continue
		}
		has := map[string]bool{}
		for _, v := range rd.Values {
			has[v] = true
		}
		for _, op := range ops {
			if op.Key != rd.Key || op.Out != outOK || op.Ret >= rd.Call {
				continue
			}
			switch {
			case op.Kind == opAppend && !has[op.Val]:
				fail("stale linearizable read: %s at node %d (+%v) misses %q, acknowledged at +%v by node %d", rd.Key, rd.Node,
					time.Duration(rd.Call).Round(time.Millisecond), op.Val, time.Duration(op.Ret).Round(time.Millisecond), op.Node)
			case op.Kind == opLinGet && len(op.Values) > len(rd.Values):
				fail("linearizable read went back in time: %s at node %d (+%v) saw %d values, node %d saw %d before (+%v)", rd.Key, rd.Node,
					time.Duration(rd.Call).Round(time.Millisecond), len(rd.Values), op.Node, len(op.Values), time.Duration(op.Ret).Round(time.Millisecond))
			}
		}
	}
	// Which unknown outcomes did take effect, by error kind (diagnostic).
	r.unknownApplied = map[string][2]int{}
	for _, op := range ops {
		if op.Kind == opAppend && op.Out == outUnknown {
			v := r.unknownApplied[op.ErrKind]
			v[1]++
			if slices.Contains(final[op.Key], op.Val) {
				v[0]++
			}
			r.unknownApplied[op.ErrKind] = v
			// canoe's contract: only errors matching ErrUnknownOutcome or
			// ErrTimeout (kinds unknown_outcome, timeout) leave a proposal's
			// outcome open; a transport error between client and node does
			// too. Any other error that took effect breaks the contract.
			if op.ErrKind != "unknown_outcome" && op.ErrKind != "timeout" && op.ErrKind != "transport" && slices.Contains(final[op.Key], op.Val) {
				fail("append(%s, %s) at node %d failed with an error that matches neither ErrUnknownOutcome nor ErrTimeout, yet took effect: %s",
					op.Key, op.Val, op.Node, op.ErrMsg)
			}
		}
	}
	if bad > 20 {
		r.problems = append(r.problems, fmt.Sprintf("... and %d more", bad-20))
	}

	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(appendModel, porcupineHistory(ops), 60*time.Second)
	r.verdict, r.checkTime = res, time.Since(start)
	if res != porcupine.Ok {
		path := filepath.Join(outDir, fmt.Sprintf("porcupine-%d.html", r.seed))
		if err := porcupine.VisualizePath(appendModel, info, path); err != nil {
			path = "(visualization failed: " + err.Error() + ")"
		}
		r.vizPath = path
		if b, err := json.Marshal(ops); err == nil {
			_ = os.WriteFile(filepath.Join(outDir, fmt.Sprintf("history-%d.json", r.seed)), b, 0o644)
		}
		r.problems = append(r.problems, fmt.Sprintf("porcupine: history is %s (visualization: %s)", res, path))
	}
}

// outDir is $CANOE_CHAOS_OUT (created) or fallback.
func outDir(fallback string) string {
	if d := os.Getenv("CANOE_CHAOS_OUT"); d != "" {
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return fallback
}
