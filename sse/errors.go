package sse

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Phase names the step of a request at which a StreamError happened. Its values are stable and
// low-cardinality, so they can be used as labels.
type Phase string

// The phases of a request, in the order they can happen.
const (
	// PhaseConnect: the request failed before response headers arrived (dial, DNS, TLS, write,
	// or the connection closing before a response).
	PhaseConnect Phase = "connect"
	// PhaseStatus: the server answered with a non-2xx status.
	PhaseStatus Phase = "status"
	// PhaseFirstTokenTimeout: no answer token within Config.FirstTokenTimeout of the start.
	PhaseFirstTokenTimeout Phase = "first_token_timeout"
	// PhaseIdleTimeout: no bytes for Config.IdleTimeout.
	PhaseIdleTimeout Phase = "idle_timeout"
	// PhaseStreamTimeout: the whole request took longer than Config.StreamTimeout.
	PhaseStreamTimeout Phase = "stream_timeout"
	// PhaseErrorEvent: Dify sent an `error` event.
	PhaseErrorEvent Phase = "error_event"
	// PhaseWorkflow: workflow_finished reported status failed or stopped.
	PhaseWorkflow Phase = "workflow"
	// PhaseTruncated: the body ended before the terminal event.
	PhaseTruncated Phase = "truncated"
	// PhaseDecode: a payload was not the JSON expected, or the response had the wrong
	// content type.
	PhaseDecode Phase = "decode"
	// PhaseTooLarge: one event (or a Post body) exceeded Config.MaxEventSize.
	PhaseTooLarge Phase = "too_large"
	// PhaseRead: reading the body failed (connection reset, other network errors).
	PhaseRead Phase = "read"
	// PhaseCancelled: the caller's context ended. This is not a failure; see IsCancelled.
	PhaseCancelled Phase = "cancelled"
)

// StreamError is the only error type returned by Client.Stream and Client.Post.
//
// Failure returns a short, stable failure name from a small vocabulary (for example
// "HTTP 429 too_many_requests", "timeout: no event for 30s", "stream error:
// completion_request_error"), suitable as a Locust failure text or a metric label. Error adds
// the underlying cause, which is also reachable with errors.Is/errors.As through Unwrap. No
// text of a StreamError ever contains the request's API key: request headers are never
// formatted, and server-provided messages are scrubbed of the key.
type StreamError struct {
	// Phase is the step that failed.
	Phase Phase
	// Status is the HTTP status code, when a response was received (0 otherwise).
	Status int
	// Code is Dify's error code: from the JSON error body (PhaseStatus) or from the `error`
	// event (PhaseErrorEvent). Empty when unknown. Only [A-Za-z0-9_.-] codes up to 64 bytes
	// are kept, to keep failure names low-cardinality.
	Code string
	// Reason is the short stable failure name. When empty, Failure derives one from Phase,
	// Status and Code.
	Reason string
	// Err is the underlying cause, if any.
	Err error
}

// Error returns the failure name followed by ": " and the cause, if there is one.
func (e *StreamError) Error() string {
	f := e.Failure()
	if e.Err == nil {
		return f
	}
	return f + ": " + e.Err.Error()
}

// Failure returns the short stable failure name (see the package documentation for the
// vocabulary).
func (e *StreamError) Failure() string {
	if e.Reason != "" {
		return e.Reason
	}
	switch e.Phase {
	case PhaseStatus:
		return statusFailure(e.Status, e.Code)
	case PhaseErrorEvent:
		return errorEventFailure(e.Code)
	case PhaseConnect:
		return "connect: other"
	case PhaseFirstTokenTimeout:
		return "timeout: no first token"
	case PhaseIdleTimeout:
		return "timeout: no event"
	case PhaseStreamTimeout:
		return "timeout: stream too long"
	case PhaseWorkflow:
		return "workflow failed"
	case PhaseTruncated:
		return failTruncated
	case PhaseDecode:
		return failMalformed
	case PhaseTooLarge:
		return failTooLarge
	case PhaseRead:
		return "read error: other"
	case PhaseCancelled:
		return "cancelled"
	}
	return "error: " + string(e.Phase)
}

// Unwrap returns the underlying cause.
func (e *StreamError) Unwrap() error { return e.Err }

// IsCancelled reports whether err is a StreamError caused by the caller's context ending
// (PhaseCancelled). A cancelled stream is not a failure of the system under test.
func IsCancelled(err error) bool {
	var se *StreamError
	return errors.As(err, &se) && se.Phase == PhaseCancelled
}

// Stable failure names without a variable part.
const (
	failTruncated      = "stream ended before message_end"
	failTruncatedWF    = "stream ended before workflow_finished"
	failWorkflowPaused = "workflow paused"
	failMalformed      = "malformed event JSON"
	failTooLarge       = "event too large"
	failReset          = "connection reset during stream"
	failWorkflowFailed = "workflow failed"
	failWorkflowStop   = "workflow stopped"
	failBodyTooLarge   = "invalid response: body too large"
	failNotJSON        = "invalid response: not JSON"
	failCancelled      = "cancelled"
)

func statusFailure(status int, code string) string {
	if code == "" {
		return fmt.Sprintf("HTTP %d", status)
	}
	return fmt.Sprintf("HTTP %d %s", status, code)
}

func errorEventFailure(code string) string {
	if code == "" {
		code = "unknown"
	}
	return "stream error: " + code
}

// timeoutCause is the cancellation cause a timer puts on the request context. Its text is the
// failure name, e.g. "timeout: no event for 30s".
type timeoutCause struct {
	phase Phase
	text  string
}

func (t *timeoutCause) Error() string { return t.text }

// Timeout marks timeoutCause as a timeout for net.Error-style checks.
func (t *timeoutCause) Timeout() bool { return true }

func newTimeoutCauses(cfg Config) (first, idle, stream *timeoutCause) {
	return &timeoutCause{PhaseFirstTokenTimeout, "timeout: no first token after " + failureDuration(cfg.FirstTokenTimeout)},
		&timeoutCause{PhaseIdleTimeout, "timeout: no event for " + failureDuration(cfg.IdleTimeout)},
		&timeoutCause{PhaseStreamTimeout, "timeout: stream longer than " + failureDuration(cfg.StreamTimeout)}
}

// failureDuration writes a timeout for a failure name: whole seconds as "60s" or "300s"
// (as locustfile.py writes them, so Go and Python failure rows merge), anything finer as
// Go writes it ("1.5s", "250ms").
func failureDuration(d time.Duration) string {
	if d >= time.Second && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}

// ctxError classifies an error seen while the request context may have been cancelled. It
// returns nil when neither the caller nor one of our timers ended the context.
func ctxError(parent, ctx context.Context, err error) *StreamError {
	if parent.Err() != nil {
		cause := context.Cause(parent)
		if err == nil {
			err = cause
		} else if cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
		return &StreamError{Phase: PhaseCancelled, Reason: failCancelled, Err: err}
	}
	if ctx.Err() == nil {
		return nil
	}
	var tc *timeoutCause
	if errors.As(context.Cause(ctx), &tc) {
		if err == nil {
			err = tc
		}
		return &StreamError{Phase: tc.phase, Reason: tc.text, Err: err}
	}
	return nil
}

// connectReason returns the short reason of a failed http.Client.Do (without the "connect: "
// prefix).
func connectReason(err error) string {
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "dns lookup failed"
	}
	if isTLSError(err) {
		return "tls handshake failed"
	}
	return shortNetReason(err)
}

func isTLSError(err error) bool {
	var (
		rhe   tls.RecordHeaderError
		alert tls.AlertError
		cve   *tls.CertificateVerificationError
		ua    x509.UnknownAuthorityError
		he    x509.HostnameError
		ci    x509.CertificateInvalidError
	)
	if errors.As(err, &rhe) || errors.As(err, &alert) || errors.As(err, &cve) ||
		errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) {
		return true
	}
	// crypto/tls reports some handshake failures as plain errors prefixed "tls: ".
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil && strings.HasPrefix(op.Err.Error(), "tls: ") {
		return true
	}
	return strings.Contains(err.Error(), "tls: ") && !errors.Is(err, syscall.ECONNRESET)
}

// shortNetReason maps a network error to a small fixed set of reasons.
func shortNetReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe"
	case errors.Is(err, syscall.ENETUNREACH):
		return "network unreachable"
	case errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout"
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return "other"
}

// sanitizeCode keeps a Dify error code only if it looks like one (short, [A-Za-z0-9_.-]).
func sanitizeCode(code string) string {
	if len(code) == 0 || len(code) > 64 {
		return ""
	}
	for i := 0; i < len(code); i++ {
		c := code[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-' {
			continue
		}
		return ""
	}
	return code
}

// shortContentType returns the media type of a Content-Type header, bounded and sanitised.
func shortContentType(ct string) string {
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = strings.ToLower(strings.TrimSpace(ct))
	if ct == "" {
		return "missing"
	}
	if len(ct) > 64 {
		ct = ct[:64]
	}
	b := []byte(ct)
	for i, c := range b {
		if c < 0x21 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// redactError hides secret in an error's text while keeping the chain for errors.Is/As.
type redactError struct {
	text string
	err  error
}

func (r *redactError) Error() string { return r.text }
func (r *redactError) Unwrap() error { return r.err }

// redact returns err unchanged unless its text contains secret.
func redact(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	msg := err.Error()
	if !strings.Contains(msg, secret) {
		return err
	}
	return &redactError{text: strings.ReplaceAll(msg, secret, "[redacted]"), err: err}
}
