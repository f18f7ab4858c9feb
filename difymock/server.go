package difymock

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Server is the mock. It is an http.Handler; use it with httptest, an
// http.Server, Serve or ListenAndServe.
type Server struct {
	cfg    Config
	ver    version
	jobs   *pool // job workers (Config.JobWorkers), relayed runs only
	api    *pool // API process slots (Config.APISlots), every /v1 request
	convs  conversations
	active [numApps]atomic.Int64 // requests in flight per app, for Config.MaxActiveRequests
	set    settings
	faults faultTable
	sets   map[string]bool // accepted dataset ids
	truth  truth
	tasks  tasks // running streams, for the stop endpoints
	bufs   bufPool
	wg     sync.WaitGroup // running handlers (for Serve's bounded shutdown)

	// Test hooks, set before serving. now is the clock for every timestamp
	// the mock writes or records (scheduling always uses real time); newID
	// returns ids (nil → random UUIDv4); seed seeds each request's PRNG
	// (nil → random).
	now   func() time.Time
	newID func() string
	seed  func() (uint64, uint64)
}

// New returns a Server for cfg. Invalid values are clamped (see
// Config.Validate to reject them instead); unknown fault names are ignored.
func New(cfg Config) *Server {
	ver, err := parseVersion(cfg.DifyVersion)
	if err != nil {
		ver, _ = parseVersion("")
	}
	s := &Server{cfg: cfg, ver: ver, set: cfg.settings(), faults: newFaultTable(cfg.Faults), sets: map[string]bool{DefaultDatasetID: true},
		jobs: newPool(cfg.JobWorkers, true), api: newPool(cfg.APISlots, false)}
	s.convs.max = cfg.MaxConversations
	if s.convs.max == 0 {
		s.convs.max = DefaultMaxConversations
	}
	for _, id := range cfg.DatasetIDs {
		s.sets[strings.ToLower(id)] = true
	}
	s.truth.max = cfg.MaxRecords
	if s.truth.max == 0 {
		s.truth.max = DefaultMaxRecords
	}
	return s
}

// Truth returns the counts and records so far (see /_mock/stats).
func (s *Server) Truth() Truth { return s.snapshot(true, true) }

func (s *Server) snapshot(withRecords, withConvs bool) Truth {
	t := s.truth.snapshot(withRecords)
	if withConvs {
		t.Conversations, t.ConversationsDropped = s.convs.snapshot()
	} else {
		_, t.ConversationsDropped = s.convs.snapshot()
	}
	t.DifyVersion = s.ver.name
	t.JobWorkers, t.APISlots = max(s.cfg.JobWorkers, 0), max(s.cfg.APISlots, 0)
	var orphans int64
	t.JobsRunning, t.JobsQueued, orphans = s.jobs.stats()
	t.OrphanJobs = orphans
	t.APIInUse, t.APIQueued, _ = s.api.stats()
	return t
}

// Reset zeroes counts and drops records (see POST /_mock/reset). Requests
// in flight at the time are counted after the reset when they finish.
func (s *Server) Reset() { s.truth.reset(); s.convs.reset() }

func (s *Server) clock() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// req is the per-request state shared by all handlers.
type req struct {
	s        *Server
	w        http.ResponseWriter
	r        *http.Request
	ep       endpointID
	set      settings
	fault    faultID
	rng      rand.PCG
	recv     time.Time // real time, for scheduling
	rec      Record
	out      outcome
	app      appKind // numApps until an app key was resolved
	recorded bool
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h["X-Version"] = []string{s.ver.name}
	h["X-Env"] = []string{"PRODUCTION"}

	path := r.URL.Path
	switch path {
	case "/_mock/stats":
		s.serveStats(w, r)
		return
	case "/_mock/reset":
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The method is not allowed for the requested URL.")
			return
		}
		s.Reset()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{\"result\":\"success\"}\n"))
		return
	}

	s.wg.Add(1)
	defer s.wg.Done()
	s.truth.inFlight.Add(1)
	defer s.truth.inFlight.Add(-1)

	rq := &req{s: s, w: w, r: r, set: s.set, ep: epOther, app: numApps}
	rq.recv = time.Now()
	if s.now != nil {
		rq.rec.Received = s.now().UnixNano()
	} else {
		rq.rec.Received = rq.recv.UnixNano()
	}
	if s.seed != nil {
		rq.rng.Seed(s.seed())
	} else {
		rq.rng.Seed(rand.Uint64(), rand.Uint64())
	}
	defer rq.finish()
	// The API process serves at most APISlots requests at once; the others wait before any
	// byte of a response (gunicorn's workers × worker connections).
	if s.cfg.APISlots > 0 {
		waitFrom := time.Now()
		if !s.api.acquire(r.Context(), 0) {
			rq.out = oClientGone
			return
		}
		defer s.api.release()
		rq.rec.APIWait = time.Since(waitFrom).Nanoseconds()
	}

	if id, route := stopTaskID(path); route != "" {
		rq.ep, rq.rec.Endpoint = epStop, EndpointStop
		if !rq.allow(http.MethodPost) {
			return
		}
		s.serveStop(rq, id, route)
		return
	}
	switch {
	case path == "/v1/chat-messages", path == "/v1/completion-messages", path == "/v1/workflows/run":
		rq.ep, rq.rec.Endpoint = epChat, EndpointChat
		switch path {
		case "/v1/completion-messages":
			rq.ep, rq.rec.Endpoint = epCompletion, EndpointCompletion
		case "/v1/workflows/run":
			rq.ep, rq.rec.Endpoint = epWorkflow, EndpointWorkflow
		}
		if !rq.allow(http.MethodPost) {
			return
		}
		s.serveChat(rq) //nolint:contextcheck // the request's context travels with it: rq.r.Context()
	case path == "/v1/parameters":
		rq.ep = epParameters
		rq.rec.Endpoint = EndpointParameters
		if !rq.allow(http.MethodGet) {
			return
		}
		s.serveParameters(rq)
	case strings.HasPrefix(path, "/v1/datasets/") && (strings.HasSuffix(path, "/retrieve") || strings.HasSuffix(path, "/hit-testing")):
		id := strings.TrimPrefix(path, "/v1/datasets/")
		id = id[:strings.LastIndexByte(id, '/')]
		if strings.Contains(id, "/") || id == "" {
			rq.rec.Endpoint = EndpointOther
			rq.fail(http.StatusNotFound, "not_found", notFoundMsg)
			return
		}
		rq.ep = epRetrieve
		rq.rec.Endpoint = EndpointRetrieve
		if !rq.allow(http.MethodPost) {
			return
		}
		s.serveRetrieve(rq, id)
	default:
		rq.rec.Endpoint = EndpointOther
		rq.fail(http.StatusNotFound, "not_found", notFoundMsg)
	}
}

// allow answers 405 unless the request uses method.
func (rq *req) allow(method string) bool {
	if rq.r.Method == method {
		return true
	}
	rq.fail(http.StatusMethodNotAllowed, "method_not_allowed", "The method is not allowed for the requested URL.")
	return false
}

const notFoundMsg = "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."

// finish records the outcome exactly once, when the handler returns.
func (rq *req) finish() {
	if rq.recorded {
		return
	}
	rq.recorded = true
	rq.rec.Outcome = rq.out.String()
	if rq.fault != fNone {
		rq.rec.Fault = rq.fault.String()
	}
	rq.s.truth.add(rq.ep, rq.app, rq.out, &rq.rec)
}

// fail writes a Dify error envelope and sets the outcome.
func (rq *req) fail(status int, code, msg string) {
	rq.out = httpOutcome(status)
	writeError(rq.w, status, code, msg)
	rq.rec.Terminal = rq.s.clock().UnixNano()
}

// writeError writes {"code","message","status"}\n like flask-restx, which serializes with
// ujson when it is installed (Dify's lock file has it): compact, "/" escaped as "\/", every
// non-ASCII character as \uXXXX.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	if status == http.StatusUnauthorized {
		w.Header()["Www-Authenticate"] = []string{`Bearer realm="api"`}
	}
	e := enc{b: make([]byte, 0, 128+len(msg))}
	e.open().kstr("code", code).key("message").ujson(msg).kint("status", int64(status)).close()
	e.b = append(e.b, '\n')
	_ = writeJSON(w, status, "application/json", e.b)
}

// writeJSON writes a whole response with its Content-Type and Content-Length.
func writeJSON(w http.ResponseWriter, status int, contentType string, body []byte) error {
	h := w.Header()
	h["Content-Type"] = []string{contentType}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, err := w.Write(body)
	return err
}

// auth resolves the bearer key like Dify's validate_and_get_api_token.
// It writes the 401 itself and returns "" on failure.
func (rq *req) auth() string {
	hdr, ok := rq.r.Header["Authorization"]
	if !ok || len(hdr) == 0 || !strings.ContainsAny(hdr[0], " \t") {
		rq.fail(http.StatusUnauthorized, "unauthorized", "Authorization header must be provided and start with 'Bearer'")
		return ""
	}
	fields := strings.Fields(hdr[0])
	if len(fields) == 0 || !strings.EqualFold(fields[0], "bearer") {
		rq.fail(http.StatusUnauthorized, "unauthorized", "Authorization scheme must be 'Bearer'")
		return ""
	}
	if len(fields) != 2 {
		rq.fail(http.StatusUnauthorized, "unauthorized", "Access token is invalid")
		return ""
	}
	return fields[1]
}

func (rq *req) invalidToken() {
	rq.fail(http.StatusUnauthorized, "unauthorized", "Access token is invalid")
}

// appAuth resolves an app key to its app and records it; it writes the 401 itself and
// returns nil on failure (a missing header, a dataset key, an unknown key).
func (rq *req) appAuth() *app {
	key := rq.auth()
	if key == "" {
		return nil
	}
	a := appForKey(key)
	if a == nil {
		rq.invalidToken()
		return nil
	}
	rq.rec.App = a.name
	rq.app = a.kind
	return a
}

// jsonBody enforces Content-Type application/json (415 otherwise).
func (rq *req) requireJSON() bool {
	ct := rq.r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" && !strings.HasSuffix(mt, "+json") {
		rq.fail(http.StatusUnsupportedMediaType, "unsupported_media_type",
			"Did not attempt to load JSON data because the request Content-Type was not 'application/json'.")
		return false
	}
	return true
}

// overrides applies the X-Mock-* headers. It writes a 400 and returns false
// on a bad value.
func (rq *req) overrides(retrieve bool) bool {
	h := rq.r.Header
	durs := []struct {
		name string
		dst  *time.Duration
	}{
		{"X-Mock-Ttft", &rq.set.ttft}, {"X-Mock-Token-Delay", &rq.set.tokenDelay},
		{"X-Mock-Jitter", &rq.set.jitter}, {"X-Mock-Ping-Interval", &rq.set.ping},
		{"X-Mock-Stall", &rq.set.stall}, {"X-Mock-Retrieval-Latency", &rq.set.retrieval},
	}
	for _, d := range durs {
		v := h.Get(d.name)
		if v == "" {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur < 0 {
			rq.fail(http.StatusBadRequest, "invalid_param", http.CanonicalHeaderKey(d.name)+": invalid duration "+strconv.Quote(v))
			return false
		}
		*d.dst = dur
	}
	if h.Get("X-Mock-Ping-Interval") == "0" || h.Get("X-Mock-Ping-Interval") == "0s" {
		rq.set.ping = -1
	}
	if v := h.Get("X-Mock-Tokens"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1_000_000 {
			rq.fail(http.StatusBadRequest, "invalid_param", "X-Mock-Tokens: want an integer in 1..1000000, got "+strconv.Quote(v))
			return false
		}
		rq.set.tokens = n
	}
	table := rq.s.faults
	if v, ok := h["X-Mock-Fault"]; ok && len(v) > 0 {
		spec := strings.TrimSpace(v[0])
		switch {
		case spec == "" || spec == "none":
			table = faultTable{}
		case strings.Contains(spec, "="):
			m, err := ParseFaults(spec)
			if err != nil {
				rq.fail(http.StatusBadRequest, "invalid_param", "X-Mock-Fault: "+err.Error())
				return false
			}
			table = newFaultTable(m)
		default:
			id, ok := faultByName(spec)
			if !ok {
				rq.fail(http.StatusBadRequest, "invalid_param", "X-Mock-Fault: unknown fault "+strconv.Quote(spec))
				return false
			}
			table = faultTable{ids: []faultID{id}, cum: []float64{1}}
		}
	}
	if len(table.ids) > 0 {
		f := table.pick(float64(rq.rng.Uint64()>>11) / (1 << 53))
		if !applies(f, retrieve) {
			f = fNone
		}
		rq.fault = f
	}
	return true
}

// applies reports whether fault f means something on this endpoint.
func applies(f faultID, retrieve bool) bool {
	switch f {
	case f401, f429, f500, fStall, fReset:
		return true
	case fRetrieve500:
		return retrieve
	}
	return !retrieve
}

// httpFault writes the pre-stream HTTP faults; it returns true if it did.
func (rq *req) httpFault(appID string) bool {
	switch rq.fault {
	case f401:
		rq.fail(http.StatusUnauthorized, "unauthorized", "Access token is invalid")
	case f429:
		rq.fail(http.StatusTooManyRequests, "too_many_requests",
			"Too many requests. Please try again later. The current maximum concurrent requests allowed for "+appID+" is 10.")
	case f500, fRetrieve500:
		rq.fail(http.StatusInternalServerError, "internal_server_error",
			"The server encountered an internal error and was unable to complete your request. Either the server is overloaded or there is an error in the application.")
	default:
		return false
	}
	return true
}

// jitter returns d ± uniform Jitter, never negative.
func (rq *req) jitter(d time.Duration) time.Duration {
	j := rq.set.jitter
	if j <= 0 {
		return d
	}
	off := time.Duration(rq.rng.Uint64()%uint64(2*j+1)) - j
	return max(d+off, 0)
}

// id returns a fresh id.
func (rq *req) id() string {
	if rq.s.newID != nil {
		return rq.s.newID()
	}
	var b [16]byte
	x, y := rq.rng.Uint64(), rq.rng.Uint64()
	for i := range 8 {
		b[i] = byte(x >> (8 * i))
		b[8+i] = byte(y >> (8 * i))
	}
	return formatUUID(b, 4)
}

func formatUUID(b [16]byte, version byte) string {
	b[6] = b[6]&0x0f | version<<4
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&0xf]
		j += 2
	}
	return string(out[:])
}

// endUserID is a stable UUID for a user string (Dify keeps one EndUser per
// app and session id).
func endUserID(appID, user string) string {
	sum := sha1.Sum([]byte(appID + "\x00" + user))
	var b [16]byte
	copy(b[:], sum[:16])
	return formatUUID(b, 5)
}

// isUUID accepts the canonical 8-4-4-4-12 hex form (any case).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') && (c < 'A' || c > 'F') {
				return false
			}
		}
	}
	return true
}

func (s *Server) serveStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "The method is not allowed for the requested URL.")
		return
	}
	withRecords := r.URL.Query().Get("records") != "0"
	withConvs := r.URL.Query().Get("conversations") != "0"
	b, err := json.Marshal(s.snapshot(withRecords, withConvs))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal_server_error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// serveParameters answers GET /v1/parameters for any app key.
func (s *Server) serveParameters(rq *req) {
	a := rq.appAuth()
	if a == nil {
		return
	}
	e := enc{b: make([]byte, 0, 1024)}
	e.open().kstr("opening_statement", "").key("suggested_questions").emptyArr().
		key("suggested_questions_after_answer").obj().kbool("enabled", false).close().
		key("speech_to_text").obj().kbool("enabled", false).close().
		key("text_to_speech").obj().kbool("enabled", false).kstr("voice", "").kstr("language", "").kstr("autoPlay", "disabled").close().
		key("retriever_resource").obj().kbool("enabled", a.kind == appComplex).close().
		key("annotation_reply").obj().kbool("enabled", false).close().
		key("more_like_this").obj().kbool("enabled", false).close().
		key("sensitive_word_avoidance").obj().kbool("enabled", false).close().
		key("user_input_form").arr()
	if a.kind == appComplex {
		e.elem().obj().key("text-input").obj().kstr("label", "City").kstr("variable", "city").kbool("required", false).
			kstr("default", "").kint("max_length", 48).close().close()
	}
	e.endArr().
		key("file_upload").obj().key("image").obj().kbool("enabled", false).kint("number_limits", 3).
		key("transfer_methods").arr().elem().str("remote_url").elem().str("local_file").endArr().close().close().
		key("system_parameters").obj().kint("file_size_limit", 15).kint("image_file_size_limit", 10).
		kint("audio_file_size_limit", 50).kint("video_file_size_limit", 100).kint("workflow_file_upload_limit", 10).close().
		close()
	e.b = append(e.b, '\n')
	_ = writeJSON(rq.w, http.StatusOK, "application/json", e.b)
	rq.rec.Terminal = s.clock().UnixNano()
}

// Serve serves s on ln until ctx is cancelled, then shuts down: it stops
// accepting, gives open requests up to 5 s to finish, then cancels the rest
// (handlers exit on their request context) and waits up to 5 s more for
// them. It returns nil after a ctx-initiated shutdown.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return base },
		// No ReadTimeout/WriteTimeout: they would kill long streams.
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("difymock: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second) // ctx is done: the shutdown gets its own 5 s
	err := srv.Shutdown(sctx)
	cancel()
	cancelBase()
	if err != nil {
		_ = srv.Close()
	}
	<-errc // Serve returns ErrServerClosed promptly after Shutdown/Close.
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		return errors.New("difymock: shutdown: handlers still running after 5s")
	}
	return nil
}

// ListenAndServe serves a New(cfg) mock on addr until ctx is cancelled (see
// Server.Serve for the bounded graceful shutdown). It refuses a non-loopback
// address — including "" and ":port", which bind every interface — unless
// allowNonLoopback. It rejects an invalid cfg (Config.Validate).
func ListenAndServe(ctx context.Context, addr string, cfg Config, allowNonLoopback bool) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !allowNonLoopback {
		if err := checkLoopback(addr); err != nil {
			return err
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("difymock: listen: %w", err)
	}
	return New(cfg).Serve(ctx, ln)
}

// checkLoopback accepts "localhost", "127.x.y.z" and "::1" hosts only.
func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("difymock: bad listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("difymock: refusing to listen on non-loopback address %q (allow it explicitly)", addr)
}
