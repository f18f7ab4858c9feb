package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"time"
)

// serveShutdownTimeout is how long a stopping server lets its open requests finish
// before it closes them.
const serveShutdownTimeout = 2 * time.Second

// serve serves h on ln from a goroutine it owns, until the returned stop is called. stop
// shuts the server down (open requests get serveShutdownTimeout, then are closed), waits
// for the goroutine and returns the shutdown's error. onErr (may be nil) receives an
// error that ends serving early.
func serve(ln net.Listener, h http.Handler, onErr func(error)) (stop func(ctx context.Context) error) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && onErr != nil {
			onErr(err)
		}
	}()
	return func(ctx context.Context) error {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), serveShutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			err = errors.Join(err, srv.Close())
		}
		wg.Wait()
		return err
	}
}
