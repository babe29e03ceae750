package canoe

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/canoe-raft/canoe/observer"
)

// metrics are a node's Prometheus metrics, in a registry of its own (never
// the global one), served at GET /metrics.
type metrics struct {
	reg           *prometheus.Registry
	proposals     *prometheus.CounterVec // by result: ok, apply_error, failed
	forwarded     prometheus.Counter
	applyLatency  prometheus.Histogram
	leaderChanges prometheus.Counter
}

func newMetrics(n *Node) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.proposals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "canoe_proposals_total",
		Help: "Proposals made on this node, by result (ok, apply_error, failed).",
	}, []string{"result"})
	m.forwarded = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "canoe_forwarded_proposals_total",
		Help: "Proposals this node committed as leader on behalf of followers.",
	})
	m.applyLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "canoe_apply_duration_seconds",
		Help:    "Time the FSM took to apply one raft entry (all proposals in it).",
		Buckets: prometheus.ExponentialBuckets(1e-6, 4, 12),
	})
	m.leaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "canoe_leader_changes_total",
		Help: "Leader changes this node observed.",
	})
	m.reg.MustRegister(
		m.proposals, m.forwarded, m.applyLatency, m.leaderChanges,
		newStatusCollector(n),
		&raftStats{n: n, desc: prometheus.NewDesc("canoe_raft_stat", "Raft's own numeric statistics (raft.Stats), by name.", []string{"name"}, nil)},
		collectors.NewGoCollector(),
	)
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *metrics) observeApply(d time.Duration, _ int) { m.applyLatency.Observe(d.Seconds()) }

func (m *metrics) proposed(err error) {
	switch {
	case err == nil:
		m.proposals.WithLabelValues("ok").Inc()
	case isApplyError(err):
		m.proposals.WithLabelValues("apply_error").Inc()
	default:
		m.proposals.WithLabelValues("failed").Inc()
	}
}

// statusCollector exports the node's Status as gauges, reading it once per
// scrape.
type statusCollector struct {
	n                                                      *Node
	members, voters, isLeader, term, commit, applied, last *prometheus.Desc
}

func newStatusCollector(n *Node) *statusCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &statusCollector{
		n:        n,
		members:  d("canoe_members", "Members in this node's latest configuration."),
		voters:   d("canoe_voters", "Voters in this node's latest configuration."),
		isLeader: d("canoe_is_leader", "1 if this node is the leader."),
		term:     d("canoe_raft_term", "Raft's current term."),
		commit:   d("canoe_raft_commit_index", "Raft's commit index."),
		applied:  d("canoe_raft_applied_index", "Index of the last entry the FSM applied."),
		last:     d("canoe_raft_last_index", "Raft's last log index."),
	}
}

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.members, c.voters, c.isLeader, c.term, c.commit, c.applied, c.last} {
		ch <- d
	}
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.n.Status()
	voters := 0
	for _, p := range s.Members {
		if p.Voter {
			voters++
		}
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(c.members, float64(len(s.Members)))
	gauge(c.voters, float64(voters))
	gauge(c.isLeader, b2f(s.LeaderID == c.n.id && s.State == observer.Leader))
	gauge(c.term, float64(s.Term))
	gauge(c.commit, float64(s.CommitIndex))
	gauge(c.applied, float64(s.AppliedIndex))
	gauge(c.last, float64(s.LastIndex))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// raftStats exports the numeric entries of raft.Stats().
type raftStats struct {
	n    *Node
	desc *prometheus.Desc
}

func (c *raftStats) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *raftStats) Collect(ch chan<- prometheus.Metric) {
	rt := c.n.rt.Load()
	if rt == nil {
		return
	}
	for name, v := range rt.raft.Stats() {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, f, name)
		}
	}
}
