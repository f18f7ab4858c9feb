package tasks

import (
	"errors"
	"time"

	"github.com/difyload/difyload/metrics"
	"github.com/difyload/difyload/sse"
)

// failureName is the Locust failure text of err: the stream error's short stable name.
func failureName(err error) string {
	var se *sse.StreamError
	if errors.As(err, &se) {
		return se.Failure()
	}
	return "unexpected error"
}

// beforeHeaders reports whether a stream failure happened before usable response headers:
// such a failure belongs to the POST row, not to the SSE rows.
func beforeHeaders(err error, headers time.Time) bool {
	var se *sse.StreamError
	if errors.As(err, &se) {
		switch se.Phase {
		case sse.PhaseConnect, sse.PhaseStatus:
			return true
		}
	}
	return headers.IsZero()
}

func since(start, end time.Time) time.Duration {
	if start.IsZero() {
		return 0
	}
	if end.IsZero() {
		end = time.Now()
	}
	return end.Sub(start)
}

func sseName(base, flow string, split bool) string {
	if split {
		return base + " " + flow
	}
	return base
}

// recordStream turns one stream into samples; see the package doc for the rules. post is
// the POST row (the endpoint); split names the SSE rows per app (flow).
func recordStream(rec Recorder, post, flow string, split bool, res *sse.Result, err error) {
	if res == nil {
		res = &sse.Result{}
	}
	now := time.Now()
	if err != nil && sse.IsCancelled(err) {
		if !res.Headers.IsZero() && res.StatusCode == 200 {
			rec.Record(metrics.Sample{Method: MethodPOST, Name: post, Duration: res.Headers.Sub(res.Start), Size: res.BytesRead, At: now})
		}
		return
	}
	if err != nil && beforeHeaders(err, res.Headers) {
		end := res.Headers
		if end.IsZero() {
			end = now
		}
		rec.Record(metrics.Sample{Method: MethodPOST, Name: post, Duration: since(res.Start, end), Size: res.BytesRead, Failure: failureName(err), At: now})
		return
	}
	rec.Record(metrics.Sample{Method: MethodPOST, Name: post, Duration: res.Headers.Sub(res.Start), Size: res.BytesRead, At: now})
	ttfb := sseName(NameTTFB, flow, split)
	full := sseName(NameFullResponse, flow, split)
	if !res.FirstToken.IsZero() {
		rec.Record(metrics.Sample{Method: MethodSSE, Name: ttfb, Duration: res.FirstToken.Sub(res.Start), At: now})
	} else if err == nil {
		rec.Record(metrics.Sample{Method: MethodSSE, Name: ttfb, NoTime: true, At: now})
	}
	if err != nil {
		rec.Record(metrics.Sample{Method: MethodSSE, Name: full, Duration: since(res.Start, res.End), Failure: failureName(err), At: now})
		return
	}
	tokens := int64(res.Chunks)
	if res.Usage.Present {
		tokens = res.Usage.CompletionTokens
	}
	rec.Record(metrics.Sample{Method: MethodSSE, Name: full, Duration: since(res.Start, res.End), Size: tokens, At: now})
}

func recordRetrieve(rec Recorder, name string, resp *sse.Response, err error) {
	if resp == nil {
		resp = &sse.Response{}
	}
	now := time.Now()
	if err != nil && sse.IsCancelled(err) {
		return
	}
	s := metrics.Sample{Method: MethodPOST, Name: name, Duration: since(resp.Start, resp.End), Size: resp.BytesRead, At: now}
	if err != nil {
		s.Failure = failureName(err)
	}
	rec.Record(s)
}
