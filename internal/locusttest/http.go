package locusttest

// HTTP requests of a test to loopback (a master's web UI, the mock), each
// bounded in time so that a stuck server fails the test instead of hanging it.

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RequestTimeout bounds every request of Get, Post and PostForm, body included.
const RequestTimeout = 30 * time.Second

// Get is http.Get bounded by RequestTimeout.
func Get(url string) (*http.Response, error) { return Request(http.MethodGet, url, "", nil) }

// Post is http.Post bounded by RequestTimeout.
func Post(url, contentType string, body io.Reader) (*http.Response, error) {
	return Request(http.MethodPost, url, contentType, body)
}

// PostForm is http.PostForm bounded by RequestTimeout.
func PostForm(url string, form url.Values) (*http.Response, error) {
	return Request(http.MethodPost, url, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

// Request sends one request bounded by RequestTimeout; the caller closes the
// response's body, which releases the timeout.
func Request(method, url, contentType string, body io.Reader) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), RequestTimeout)
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		cancel()
		return nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
