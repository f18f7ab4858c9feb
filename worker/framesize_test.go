package worker

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/difyload/difyload/workload"
)

func TestWorkloadMessageTypeMatchesWorkload(t *testing.T) {
	if workloadMessageType != workload.MessageType {
		t.Fatalf("worker allows large frames for %q, the workload message is %q", workloadMessageType, workload.MessageType)
	}
}

// frameOf encodes [typ, data, testNode] as a master does.
func frameOf(t *testing.T, typ string, data any) []byte {
	t.Helper()
	b, err := msgpack.Marshal([]any{typ, data, testNode})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFrameSizeLimitPerMessageType(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("q", 20<<20) // 20 MiB: over every limit but the workload's
	for _, typ := range []string{typeSpawn, "my_custom", typeHeartbeat} {
		_, err := decodeMessage(frameOf(t, typ, big))
		if !errors.Is(err, errFrameTooLarge) || !errors.Is(err, errMalformed) {
			t.Fatalf("%s: err %v, want errFrameTooLarge", typ, err)
		}
		for _, want := range []string{`"` + typ + `"`, "20.0 MiB", "16 MiB", "every message but difyload_workload"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", typ, want, err)
			}
		}
	}
	m, err := decodeMessage(frameOf(t, workloadMessageType, map[string]any{"datasets": big}))
	if err != nil {
		t.Fatalf("a 20 MiB workload: %v", err)
	}
	if d, ok := m.Data.(map[string]any); !ok || d["datasets"] != big {
		t.Fatalf("the workload's data did not survive: %T", m.Data)
	}
	// Just under the limit: still a frame like any other.
	under := frameOf(t, "my_custom", strings.Repeat("q", maxFrameSize-64))
	if len(under) > maxFrameSize {
		t.Fatalf("test frame of %d bytes", len(under))
	}
	if _, err := decodeMessage(under); err != nil {
		t.Fatalf("a frame under the limit: %v", err)
	}
	// A big frame whose head is not [type, ...] is refused before any decoding.
	junk := append([]byte{0x93, 0xc4, 0x01, 0x00}, make([]byte, maxFrameSize)...)
	if _, err := decodeMessage(junk); !errors.Is(err, errFrameTooLarge) || !strings.Contains(err.Error(), "of no readable type") {
		t.Errorf("junk: %v", err)
	}
}

func TestFrameType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		frame []byte
		want  string
	}{
		{frameOf(t, "spawn", nil), "spawn"},
		{frameOf(t, workloadMessageType, nil), workloadMessageType},
		{frameOf(t, strings.Repeat("t", 40), nil), strings.Repeat("t", 40)}, // str 8
		{[]byte{0xdc, 0x00, 0x03, 0xa4, 's', 't', 'o', 'p'}, "stop"},        // array 16
		{[]byte{0xdd, 0x00, 0x00, 0x00, 0x03, 0xa4, 's', 't', 'o', 'p'}, "stop"},
		{[]byte{0xdc, 0x00, 0x02, 0xa4, 's', 't', 'o', 'p'}, ""}, // not 3
		{[]byte{0x92, 0xa4, 's', 't', 'o', 'p'}, ""},
		{[]byte{0x93, 0xa4, 's', 't'}, ""},   // truncated
		{[]byte{0x93, 0xa2, 0xff, 0xfe}, ""}, // not UTF-8
		{[]byte{0x93, 0x01}, ""},
		{[]byte{0x93, 0xdb, 0xff, 0xff, 0xff, 0xff}, ""}, // a type name of 4 GiB
		{nil, ""},
	} {
		if got := frameType(tc.frame); got != tc.want {
			t.Errorf("frameType(%x) = %q, want %q", tc.frame, got, tc.want)
		}
	}
}

// lockedBuffer collects a worker's log.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestOversizedFramesOverTheTransport: through the worker's loop (fake
// transport), a 20 MiB spawn or custom frame is logged and dropped while the
// worker carries on, and a 24 MiB workload reaches Config.OnMessage whole.
func TestOversizedFramesOverTheTransport(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		got := map[string]int{} // type → bytes of the payload delivered
		var logs lockedBuffer
		cfg := Config{
			Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
			OnMessage: func(typ string, data any) {
				mu.Lock()
				defer mu.Unlock()
				if m, ok := data.(map[string]any); ok {
					s, _ := m["datasets"].(string)
					got[typ] += len(s)
				}
			},
		}
		h := startHarness(t, cfg, twoClasses(), emptyStats{})
		h.register()
		big := strings.Repeat("q", 20<<20)
		h.pushRaw(frameOf(t, "my_custom", map[string]any{"datasets": big}))
		h.pushRaw(frameOf(t, typeSpawn, map[string]any{"timestamp": 9.0, "user_classes_count": map[string]any{"ChatUser": 1}, "pad": big}))
		huge := strings.Repeat("w", 24<<20)
		h.pushRaw(frameOf(t, workloadMessageType, map[string]any{"datasets": huge}))
		h.push("my_custom", map[string]any{"datasets": "small"})
		// Still serving: a spawn after the oversized one runs.
		h.push(typeSpawn, spawnData(5, map[string]int{"ChatUser": 1}, nil, nil))
		h.expect(typeSpawning, time.Second)
		h.expect(typeSpawningComplete, time.Second)
		h.mustStop()
		mu.Lock()
		defer mu.Unlock()
		if got[workloadMessageType] != len(huge) {
			t.Errorf("workload delivered with %d bytes of datasets, want %d", got[workloadMessageType], len(huge))
		}
		if got["my_custom"] != len("small") {
			t.Errorf("my_custom delivered %d bytes, want only the small one's %d", got["my_custom"], len("small"))
		}
		out := logs.String()
		for _, want := range []string{`a \"my_custom\" frame of 20971`, `a \"spawn\" frame of 20971`, "over the limit of 16 MiB"} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %q:\n%.2000s", want, out)
			}
		}
		if strings.Contains(out, "panic") {
			t.Errorf("log mentions a panic")
		}
	})
}
