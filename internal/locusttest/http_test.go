package locusttest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestRequests(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		b, _ := io.ReadAll(r.Body)
		_, _ = io.WriteString(w, r.Method+" "+r.Header.Get("Content-Type")+" "+r.Form.Get("u")+string(b))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		do   func() (*http.Response, error)
		want string
	}{
		{func() (*http.Response, error) { return Get(srv.URL) }, "GET  "},
		{func() (*http.Response, error) { return Post(srv.URL, "text/plain", strings.NewReader("x")) }, "POST text/plain x"},
		{func() (*http.Response, error) { return PostForm(srv.URL, url.Values{"u": {"4"}}) }, "POST application/x-www-form-urlencoded 4"},
	} {
		resp, err := tc.do()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != tc.want {
			t.Errorf("got %q, %v; want %q", b, err, tc.want)
		}
	}
	if resp, err := Get("http://127.0.0.1:1/"); err == nil {
		resp.Body.Close()
		t.Error("a closed port answered")
	}
}
