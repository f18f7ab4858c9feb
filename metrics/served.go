package metrics

// MethodStream is the Type of the rows a stream is measured by (TTFB, Full Response, TPOT,
// Inter-chunk): they describe the response of a request that has its own row (POST
// /v1/chat-messages), not requests of their own.
const MethodStream = "SSE"

// ServedTotal is the Aggregated entry of r counted per request the target served: the
// sum (StatsEntry.extend) of every row except the stream rows, plus the stream rows'
// failures, so a stream that broke after its headers counts as one failed request. Its
// request count and RPS equal what the Dify API served, and its failure ratio is the
// share of requests that failed in any way (each stream fails on at most one row: its
// POST when it fails before the headers, its Full Response after).
func ServedTotal(r Report) Entry {
	t := Entry{Name: "Aggregated", StartTime: r.Total.StartTime}
	for i := range r.Entries {
		e := &r.Entries[i]
		if e.Method != MethodStream {
			t.extend(e)
			continue
		}
		t.NumFailures += e.NumFailures
		t.NumFailPerSec = addCounts(t.NumFailPerSec, e.NumFailPerSec)
	}
	fillEmptyMaps(&t)
	return t
}
