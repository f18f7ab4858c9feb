package tasks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/difyload/difyload/difymock"
	"github.com/difyload/difyload/sse"
)

// TestFirstTokenMatchesMockRecord compares, per request, the client's first-token time
// with the mock's own record of when it sent that token (joined on message_id): at low load
// over loopback the two agree to a fraction of a millisecond. Causality is checked against
// the mock's clock read just before the write (first_token_write): a kernel receive stamp
// is taken inside that write, so it may precede first_token (read after Flush returns,
// later still when the mock is descheduled on a busy machine) but never first_token_write.
// The other bounds are sanity bounds for a shared machine, not a performance claim.
func TestFirstTokenMatchesMockRecord(t *testing.T) {
	t.Parallel()
	mock := difymock.New(difymock.Config{TTFT: 50 * time.Millisecond, TokenDelay: 2 * time.Millisecond, Tokens: 5})
	srv := httptest.NewServer(mock)
	defer srv.Close()
	client := sse.NewClient(sse.Config{Client: &http.Client{Transport: sse.NewTransport(sse.TransportConfig{})}})
	body := []byte(`{"inputs":{},"query":"hi","response_mode":"streaming","user":"u-1","conversation_id":"","auto_generate_name":false}`)
	sent, wrote := map[string]int64{}, map[string]int64{}
	var early []time.Duration
	var lags []time.Duration
	const n = 20
	results := make(map[string]*sse.Result, n)
	for i := 0; i < n; i++ {
		res, err := client.Stream(context.Background(), sse.Request{URL: srv.URL + "/v1/chat-messages", APIKey: difymock.SimpleChatKey, Body: body})
		require.NoError(t, err)
		require.NotEmpty(t, res.MessageID)
		require.GreaterOrEqual(t, res.FirstToken.Sub(res.Start), 50*time.Millisecond, "TTFB below the mock's configured delay")
		results[res.MessageID] = res
	}
	for _, rec := range mock.Truth().Records {
		sent[rec.MessageID] = rec.FirstToken
		wrote[rec.MessageID] = rec.FirstTokenWrite
	}
	for id, res := range results {
		ns, ok := sent[id]
		require.True(t, ok, "the mock has no record of message %s", id)
		lags = append(lags, time.Duration(res.FirstToken.UnixNano()-ns))
		require.NotZero(t, wrote[id], "the mock has no write time for message %s", id)
		early = append(early, time.Duration(res.FirstToken.UnixNano()-wrote[id]))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	median, worst := lags[len(lags)/2], lags[len(lags)-1]
	t.Logf("client first token - mock send time: min %v, median %v, max %v", lags[0], median, worst)
	sort.Slice(early, func(i, j int) bool { return early[i] < early[j] })
	// Both are wall-clock reads on one machine; 50 µs covers the clocks' read granularity.
	require.Greater(t, early[0], -50*time.Microsecond, "the client saw a token before the mock wrote it")
	require.Less(t, median, 5*time.Millisecond, "median lag between the mock's send and the client's first token")
	require.Less(t, worst, 100*time.Millisecond)
}
