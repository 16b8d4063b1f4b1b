package api

import (
	"net/http"
	"time"
)

// Limits are the timeouts and size caps of the API's HTTP server
// (docs/reference/api.md). They bound what one connection can hold: a client
// that sends its headers or body a byte at a time, keeps an idle keep-alive
// open or never reads its answer is cut off, so many of them cannot exhaust
// descriptors or memory.
type Limits struct {
	// ReadHeaderTimeout bounds reading the request line and headers.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request, body included. It does
	// not bound a handler: net/http lifts the read deadline once the body
	// has been read.
	ReadTimeout time.Duration
	// WriteTimeout bounds a handler and the writing of its answer, from the
	// end of the request headers. The log stream with follow=true is exempt.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection without a next request.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
}

// DefaultLimits are the limits of `orca-sync serve`. WriteTimeout outlasts
// the slowest answer, a pull request plan (a fetch of up to two minutes and a
// plan of up to 30 s); webhook bodies are capped at maxWebhookBody.
func DefaultLimits() Limits {
	return Limits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      3 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// NewHTTPServer returns the HTTP server for handler (Server.Handler) with
// lim applied; the caller serves it on its listener and shuts it down.
func NewHTTPServer(handler http.Handler, lim Limits) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
	}
}
