package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
)

// logFlags are Locust's logging flags: -L/--loglevel with Locust's level names
// (DEBUG, INFO, WARNING, ERROR, CRITICAL; any case) and LOCUST_LOGLEVEL, --logfile and
// LOCUST_LOGFILE. --log-level (and DIFYLOAD_LOG_LEVEL) stay as spellings of --loglevel,
// and Go's names (warn) are accepted too.
type logFlags struct {
	level string
	file  string
}

func (f *logFlags) register(fs *flag.FlagSet, env lookupEnv, def string) {
	def = envString(env, "DIFYLOAD_LOG_LEVEL", envString(env, "LOCUST_LOGLEVEL", def))
	f.level = def
	usage := "log level: DEBUG, INFO, WARNING, ERROR or CRITICAL [env LOCUST_LOGLEVEL, DIFYLOAD_LOG_LEVEL]"
	fs.StringVar(&f.level, "loglevel", def, usage)
	fs.StringVar(&f.level, "L", def, "short for --loglevel")
	fs.StringVar(&f.level, "log-level", def, "same as --loglevel")
	fs.StringVar(&f.file, "logfile", envString(env, "LOCUST_LOGFILE", ""), "write the log to this file instead of stderr [env LOCUST_LOGFILE]")
}

// parseLevel maps Locust's and Go's level names to slog levels.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug, nil
	case "INFO":
		return slog.LevelInfo, nil
	case "WARNING", "WARN":
		return slog.LevelWarn, nil
	case "ERROR":
		return slog.LevelError, nil
	case "CRITICAL", "FATAL":
		return slog.LevelError + 4, nil
	}
	return 0, fmt.Errorf("--loglevel %q: want DEBUG, INFO, WARNING, ERROR or CRITICAL", s)
}

// open returns the logger (stderr, or --logfile), the ring of its recent lines (what a
// worker sends to the master's Logs tab) and a close for the file.
func (f *logFlags) open(stderr io.Writer) (*slog.Logger, *logRing, func() error, error) {
	level, err := parseLevel(f.level)
	if err != nil {
		return nil, nil, nil, err
	}
	out, closeFn := stderr, func() error { return nil }
	if f.file != "" {
		file, err := os.OpenFile(f.file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("--logfile: %w", err)
		}
		out, closeFn = file, file.Close
	}
	ring := newLogRing(maxLogLines)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: levelNames}
	return slog.New(slog.NewTextHandler(io.MultiWriter(out, ring), opts)), ring, closeFn, nil
}

// levelNames prints slog's ERROR+4 as CRITICAL.
func levelNames(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey {
		if l, ok := a.Value.Any().(slog.Level); ok && l >= slog.LevelError+4 {
			a.Value = slog.StringValue("CRITICAL")
		}
	}
	return a
}

// maxLogLines is what Python's log_reader keeps (and what a master shows per worker).
const maxLogLines = 500

// logRing keeps the last lines written to it. slog's handlers write one record per
// Write call.
type logRing struct {
	mu    sync.Mutex
	lines []string
	max   int
}

func newLogRing(n int) *logRing { return &logRing{max: n} }

func (r *logRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		r.lines = append(r.lines, string(line))
	}
	if over := len(r.lines) - r.max; over > 0 {
		r.lines = append(r.lines[:0:0], r.lines[over:]...)
	}
	return len(p), nil
}

// Lines returns a copy of the kept lines, oldest first.
func (r *logRing) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// newLogger is a plain logger at level on w (no --logfile, no ring), for helpers and tests.
func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	l, err := parseLevel(level)
	if err != nil {
		return nil, err
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l, ReplaceAttr: levelNames})), nil
}
