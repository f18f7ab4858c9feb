package main

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/runner"
	"github.com/difyload/difyload/tasks"
)

// Master options (parsed_options keys) that locustfile.py defines and the Go side reads.
const (
	// optAggregateAll is the master's --dify-aggregate-all: Aggregated sums every row,
	// the stream rows (Type SSE) included, as before.
	optAggregateAll = "dify_aggregate_all"
	// optMessages is the comma-separated list of custom message types the master's
	// locustfile registered (difyload_parity.py sets it). A master without it never
	// gets them: it would log "Unknown message type" for each.
	optMessages = "difyload_messages"
)

// servedStats is the StatsSource of workers and standalone runs: the Aggregated total
// counts the requests the target served (metrics.ServedTotal) unless all is set.
type servedStats struct {
	stats *metrics.Stats
	all   atomic.Bool
}

func (s *servedStats) Drain(now time.Time) metrics.Report {
	r := s.stats.Drain(now)
	if !s.all.Load() {
		r.Total = metrics.ServedTotal(r)
	}
	return r
}

// masterOptions is what the worker learns from each spawn's parsed_options. onSpawn
// (worker.Config.OnSpawn) is the one place they land, once per spawn, before the spawn's
// users start.
type masterOptions struct {
	aggregateAllFlag bool // the worker's own --aggregate-all
	stats            *servedStats
	llmObs           *tasks.LLMObserver // nil: no LLM options to apply
	llm              atomic.Bool        // the master registered difyload_llm
}

func (m *masterOptions) onSpawn(env runner.Env) {
	all, _ := env.ParsedOptions[optAggregateAll].(bool)
	m.stats.all.Store(m.aggregateAllFlag || all)
	m.llm.Store(hasMessage(env.ParsedOptions, metrics.LLMMessageType))
	if m.llmObs != nil {
		m.llmObs.ApplyOptions(env.ParsedOptions)
	}
}

func hasMessage(opts map[string]any, typ string) bool {
	s, _ := opts[optMessages].(string)
	for _, t := range strings.Split(s, ",") {
		if strings.TrimSpace(t) == typ {
			return true
		}
	}
	return false
}
